package packaging

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/cli"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/store"
)

const unitPath = "procwatch.service"

// unit is a parsed systemd unit: section -> key -> values in order (a key
// may repeat).
type unit map[string]map[string][]string

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// parseUnit reads the subset of systemd's syntax the file uses: sections,
// KEY=VALUE lines, comments and blank lines. Anything else is an error, so
// a typo cannot hide.
func parseUnit(data []byte) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		case strings.HasSuffix(line, `\`):
			return nil, fmt.Errorf("line %d: continued lines are not expected", n)
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("line %d: %q is not KEY=VALUE inside a section", n, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	return u, sc.Err()
}

func loadUnit(t *testing.T) unit {
	t.Helper()
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(data)
	if err != nil {
		t.Fatalf("%s: %v", unitPath, err)
	}
	return u
}

// checkCommandLine checks that argv runs `procwatch agent` from
// /usr/local/bin with flags the real command accepts.
func checkCommandLine(t *testing.T, argv []string) {
	t.Helper()
	if len(argv) < 2 || argv[0] != "/usr/local/bin/procwatch" {
		t.Fatalf("ExecStart %q: want /usr/local/bin/procwatch ... agent ...", argv)
	}
	root := cli.NewRoot()
	cmd, rest, err := root.Find(argv[1:])
	if err != nil {
		t.Fatalf("ExecStart %q: %v", argv, err)
	}
	if cmd.Name() != "agent" {
		t.Fatalf("ExecStart %q runs %q, want agent", argv, cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("ExecStart %q: flags do not parse: %v", argv, err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Fatalf("ExecStart %q: %v", argv, err)
	}
}

func TestUnitRunsTheAgentWithRealFlags(t *testing.T) {
	u := loadUnit(t)
	starts := u["Service"]["ExecStart"]
	if len(starts) != 1 {
		t.Fatalf("ExecStart given %d times, want once", len(starts))
	}
	checkCommandLine(t, strings.Fields(starts[0]))
	if got := u.get("Service", "ExecReload"); got != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload = %q: the agent rereads its rules on SIGHUP", got)
	}
}

// TestDocumentedCommandLinesParse checks the ExecStart lines that
// docs/agent.md suggests for drop-ins, with their flags.
func TestDocumentedCommandLinesParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/agent.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^ExecStart=(/usr/local/bin/procwatch .*)$`).FindAllSubmatch(doc, -1)
	if len(lines) == 0 {
		t.Fatal("docs/agent.md shows no ExecStart=/usr/local/bin/procwatch line")
	}
	for _, l := range lines {
		checkCommandLine(t, strings.Fields(string(l[1])))
	}
}

func TestUnitKeepsWhatTheAgentNeeds(t *testing.T) {
	u := loadUnit(t)
	svc := func(k string) string { return u.get("Service", k) }
	if svc("Restart") != "on-failure" {
		t.Errorf("Restart = %q, want on-failure", svc("Restart"))
	}
	caps := strings.Fields(svc("CapabilityBoundingSet"))
	for _, c := range []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_RESOURCE", "CAP_DAC_READ_SEARCH"} {
		if !slices.Contains(caps, c) {
			t.Errorf("CapabilityBoundingSet %q lacks %s", caps, c)
		}
	}
	if user := svc("User"); user != "" && user != "root" {
		t.Errorf("User=%s: then the capabilities must be ambient too", user)
	}
	// The agent's default paths must be inside the directories systemd
	// makes writable under ProtectSystem=strict.
	if svc("ProtectSystem") != "strict" {
		t.Errorf("ProtectSystem = %q, want strict", svc("ProtectSystem"))
	}
	if got, want := filepath.Dir(protocol.DefaultSocket), "/run/"+svc("RuntimeDirectory"); got != want {
		t.Errorf("default socket in %s, but RuntimeDirectory gives %s", got, want)
	}
	if os.Geteuid() == 0 {
		if got, want := filepath.Dir(store.DefaultPath()), "/var/lib/"+svc("StateDirectory"); got != want {
			t.Errorf("root's default database in %s, but StateDirectory gives %s", got, want)
		}
	} else if svc("StateDirectory") != "procwatch" {
		t.Errorf("StateDirectory = %q, want procwatch (/var/lib/procwatch)", svc("StateDirectory"))
	}
	for _, k := range []string{"StateDirectoryMode", "RuntimeDirectoryMode"} {
		if svc(k) != "0700" {
			t.Errorf("%s = %q, want 0700", k, svc(k))
		}
	}
	// Settings that would hide other processes' /proc entries, the BPF
	// syscalls or tracefs from the agent.
	for k, bad := range map[string][]string{
		"ProtectProc":       {"invisible", "noaccess", "ptraceable"},
		"ProcSubset":        {"pid"},
		"PrivateUsers":      {"yes", "true"},
		"PrivatePIDs":       {"yes", "true"},
		"InaccessiblePaths": {"/proc", "/sys", "/sys/kernel/tracing"},
	} {
		if v := svc(k); slices.Contains(bad, v) {
			t.Errorf("%s=%s would keep the agent from seeing every process", k, v)
		}
	}
	if f := svc("SystemCallFilter"); f != "" {
		for _, call := range []string{"bpf", "perf_event_open"} {
			if !slices.Contains(strings.Fields(f), call) {
				t.Errorf("SystemCallFilter %q does not allow %s", f, call)
			}
		}
	}
}

// TestSystemdAcceptsTheUnit runs systemd-analyze verify where it exists.
// verify checks that ExecStart's binary is executable, so a copy of the
// unit points at this test binary instead of /usr/local/bin/procwatch.
func TestSystemdAcceptsTheUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; the Go tests above still check the unit")
	}
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "procwatch.service")
	data = bytes.ReplaceAll(data, []byte("ExecStart=/usr/local/bin/procwatch"), []byte("ExecStart="+self))
	if err := os.WriteFile(copyPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on unknown keys and bad values, which it only
	// reports; any line about our unit is a failure.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, copyPath) || strings.Contains(line, "procwatch.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

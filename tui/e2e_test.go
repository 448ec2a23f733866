package tui

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// TestEndToEnd drives the real procwatch binary in tmux as root: a
// set-user-ID-root program in a directory under /tmp, run as uid 65534,
// must show up as an incident; `p` must offer a skip of exactly that file
// pinned to its SHA-256, for its rule, after one run (the hash computed in
// the background reaches the incident); `y` must store it (`procwatch skip
// list --json` shows it), and running the program again must raise
// nothing.
//
// It needs root, tmux and a kernel that loads procwatch's BPF programs. It
// skips without them, unless PROCWATCH_REQUIRE_BPF=1, which turns every
// skip into a failure (for CI machines that must run it).
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	require := os.Getenv("PROCWATCH_REQUIRE_BPF") == "1"
	skip := func(format string, args ...any) {
		t.Helper()
		if require {
			t.Fatalf("PROCWATCH_REQUIRE_BPF=1 but "+format, args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		skip("not root")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		skip("tmux not found")
	}

	// A directory others can enter, so uid 65534 can run the probe, and
	// outside /tmp: a command skip never silences a binary in a
	// world-writable directory (docs/rules.md), and the test skips one.
	dir, err := os.MkdirTemp("/var/lib", "procwatch-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "procwatch")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(goTool, "build", "-o", bin, "github.com/procwatch/procwatch")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build procwatch: %v\n%s", err, out)
	}
	probe := buildSuidProbe(t, goTool, dir)

	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	global := []string{"--db", filepath.Join(dataDir, "procwatch.db"), "--socket", filepath.Join(dataDir, "procwatch.sock")}
	cli := func(args ...string) ([]byte, error) {
		cmd := exec.Command(bin, append(append([]string{}, global...), args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("procwatch %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}

	session := fmt.Sprintf("procwatch-e2e-%d", os.Getpid())
	uiCmd := "TERM=xterm-256color " + bin + " " + strings.Join(global, " ") + " 2>" + filepath.Join(dir, "ui.err")
	tm := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tm("new-session", "-d", "-s", session, "-x", "160", "-y", "48", uiCmd)
	t.Cleanup(func() { exec.Command(tmux, "kill-session", "-t", session).Run() })
	tm("set", "-s", "escape-time", "0")
	capture := func() string { return tm("capture-pane", "-t", session, "-p") }
	waitScreen := func(what string, timeout time.Duration, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(timeout)
		var s string
		for time.Now().Before(deadline) {
			s = capture()
			if ok(s) {
				return s
			}
			time.Sleep(100 * time.Millisecond)
		}
		errOut, _ := os.ReadFile(filepath.Join(dir, "ui.err"))
		t.Fatalf("screen never showed %s; last screen:\n%s\nstderr: %s", what, s, errOut)
		return ""
	}
	contains := func(sub ...string) func(string) bool {
		return func(s string) bool {
			for _, x := range sub {
				if !strings.Contains(s, x) {
					return false
				}
			}
			return true
		}
	}
	s := waitScreen("the incident list", 20*time.Second, func(s string) bool {
		return strings.Contains(s, "Incidents ·") || strings.Contains(s, "procwatch:")
	})
	if !strings.Contains(s, "Incidents ·") {
		skip("procwatch did not start its pipeline:\n%s", s)
	}
	waitScreen("monitoring on", 10*time.Second, contains("● monitoring"))

	runProbe := func() {
		t.Helper()
		cmd := exec.Command(probe)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run probe as uid 65534: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "euid=0" {
			t.Fatalf("probe printed %q, want euid=0 (is the set-user-ID bit honoured here?)", got)
		}
	}
	// The probe runs once: its first sighting raises the incident before
	// the pipeline has hashed the binary, and the background hash then
	// gives the stored incident (and the UI) its SHA-256, without a rerun
	// (or the probe's exit, which updates the incident with its fate,
	// finds the hash known first).
	sum := fileSHA256(t, probe)
	probeIncident := func() *rules.Incident {
		t.Helper()
		out, err := cli("incidents", "--json", "--limit", "0", "--rule", "root-escalation")
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var in rules.Incident
			if err := dec.Decode(&in); err != nil {
				t.Fatalf("incidents --json: %v\n%s", err, out)
			}
			if in.Process.Exe == event.Text(probe) {
				return &in
			}
		}
		return nil
	}
	runProbe()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		in := probeIncident()
		if in != nil && in.Process.ExeSHA256 == sum {
			if in.Count != 1 {
				t.Fatalf("the probe ran once but its incident counts %d sightings", in.Count)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first sighting's incident never got its SHA-256 %s: %+v", sum, in)
		}
	}
	countBefore := probeIncident().Count
	// Filter to the probe so other activity on the host cannot hide it.
	// The probe may raise more than one incident (it also runs from a
	// world-writable directory): select the root escalation.
	tm("send-keys", "-t", session, "/", "suidprobe")
	tm("send-keys", "-t", session, "Enter")
	s = waitScreen("the probe's escalation incident", 15*time.Second, contains("suidprobe", "root-escalation"))
	// Open rows until the detail pane shows the escalation: other
	// incidents of the probe may sort before it.
	for i := 0; ; i++ {
		tm("send-keys", "-t", session, "Enter")
		d := waitScreen("a detail pane", 10*time.Second, contains("Incident "))
		if strings.Contains(d, "root-escalation (root-escalation)") {
			break
		}
		if i == 5 {
			t.Fatalf("no root-escalation incident among the probe's rows:\n%s", d)
		}
		tm("send-keys", "-t", session, "Escape")
		waitScreen("the list", 10*time.Second, contains("Incidents ·"))
		tm("send-keys", "-t", session, "j")
	}
	waitScreen("the binary's SHA-256 in the detail pane", 10*time.Second, contains("SHA-256", sum[:40]))
	// p offers the exact binary, pinned to its content: the probe lives in
	// a directory under /tmp.
	tm("send-keys", "-t", session, "p")
	want := fmt.Sprintf(`Skip path "%s" pinned to SHA-256 %s… for rule root-escalation?`, probe, sum[:12])
	waitScreen("the pinned skip confirmation", 10*time.Second, func(s string) bool { return strings.Contains(flat(s), want) })
	tm("send-keys", "-t", session, "y")
	waitScreen("the skip result", 10*time.Second, func(s string) bool {
		return strings.Contains(flat(s), fmt.Sprintf(`Skipped path "%s" pinned`, probe))
	})

	out, err := cli("skip", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var skips []rules.Skip
	if err := json.Unmarshal(out, &skips); err != nil {
		t.Fatalf("skip list --json: %v\n%s", err, out)
	}
	var found *rules.Skip
	for i := range skips {
		if skips[i].Kind == rules.SkipPath && skips[i].Value == probe && skips[i].Source == rules.SourceAdded {
			found = &skips[i]
		}
	}
	if found == nil || found.Rule != "root-escalation" || found.Pin != sum {
		t.Fatalf("skip list has no pinned path skip of the probe for root-escalation (sha256 %s):\n%s", sum, out)
	}

	// The same escalation again: no new incident, and the first one stays
	// masked with its count unchanged.
	runProbe()
	time.Sleep(3 * time.Second)
	out, err = cli("incidents", "--json", "--limit", "0", "--rule", found.Rule)
	if err != nil {
		t.Fatal(err)
	}
	var mine []rules.Incident
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var in rules.Incident
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("incidents --json: %v\n%s", err, out)
		}
		if in.Process.Exe == event.Text(probe) {
			mine = append(mine, in)
		}
	}
	if len(mine) != 1 || mine[0].Count != countBefore || mine[0].Status != rules.StatusMasked {
		t.Fatalf("after the skip, %s incidents of the probe = %+v, want one masked incident seen %d times", found.Rule, mine, countBefore)
	}
	// The stream shows the second run as skipped.
	tm("send-keys", "-t", session, "3")
	waitScreen("the skipped escalation", 10*time.Second, func(s string) bool {
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "suidprobe") && strings.Contains(l, " skip ") {
				return true
			}
		}
		return false
	})

	// The terminal goes away (an SSH session drops): the UI must quit and
	// release the database, not linger without a screen.
	tm("kill-session", "-t", session)
	deadline := time.Now().Add(10 * time.Second)
	for running(bin) {
		if time.Now().After(deadline) {
			t.Fatal("the UI still runs 10 s after its terminal closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

// running reports whether any process runs the binary at path.
func running(path string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == path {
			return true
		}
	}
	return false
}

// buildSuidProbe builds a tiny program that prints its effective uid, owned
// by root with the set-user-ID bit.
func buildSuidProbe(t *testing.T, goTool, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "probe-src")
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":  "module suidprobe\n\ngo 1.22\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Printf(\"euid=%d\\n\", os.Geteuid()) }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	probe := filepath.Join(dir, "suidprobe")
	build := exec.Command(goTool, "build", "-o", probe, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	if err := os.Chown(probe, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(probe, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	return probe
}

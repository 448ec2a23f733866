package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
)

const nobody = 65534

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// TestMain removes the binary built for the tests that run it as another
// user.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// procwatchBinary builds the real procwatch binary once per test run, in a
// directory every user may enter, so that steps run as uid 65534 can use it.
func procwatchBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "procwatch-bin-")
		if err != nil {
			binErr = err
			return
		}
		os.Chmod(dir, 0o755)
		binDir = dir
		binPath = filepath.Join(dir, "procwatch")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/procwatch/procwatch").CombinedOutput()
		if err != nil {
			binErr = &exec.ExitError{}
			t.Logf("go build: %s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("build procwatch: %v", binErr)
	}
	return binPath
}

// asUser runs the real procwatch binary through setpriv with the given
// credentials and returns its output and exit code.
func asUser(t *testing.T, privs []string, env []string, args ...string) (string, int) {
	t.Helper()
	argv := append(append([]string{}, privs...), append([]string{procwatchBinary(t)}, args...)...)
	cmd := exec.Command("setpriv", argv...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/"}, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("setpriv: %v", err)
	}
	return string(out), code
}

// openForOthers lets other users reach the test's socket directory.
func openForOthers(t *testing.T, e testEnv) {
	t.Helper()
	for d := e.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSocketGroupsAndKernelAudit: who may do what on the socket, and who
// is recorded, comes from the kernel. uid 65534 in the read group may list
// but not change; in the full group its changes are recorded as uid 65534
// whatever SUDO_USER says; a uid in neither group is refused at once.
func TestSocketGroupsAndKernelAudit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run steps as uid 65534")
	}
	src := useFakeSensor(t)
	e := newTestEnv(t)
	openForOthers(t, e)
	stop := startAgent(t, e, "--socket-group", "users", "--socket-read-group", "nogroup")
	src.emit(t, tmpExec("/tmp/backup.sh", "a"))
	inc := waitIncidents(t, e, 1)[0]

	readOnly := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups"}
	full := []string{"--reuid", "65534", "--regid", "65534", "--groups", "100"}
	stranger := []string{"--reuid", "65533", "--regid", "65533", "--clear-groups"}
	sock := []string{"--socket", e.sock}

	if out, code := asUser(t, readOnly, nil, append(sock, "incidents", "--json")...); code != 0 || !strings.Contains(out, inc.ID.String()) {
		t.Errorf("read group: incidents exit %d:\n%s", code, out)
	}
	out, code := asUser(t, readOnly, nil, append(sock, "skip", "add", "path", "/tmp/backup.sh")...)
	if code != 1 || !strings.Contains(out, "may query and subscribe but not change") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("read group: skip add exit %d, want 1 and one line:\n%s", code, out)
	}
	if out, code := asUser(t, readOnly, nil, append(sock, "monitor", "off")...); code != 1 || !strings.Contains(out, "forbidden") {
		t.Errorf("read group: monitor off exit %d:\n%s", code, out)
	}
	if out, code := asUser(t, stranger, nil, append(sock, "incidents")...); code != 1 || !strings.Contains(out, "not allowed") {
		t.Errorf("stranger: incidents exit %d, want 1 and a refusal:\n%s", code, out)
	}

	// Full control, claiming to be root through SUDO_USER.
	if out, code := asUser(t, full, []string{"SUDO_USER=root", "USER=root"}, append(sock, "skip", "add", "path", "/tmp/backup.sh")...); code != 0 {
		t.Fatalf("full group: skip add exit %d:\n%s", code, out)
	}
	self := filepath.Join(filepath.Dir(procwatchBinary(t)), "cli.test")
	copyFile(t, os.Args[0], self)
	ack := exec.Command(self, "-test.run=^TestHelperAcknowledge$")
	ack.Env = append(os.Environ(), "PROCWATCH_HELPER_SOCKET="+e.sock, "PROCWATCH_HELPER_ID="+inc.ID.String(), "SUDO_USER=root")
	ack.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{100}}}
	if out, err := ack.CombinedOutput(); err != nil || !strings.Contains(string(out), "acknowledged") {
		t.Fatalf("acknowledge as uid 65534: %v\n%s", err, out)
	}

	var skips []rules.Skip
	if err := json.Unmarshal([]byte(mustRun(t, e, "skip", "list", "--json")), &skips); err != nil {
		t.Fatal(err)
	}
	var by string
	for _, s := range skips {
		if s.Value == "/tmp/backup.sh" {
			by = s.AddedBy
		}
	}
	if !strings.Contains(by, "uid 65534") || strings.HasPrefix(by, "root") {
		t.Errorf("skip added_by %q, want the kernel's uid 65534, not the claimed root", by)
	}
	got := waitIncidents(t, e, 1)[0]
	h := got.History
	if len(h) != 2 || h[0].To != rules.StatusMasked || h[0].Skip == "" || h[1].To != rules.StatusAcknowledged || h[1].Skip != "" {
		t.Fatalf("history %+v, want masked by the skip, then acknowledged", h)
	}
	for _, c := range h {
		if c.By.UID != nobody || c.By.PID == 0 || c.By.Via != "socket" {
			t.Errorf("change %+v, want by uid 65534 with its pid, over the socket", c)
		}
	}
	if out, code := asUser(t, full, nil, append(sock, "monitor", "off")...); code != 0 {
		t.Fatalf("full group: monitor off exit %d:\n%s", code, out)
	}
	var st struct {
		Switch *struct {
			On bool        `json:"on"`
			By rules.Actor `json:"by"`
		} `json:"monitoring_switch"`
	}
	stOut, _, _ := runCLI(t, "", e.args("monitor", "status", "--json")...)
	if err := json.Unmarshal([]byte(stOut), &st); err != nil || st.Switch == nil || st.Switch.On || st.Switch.By.UID != nobody {
		t.Errorf("monitor status does not say uid 65534 switched monitoring off (%v):\n%s", err, stOut)
	}
	_, logs := stop()
	for _, want := range []string{"method=add_skip", "method=set_status", "method=set_monitoring", "uid=65534", "refused a change from a read-only caller"} {
		if !strings.Contains(logs, want) {
			t.Errorf("agent log lacks %q:\n%s", want, logs)
		}
	}
}

// copyFile copies an executable where other users can run it.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestHelperAcknowledge is the child process of the audit test: it
// acknowledges one incident through the socket with whatever credentials
// it was started with. It does nothing in a normal run.
func TestHelperAcknowledge(t *testing.T) {
	sock := os.Getenv("PROCWATCH_HELPER_SOCKET")
	if sock == "" {
		return
	}
	id, err := rules.ParseID(os.Getenv("PROCWATCH_HELPER_ID"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetStatus(context.Background(), []rules.ID{id}, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("acknowledged\n")
}

// TestAgentRefusesUntrustedPaths: a socket or database directory another
// user owns or may write to, and a symbolic link at the database path or
// at --output, stop the agent with one line and exit 1; nothing is written
// through the link.
func TestAgentRefusesUntrustedPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give directories to uid 65534")
	}
	useFakeSensor(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, e *testEnv) []string
		want    string
	}{
		{"socket directory owned by uid 65534", func(t *testing.T, e *testEnv) []string {
			mkdirOwned(t, filepath.Dir(e.sock), nobody, 0o700)
			return nil
		}, "owned by uid 65534"},
		{"world-writable socket directory", func(t *testing.T, e *testEnv) []string {
			mkdirOwned(t, filepath.Dir(e.sock), 0, 0o777)
			return nil
		}, "writable by others"},
		{"database directory owned by uid 65534", func(t *testing.T, e *testEnv) []string {
			mkdirOwned(t, filepath.Dir(e.db), nobody, 0o700)
			return nil
		}, "owned by uid 65534"},
		{"database path is a symbolic link", func(t *testing.T, e *testEnv) []string {
			mkdirOwned(t, filepath.Dir(e.db), 0, 0o700)
			os.Symlink(filepath.Join(e.dir, "victim"), e.db)
			return nil
		}, "not a regular file"},
		{"rules file writable by others", func(t *testing.T, e *testEnv) []string {
			os.Chmod(e.rules, 0o666)
			return nil
		}, "writable by group or others"},
		{"rules file owned by uid 65534", func(t *testing.T, e *testEnv) []string {
			os.Chown(e.rules, nobody, nobody)
			return nil
		}, "owned by uid 65534"},
		{"--output is a symbolic link", func(t *testing.T, e *testEnv) []string {
			out := filepath.Join(e.dir, "out.ndjson")
			os.Symlink(filepath.Join(e.dir, "victim"), out)
			return []string{"--output", out}
		}, "symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			os.WriteFile(filepath.Join(e.dir, "victim"), []byte("keep"), 0o600)
			extra := tt.prepare(t, &e)
			_, errOut, code := runCLI(t, "", e.args(append([]string{"agent"}, extra...)...)...)
			if code != 1 || !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want 1 and one line with %q", code, errOut, tt.want)
			}
			if b, _ := os.ReadFile(filepath.Join(e.dir, "victim")); string(b) != "keep" {
				t.Errorf("the link's target was written: %q", b)
			}
		})
	}
}

func mkdirOwned(t *testing.T, dir string, uid int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// TestServeStdioRecordsTheSSHUser: a change made through `serve --stdio`
// (what sshd runs for a remote front end) relayed to the agent is recorded
// with the relaying process's uid from the kernel and the SSH login and
// client address sshd put in its environment.
func TestServeStdioRecordsTheSSHUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run steps as uid 65534")
	}
	src := useFakeSensor(t)
	e := newTestEnv(t)
	openForOthers(t, e)
	startAgent(t, e, "--socket-group", "users")
	src.emit(t, tmpExec("/tmp/backup.sh", "a"))
	inc := waitIncidents(t, e, 1)[0]

	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--groups", "100",
		procwatchBinary(t), "--socket", e.sock, "serve", "--stdio")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "USER=alice", "SSH_CONNECTION=203.0.113.7 52144 10.0.0.1 22"}
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"type":"hello","version":%d,"software":"test","role":"client"}`+"\n"+
		`{"type":"request","id":1,"method":"set_status","params":{"ids":["%s"],"status":"masked"}}`+"\n", protocol.Version, inc.ID))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"type":"response","id":1,"result"`) {
		t.Fatalf("serve --stdio: %v\n%s", err, out)
	}
	got := waitIncidents(t, e, 1)[0]
	if len(got.History) != 1 {
		t.Fatalf("history %+v, want one change", got.History)
	}
	by := got.History[0].By
	if by.UID != nobody || by.SSHUser != "alice" || by.SSHFrom != "203.0.113.7:52144" || by.PID == 0 {
		t.Errorf("recorded %+v, want uid 65534, ssh alice from 203.0.113.7:52144", by)
	}
}

package tui

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmuxUI is the real procwatch binary running in a tmux session.
type tmuxUI struct {
	t       *testing.T
	tmux    string
	session string
	errFile string
}

// buildInTemp builds the binary into a new directory every user can read.
func buildInTemp(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "procwatch-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, buildProcwatch(t, dir)
}

// startTmuxUI runs shell command cmd in a new w×h tmux session.
func startTmuxUI(t *testing.T, tmux, cmd, errFile string, w, h int) *tmuxUI {
	t.Helper()
	u := &tmuxUI{t: t, tmux: tmux, session: fmt.Sprintf("procwatch-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()), errFile: errFile}
	u.run("new-session", "-d", "-s", u.session, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), cmd)
	t.Cleanup(func() { exec.Command(tmux, "kill-session", "-t", u.session).Run() })
	u.run("set", "-s", "escape-time", "0")
	return u
}

func (u *tmuxUI) run(args ...string) string {
	u.t.Helper()
	out, err := exec.Command(u.tmux, append([]string{"-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		u.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (u *tmuxUI) capture() string { return u.run("capture-pane", "-t", u.session, "-p") }

func (u *tmuxUI) keys(k ...string) { u.run(append([]string{"send-keys", "-t", u.session}, k...)...) }

// waitFor polls the pane until ok holds; the screen and the UI's stderr
// go into the failure.
func (u *tmuxUI) waitFor(what string, timeout time.Duration, ok func(string) bool) string {
	u.t.Helper()
	deadline := time.Now().Add(timeout)
	var s string
	for time.Now().Before(deadline) {
		s = u.capture()
		if ok(s) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	errOut, _ := os.ReadFile(u.errFile)
	u.t.Fatalf("screen never showed %s; last screen:\n%s\nstderr: %s", what, s, errOut)
	return ""
}

func e2ePrereqs(t *testing.T) (tmux string) {
	t.Helper()
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
	return tmux
}

// TestEndToEndUnprivilegedBanner starts the UI as uid 65534, which may not
// load BPF programs: the header must say NOT MONITORING and the banner
// must give the sensor's error in full, at 80×24.
func TestEndToEndUnprivilegedBanner(t *testing.T) {
	tmux := e2ePrereqs(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv not found (util-linux)")
	}
	dir, bin := buildInTemp(t)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	errFile := filepath.Join(data, "ui.err")
	cmd := fmt.Sprintf("%s --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all env TERM=xterm-256color HOME=%s %s --db %s --socket %s 2>%s",
		setpriv, data, bin, filepath.Join(data, "procwatch.db"), filepath.Join(data, "procwatch.sock"), errFile)
	u := startTmuxUI(t, tmux, cmd, errFile, 80, 24)
	s := u.waitFor("the not-monitoring banner", 20*time.Second, func(s string) bool {
		return strings.Contains(s, "✖ NOT MONITORING") && strings.Contains(s, "✖ not monitoring:")
	})
	if strings.Contains(s, "● monitoring") {
		t.Errorf("an unprivileged UI claims to monitor:\n%s", s)
	}
	// The reason, read across the banner's wrapped lines, is the sensor's
	// own: BPF was refused for lack of privilege, and what to do.
	f := flat(s)
	if !strings.Contains(f, "✖ not monitoring: start sensor:") || !strings.Contains(f, "not permitted") && !strings.Contains(f, "permission denied") || !strings.Contains(f, "as root") {
		t.Errorf("banner does not give the reason:\n%s", s)
	}
	if !strings.Contains(s, "own pipeline") {
		t.Errorf("header does not say the UI runs its own pipeline:\n%s", s)
	}
	for i, l := range strings.Split(s, "\n") {
		if len([]rune(l)) > 80 {
			t.Errorf("line %d wider than 80: %q", i, l)
		}
	}
	u.keys("q")
}

// TestEndToEndTracefsMounted starts the UI as root in a private mount
// namespace where tracefs is not mounted: procwatch mounts it itself and
// the header shows the sensor attached.
func TestEndToEndTracefsMounted(t *testing.T) {
	tmux := e2ePrereqs(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("unshare not found (util-linux)")
	}
	dir, bin := buildInTemp(t)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	errFile := filepath.Join(data, "ui.err")
	marker := filepath.Join(data, "unmounted")
	// In the new namespace: unmount every tracefs, prove it is gone, then
	// run the UI there.
	script := fmt.Sprintf(`umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; `+
		`if grep -q ' tracefs ' /proc/self/mounts; then echo still mounted >%[1]s; exit 1; fi; touch %[2]s; `+
		`exec env TERM=xterm-256color %[3]s --db %[4]s --socket %[5]s 2>%[1]s`,
		errFile, marker, bin, filepath.Join(data, "procwatch.db"), filepath.Join(data, "procwatch.sock"))
	cmd := fmt.Sprintf("%s --mount --propagation private sh -c %q", unshare, script)
	u := startTmuxUI(t, tmux, cmd, errFile, 160, 48)
	s := u.waitFor("the sensor attached", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "● monitoring") || strings.Contains(s, "NOT MONITORING")
	})
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("tracefs was not unmounted in the namespace before the UI started")
	}
	if !strings.Contains(s, "● monitoring") || strings.Contains(s, "not monitoring") {
		t.Fatalf("sensor not attached with tracefs unmounted:\n%s", s)
	}
	// The host's own mount is untouched (the namespace was private).
	if out, _ := os.ReadFile("/proc/self/mounts"); !strings.Contains(string(out), " tracefs ") {
		t.Errorf("tracefs vanished from the test's own namespace")
	}
	u.keys("q")
}

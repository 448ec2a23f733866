//go:build linux

package sensor_test

// Integration tests against the real kernel: they load the BPF programs,
// run real processes and check what the sensor reports. They need root. When
// BPF cannot load they skip, unless PROCWATCH_REQUIRE_BPF=1 (set by CI),
// in which case they fail.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/sensor"
)

// nobody is the unprivileged uid the escalation tests run as.
const nobody = 65534

// collector gathers events from a running sensor.
type collector struct {
	mu  sync.Mutex
	evs []event.Event
}

func (c *collector) add(ev *event.Event) {
	c.mu.Lock()
	c.evs = append(c.evs, *ev)
	c.mu.Unlock()
}

// find returns the events matching pred.
func (c *collector) find(pred func(*event.Event) bool) []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event.Event
	for i := range c.evs {
		if pred(&c.evs[i]) {
			out = append(out, c.evs[i])
		}
	}
	return out
}

// waitTimeout bounds how long a test waits for an event. Generous: the
// machine may be shared and loaded; an event that comes returns at once.
const waitTimeout = 30 * time.Second

// waitFor polls until pred matches an event or the deadline passes.
func (c *collector) waitFor(t *testing.T, what string, pred func(*event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if evs := c.find(pred); len(evs) > 0 {
			return evs[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s event within %v", what, waitTimeout)
	return event.Event{}
}

// startSensor loads and runs a sensor for the duration of the test.
func startSensor(t *testing.T, cfg sensor.Config) (*sensor.Sensor, *collector) {
	t.Helper()
	s, err := sensor.New(cfg)
	if err != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("BPF required but the sensor cannot load: %v", err)
		}
		t.Skipf("sensor cannot load (not root or no BPF): %v", err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})
	for i := 0; !s.Running(); i++ {
		if i > 3000 {
			t.Fatal("sensor did not attach within 30s")
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return s, c
}

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

// helper builds testdata/helper.c once into a directory every user can
// read, so that it can run as nobody and as a set-user-ID copy.
func helper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "procwatch-sensor-test-")
		if err != nil {
			helperErr = err
			return
		}
		os.Chmod(dir, 0o755)
		helperPath = filepath.Join(dir, "helper")
		out, err := exec.Command("gcc", "-static", "-O2", "-pthread", "-o", helperPath, "testdata/helper.c").CombinedOutput()
		if err != nil {
			helperErr = fmt.Errorf("gcc: %v: %s", err, out)
		}
	})
	if helperErr != nil {
		t.Fatalf("build helper (needs gcc and static libc, Debian build-essential): %v", helperErr)
	}
	return helperPath
}

// publicDir makes a temporary directory every user can enter.
func publicDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return dir
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
}

// run starts a command, waits for it, and returns its pid.
func run(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	cmd.Wait()
	return cmd.Process.Pid
}

func asNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

func pidIs(pid int, typ event.EventType) func(*event.Event) bool {
	return func(ev *event.Event) bool { return ev.PID == uint32(pid) && ev.Type == typ }
}

func texts(ss ...string) []event.Text {
	out := make([]event.Text, len(ss))
	for i, s := range ss {
		out[i] = event.Text(s)
	}
	return out
}

func TestExecSuccessAndExit(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	dir := publicDir(t)
	cmd := exec.Command("/bin/true", "first", "second arg")
	cmd.Dir = dir
	pid := run(t, cmd)

	ev := c.waitFor(t, "exec", pidIs(pid, event.TypeExec))
	real, _ := filepath.EvalSymlinks("/bin/true")
	if ev.Outcome != event.Success || string(ev.Exe) != real || ev.Filename != "/bin/true" {
		t.Errorf("exec = outcome %s exe %q filename %q, want success %q /bin/true", ev.Outcome, ev.Exe, ev.Filename, real)
	}
	if !slices.Equal(ev.Args, texts("/bin/true", "first", "second arg")) || ev.ArgsTruncated {
		t.Errorf("args = %q truncated %v", ev.Args, ev.ArgsTruncated)
	}
	if string(ev.Cwd) != dir {
		t.Errorf("cwd = %q, want %q", ev.Cwd, dir)
	}
	if ev.PPID != uint32(os.Getpid()) || ev.Comm != "true" || ev.UID != 0 {
		t.Errorf("ppid %d comm %q uid %d", ev.PPID, ev.Comm, ev.UID)
	}
	self, _ := os.Executable()
	if len(ev.Ancestors) == 0 || ev.Ancestors[0].PID != uint32(os.Getpid()) || string(ev.Ancestors[0].Exe) != self {
		t.Errorf("ancestors = %+v, want the test process %s first", ev.Ancestors, self)
	}

	exit := c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
	if exit.Outcome != event.Success || exit.ExitCode == nil || *exit.ExitCode != 0 || exit.Signal != "" || string(exit.Exe) != real {
		t.Errorf("exit = %+v", exit)
	}
	if exit.DurationNS <= 0 || exit.DurationNS > int64(10*time.Second) {
		t.Errorf("duration = %d", exit.DurationNS)
	}
	if n := len(c.find(pidIs(pid, event.TypeExit))); n != 1 {
		t.Errorf("%d exit events for one process, want 1", n)
	}
}

func TestFailedExec(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	dir := publicDir(t)
	noexec := filepath.Join(dir, "not-executable")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)

	tests := []struct {
		path, errno string
	}{
		{filepath.Join(dir, "does-not-exist"), "ENOENT"},
		{noexec, "EACCES"},
	}
	for _, tt := range tests {
		t.Run(tt.errno, func(t *testing.T) {
			cmd := exec.Command(tt.path, "arg1")
			if err := cmd.Start(); err == nil {
				cmd.Wait()
				t.Fatalf("exec %s succeeded", tt.path)
			}
			ev := c.waitFor(t, "failed exec", func(ev *event.Event) bool {
				return ev.Type == event.TypeExec && ev.Outcome == event.Failure && string(ev.Filename) == tt.path
			})
			if ev.Errno != tt.errno || string(ev.Exe) != tt.path {
				t.Errorf("errno %q exe %q, want %s %s", ev.Errno, ev.Exe, tt.errno, tt.path)
			}
			if !slices.Equal(ev.Args, texts(tt.path, "arg1")) {
				t.Errorf("args = %q", ev.Args)
			}
		})
	}
}

func TestExitCodesAndSignals(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)

	pid := run(t, exec.Command(h, "exit3"))
	ev := c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
	if ev.ExitCode == nil || *ev.ExitCode != 3 || ev.Signal != "" || ev.Outcome != event.Failure {
		t.Errorf("exit 3: %+v", ev)
	}

	pid = run(t, exec.Command(h, "segv"))
	ev = c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
	if ev.Signal != "SIGSEGV" || ev.Outcome != event.Failure {
		t.Errorf("segv: signal %q outcome %s", ev.Signal, ev.Outcome)
	}

	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "exec", pidIs(cmd.Process.Pid, event.TypeExec))
	cmd.Process.Kill()
	cmd.Wait()
	ev = c.waitFor(t, "exit", pidIs(cmd.Process.Pid, event.TypeExit))
	if ev.Signal != "SIGKILL" || ev.Outcome != event.Failure || ev.CoreDumped {
		t.Errorf("kill: signal %q outcome %s core %v", ev.Signal, ev.Outcome, ev.CoreDumped)
	}
}

// TestOneExitPerProcess: a process with several threads is reported once,
// when its last thread exits, whichever thread that is.
func TestOneExitPerProcess(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	for _, tt := range []struct {
		mode string
		code int
	}{{"threads", 5}, {"leader-first", 6}} {
		t.Run(tt.mode, func(t *testing.T) {
			pid := run(t, exec.Command(h, tt.mode))
			ev := c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
			if ev.ExitCode == nil || *ev.ExitCode != tt.code {
				t.Errorf("exit code %v, want %d", ev.ExitCode, tt.code)
			}
			time.Sleep(200 * time.Millisecond)
			if n := len(c.find(pidIs(pid, event.TypeExit))); n != 1 {
				t.Errorf("%d exit events for one process of 4 threads, want 1", n)
			}
		})
	}
}

func TestExePathIsResolved(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	dir := publicDir(t)
	bin := filepath.Join(dir, "prog")
	copyFile(t, h, bin, 0o755)
	link := filepath.Join(dir, "link-to-prog")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}

	relative := exec.Command("./prog", "noop")
	relative.Dir = dir
	symlinked := exec.Command(link, "noop")
	fexec := exec.Command(h, "fexecve", bin)

	for _, tt := range []struct {
		name     string
		cmd      *exec.Cmd
		filename string
	}{
		{"relative", relative, "./prog"},
		{"symlink", symlinked, link},
		{"execveat", fexec, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid := run(t, tt.cmd)
			ev := c.waitFor(t, "exec of prog", func(ev *event.Event) bool {
				return ev.PID == uint32(pid) && ev.Type == event.TypeExec && string(ev.Exe) == bin
			})
			if tt.filename != "" && string(ev.Filename) != tt.filename {
				t.Errorf("filename = %q, want %q", ev.Filename, tt.filename)
			}
		})
	}
}

func TestEscalation(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	dir := publicDir(t)
	suid := filepath.Join(dir, "suid-helper")
	copyFile(t, h, suid, 0o755)
	if err := os.Chown(suid, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain-helper")
	copyFile(t, h, plain, 0o755)

	t.Run("suid-exec", func(t *testing.T) {
		cmd := asNobody(exec.Command(suid, "id"))
		out, err := cmd.Output()
		if err != nil || string(out) != "uid=65534 euid=0\n" {
			t.Fatalf("set-user-ID helper: %v: %q", err, out)
		}
		pid := cmd.Process.Pid
		ev := c.waitFor(t, "escalation", pidIs(pid, event.TypeEscalation))
		if ev.Method != event.MethodSuidExec || ev.Outcome != event.Success || string(ev.Exe) != suid {
			t.Errorf("method %q outcome %s exe %q", ev.Method, ev.Outcome, ev.Exe)
		}
		if *ev.OldUID != nobody || *ev.OldEUID != nobody || *ev.NewUID != nobody || *ev.NewEUID != 0 {
			t.Errorf("ids old %d/%d new %d/%d", *ev.OldUID, *ev.OldEUID, *ev.NewUID, *ev.NewEUID)
		}
	})
	for _, tt := range []struct{ mode, method string }{
		{"setuid0", event.MethodSetuid},
		{"setresuid0", event.MethodSetresuid},
	} {
		t.Run(tt.method+" refused", func(t *testing.T) {
			pid := run(t, asNobody(exec.Command(plain, tt.mode)))
			ev := c.waitFor(t, "escalation", pidIs(pid, event.TypeEscalation))
			if ev.Method != tt.method || ev.Outcome != event.Failure || ev.Errno != "EPERM" {
				t.Errorf("method %q outcome %s errno %q", ev.Method, ev.Outcome, ev.Errno)
			}
			if *ev.OldUID != nobody || *ev.NewUID != 0 {
				t.Errorf("old uid %d requested %d", *ev.OldUID, *ev.NewUID)
			}
		})
	}
	t.Run("root calling setuid(0) is no escalation", func(t *testing.T) {
		pid := run(t, exec.Command(plain, "setuid0"))
		c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
		if evs := c.find(pidIs(pid, event.TypeEscalation)); len(evs) != 0 {
			t.Errorf("escalation reported for root: %+v", evs[0])
		}
	})
	t.Run("root in a user namespace is not root", func(t *testing.T) {
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Fatal("unshare (util-linux) is needed")
		}
		cmd := asNobody(exec.Command("unshare", "-U", "-r", plain, "setuid0"))
		out, err := cmd.CombinedOutput()
		pid := uint32(cmd.Process.Pid)
		if err != nil {
			t.Fatalf("unshare as nobody: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "setuid(0)=0") {
			t.Fatalf("setuid(0) inside the namespace should succeed: %s", out)
		}
		c.waitFor(t, "exit", func(ev *event.Event) bool { return ev.Type == event.TypeExit && ev.PID == pid })
		if evs := c.find(func(ev *event.Event) bool {
			return ev.PID == pid && ev.Type == event.TypeExec && string(ev.Exe) == plain
		}); len(evs) != 1 {
			t.Errorf("exec of the helper inside the namespace not seen")
		}
		if evs := c.find(func(ev *event.Event) bool {
			return ev.PID == pid && ev.Type == event.TypeEscalation
		}); len(evs) != 0 {
			t.Errorf("escalation reported inside a user namespace: %+v", evs[0])
		}
	})
}

func TestLongArguments(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)

	many := []string{"noop"}
	for i := 1; i < 100; i++ {
		many = append(many, fmt.Sprintf("arg%d", i))
	}
	pid := run(t, exec.Command(h, many...))
	ev := c.waitFor(t, "exec", pidIs(pid, event.TypeExec))
	if len(ev.Args) != 101 || ev.ArgsTruncated || string(ev.Args[100]) != "arg99" {
		t.Errorf("100 args: got %d (truncated %v)", len(ev.Args), ev.ArgsTruncated)
	}

	big := strings.Repeat("x", 10<<10)
	pid = run(t, exec.Command(h, "noop", big))
	ev = c.waitFor(t, "exec", pidIs(pid, event.TypeExec))
	if !ev.ArgsTruncated || len(ev.Args) != 3 || len(ev.Args[2]) < 4<<10 || !strings.HasPrefix(big, string(ev.Args[2])) {
		t.Errorf("10 KiB arg: truncated %v, %d args, last %d bytes", ev.ArgsTruncated, len(ev.Args), len(ev.Args[len(ev.Args)-1]))
	}
}

func TestAncestryAndProcessesFromBeforeStart(t *testing.T) {
	h := helper(t)
	// A shell that starts before the sensor and execs a child after it.
	marker := publicDir(t)
	early := exec.Command("/bin/sh", "-c", "while [ ! -e "+marker+"/go ]; do sleep 0.02; done; "+h+" noop ancestry; :")
	if err := early.Start(); err != nil {
		t.Fatal(err)
	}
	defer early.Wait()
	time.Sleep(100 * time.Millisecond)

	_, c := startSensor(t, sensor.Config{})
	os.WriteFile(marker+"/go", nil, 0o644)

	ev := c.waitFor(t, "exec of the child", func(ev *event.Event) bool {
		return ev.Type == event.TypeExec && len(ev.Args) == 3 && ev.Args[2] == "ancestry"
	})
	shell, _ := filepath.EvalSymlinks("/bin/sh")
	self, _ := os.Executable()
	if ev.PPID != uint32(early.Process.Pid) || string(ev.ParentExe) != shell {
		t.Errorf("parent %d %q, want %d %q", ev.PPID, ev.ParentExe, early.Process.Pid, shell)
	}
	if len(ev.Ancestors) < 2 || ev.Ancestors[0].PID != uint32(early.Process.Pid) ||
		ev.Ancestors[1].PID != uint32(os.Getpid()) || string(ev.Ancestors[1].Exe) != self {
		t.Errorf("ancestors = %+v", ev.Ancestors)
	}
	if last := ev.Ancestors[len(ev.Ancestors)-1]; last.PID != 1 {
		t.Errorf("ancestry ends at pid %d, want 1", last.PID)
	}
}

// TestStorm runs 10,000 short-lived processes from several workers and
// checks that every exec and every exit is seen and nothing is dropped.
func TestStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("storm skipped in -short mode")
	}
	s, c := startSensor(t, sensor.Config{})
	h := helper(t)
	const total, workers = 10000, 4
	pids := make(chan int, total)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < total/workers; i++ {
				cmd := exec.Command(h)
				if err := cmd.Run(); err != nil {
					t.Errorf("run: %v", err)
					return
				}
				pids <- cmd.Process.Pid
			}
		}()
	}
	wg.Wait()
	close(pids)

	want := map[uint32]bool{}
	for p := range pids {
		want[uint32(p)] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	var execs, exits map[uint32]bool
	for {
		execs, exits = map[uint32]bool{}, map[uint32]bool{}
		for _, ev := range c.find(func(ev *event.Event) bool { return want[ev.PID] }) {
			switch ev.Type {
			case event.TypeExec:
				if string(ev.Exe) == h {
					execs[ev.PID] = true
				}
			case event.TypeExit:
				exits[ev.PID] = true
			}
		}
		if len(execs) == len(want) && len(exits) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := s.Stats()
	t.Logf("%d processes: %d execs, %d exits seen; stats %+v", len(want), len(execs), len(exits), st)
	if len(want) != total || len(execs) != total || len(exits) != total {
		t.Errorf("saw %d execs and %d exits of %d processes", len(execs), len(exits), len(want))
	}
	if st.Drops != 0 || st.Malformed != 0 {
		t.Errorf("drops %d, malformed %d", st.Drops, st.Malformed)
	}
}

// TestTracepointMode runs the fallback hook set, used where BTF raw
// tracepoints are refused, through the basic exec and exit checks.
func TestTracepointMode(t *testing.T) {
	s, c := startSensor(t, sensor.Config{Mode: sensor.ModeTracepoint})
	if s.Mode() != sensor.ModeTracepoint {
		t.Fatalf("mode = %s", s.Mode())
	}
	h := helper(t)
	pid := run(t, exec.Command(h, "exit3"))
	ev := c.waitFor(t, "exec", pidIs(pid, event.TypeExec))
	if string(ev.Exe) != h || len(ev.Args) != 2 {
		t.Errorf("exec: exe %q args %q", ev.Exe, ev.Args)
	}
	exit := c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
	if exit.ExitCode == nil || *exit.ExitCode != 3 || string(exit.Exe) != h {
		t.Errorf("exit: %+v", exit)
	}
}

// TestSmallRingBufferCountsDrops shows that lost events are counted, never
// silent: a minimal ring buffer, a reader that stalls, and a burst.
func TestSmallRingBufferCountsDrops(t *testing.T) {
	s, err := sensor.New(sensor.Config{RingBufferBytes: os.Getpagesize()})
	if err != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("BPF required but the sensor cannot load: %v", err)
		}
		t.Skipf("sensor cannot load: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stall := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(*event.Event) { <-stall })
	}()
	for !s.Running() {
		time.Sleep(time.Millisecond)
	}
	h := helper(t)
	for i := 0; i < 200; i++ {
		exec.Command(h).Run()
	}
	close(stall)
	cancel()
	<-done
	if st := s.Stats(); st.Drops == 0 {
		t.Errorf("no drops counted with a %d-byte ring buffer and a stalled reader: %+v", os.Getpagesize(), st)
	}
}

// TestDeepPathsAreMarkedTruncated runs a program from a directory deeper
// than the BPF path walk goes: the exe and cwd must say they are cut, not
// pass for shorter absolute paths.
func TestDeepPathsAreMarkedTruncated(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	dir := publicDir(t)
	for i := 0; i < 50; i++ {
		dir = filepath.Join(dir, fmt.Sprintf("d%02d", i))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "deep")
	copyFile(t, h, bin, 0o755)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	pid := run(t, cmd)
	ev := c.waitFor(t, "exec", pidIs(pid, event.TypeExec))
	for _, tt := range []struct {
		name      string
		got, full string
	}{{"exe", string(ev.Exe), bin}, {"cwd", string(ev.Cwd), dir}} {
		tail, marked := strings.CutPrefix(tt.got, "…")
		if !marked || !strings.HasPrefix(tail, "/") || !strings.HasSuffix(tt.full, tail) {
			t.Errorf("%s = %q, want the tail of %q marked with a leading …", tt.name, tt.got, tt.full)
		}
	}
}

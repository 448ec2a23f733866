package evasion_test

// The harness: one real sensor for the package, whose events every test
// judges with an engine of its own (the default rules, or the default rules
// with skips added), and helpers that make files where an attacker would.
// The tests need root; when the sensor cannot load they skip, unless
// PROCWATCH_REQUIRE_BPF=1 (CI), in which case they fail.

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
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/sensor"
)

// nobody is the unprivileged user the attacks run as.
const nobody = 65534

// patience bounds every wait: generous, since the machine may be busy.
const patience = 30 * time.Second

var (
	sensorOnce sync.Once
	sensorErr  error
	stopSensor func()

	obsMu     sync.Mutex
	observers []*observer

	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopSensor != nil {
		stopSensor()
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needSensor starts the package's sensor on first use.
func needSensor(t *testing.T) {
	t.Helper()
	sensorOnce.Do(func() {
		if os.Geteuid() != 0 {
			sensorErr = fmt.Errorf("not root")
			return
		}
		s, err := sensor.New(sensor.Config{})
		if err != nil {
			sensorErr = err
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, feed) }()
		stopSensor = func() { cancel(); <-done; s.Close() }
		deadline := time.Now().Add(patience)
		for !s.Running() {
			select {
			case err := <-done:
				sensorErr = fmt.Errorf("sensor stopped: %v", err)
				stopSensor = func() { s.Close() }
				return
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				sensorErr = fmt.Errorf("sensor did not attach within %v", patience)
				return
			}
		}
	})
	if sensorErr != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("BPF required but the sensor cannot run: %v", sensorErr)
		}
		t.Skipf("sensor cannot run (not root or no BPF): %v", sensorErr)
	}
}

// feed is the sensor's callback: every observer judges every event, on the
// sensor's goroutine (an engine's Judge wants one goroutine).
func feed(ev *event.Event) {
	obsMu.Lock()
	obs := slices.Clone(observers)
	obsMu.Unlock()
	for _, o := range obs {
		o.judge(ev)
	}
}

// observer judges the sensor's events with one engine and keeps what
// it decided.
type observer struct {
	engine *rules.Engine

	mu        sync.Mutex
	events    []event.Event
	incidents []rules.Incident // every raise and update, in order
	skipped   map[uint32]int   // pid -> rule matches a skip suppressed
}

// watch starts judging events with rulesYAML until the test ends.
func watch(t *testing.T, rulesYAML string) *observer {
	t.Helper()
	needSensor(t)
	set, err := rules.Parse("test rules", []byte(rulesYAML))
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	o := &observer{engine: rules.NewEngine(set, rules.EngineOptions{Host: "e2e"}), skipped: map[uint32]int{}}
	obsMu.Lock()
	observers = append(observers, o)
	obsMu.Unlock()
	t.Cleanup(func() {
		obsMu.Lock()
		observers = slices.DeleteFunc(observers, func(x *observer) bool { return x == o })
		obsMu.Unlock()
	})
	return o
}

func (o *observer) judge(ev *event.Event) {
	v := o.engine.Judge(ev)
	c := *ev
	c.Args = slices.Clone(ev.Args)
	c.Ancestors = nil
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, c)
	o.incidents = append(o.incidents, v.Incidents...)
	if v.Skipped > 0 {
		o.skipped[ev.PID] += v.Skipped
	}
}

// latest returns the newest version of every incident matching pred.
func (o *observer) latest(pred func(*rules.Incident) bool) []rules.Incident {
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[rules.ID]bool{}
	var out []rules.Incident
	for i := len(o.incidents) - 1; i >= 0; i-- {
		in := &o.incidents[i]
		if !seen[in.ID] && pred(in) {
			out = append(out, *in)
		}
		seen[in.ID] = true
	}
	return out
}

// waitIncident waits for an incident matching pred and returns its newest
// version.
func (o *observer) waitIncident(t *testing.T, what string, pred func(*rules.Incident) bool) rules.Incident {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if got := o.latest(pred); len(got) > 0 {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no incident: %s (within %v)", what, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvent waits for an event matching pred.
func (o *observer) waitEvent(t *testing.T, what string, pred func(*event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		o.mu.Lock()
		i := slices.IndexFunc(o.events, func(ev event.Event) bool { return pred(&ev) })
		var ev event.Event
		if i >= 0 {
			ev = o.events[i]
		}
		o.mu.Unlock()
		if i >= 0 {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event: %s (within %v)", what, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// judgedAll waits until the exit of pid has been judged: every event of the
// process came before it.
func (o *observer) judgedAll(t *testing.T, pid int) {
	t.Helper()
	o.waitEvent(t, fmt.Sprintf("exit of pid %d", pid), pidIs(pid, event.TypeExit))
}

// noIncident checks that nothing the process pid did raised an incident,
// and returns how many rule matches skips suppressed.
func (o *observer) noIncident(t *testing.T, what string, pid int) int {
	t.Helper()
	o.judgedAll(t, pid)
	if got := o.latest(func(in *rules.Incident) bool { return in.Process.PID == uint32(pid) }); len(got) > 0 {
		t.Errorf("%s raised %d incidents, want none; first: %s %s %q", what, len(got), got[0].Rule, got[0].Severity, got[0].Summary)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.skipped[uint32(pid)]
}

func pidIs(pid int, typ event.EventType) func(*event.Event) bool {
	return func(ev *event.Event) bool { return ev.PID == uint32(pid) && ev.Type == typ }
}

// incidentOf selects the incidents of one rule about process pid.
func incidentOf(rule string, pid int) func(*rules.Incident) bool {
	return func(in *rules.Incident) bool { return in.Rule == rule && in.Process.PID == uint32(pid) }
}

// defaultRules is the repository's rules.yaml, with globalSkips (a YAML
// mapping body such as "commands: [nice]") in place of its empty global
// skip lists.
func defaultRules(t *testing.T, globalSkips string) string {
	t.Helper()
	b, err := os.ReadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const empty = "  commands: []\n  paths: []\n  users: []\n"
	if !strings.Contains(s, empty) {
		t.Fatal("rules.yaml has no empty global skip lists to replace")
	}
	if globalSkips != "" {
		s = strings.Replace(s, empty, "  "+strings.ReplaceAll(globalSkips, "\n", "\n  ")+"\n", 1)
	}
	return s
}

// evader builds testdata/evader.c once and returns its path, in a directory
// only root can write.
func evader(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("/var/lib", "procwatch-evasion-build-")
		if buildErr != nil {
			return
		}
		os.Chmod(buildDir, 0o755)
		out, err := exec.Command("gcc", "-static", "-O2", "-o", filepath.Join(buildDir, "evader"), "testdata/evader.c").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("gcc: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build the test program (needs gcc and static libc, Debian build-essential): %v", buildErr)
	}
	return filepath.Join(buildDir, "evader")
}

// writableDir makes a directory under root (a world-writable place such as
// /tmp or /var/tmp) that uid 65534 can enter.
func writableDir(t *testing.T, root string) string {
	t.Helper()
	dir, err := os.MkdirTemp(root, "procwatch-evasion-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// safeDir makes a directory only root can write, outside every writable
// location.
func safeDir(t *testing.T) string { return writableDir(t, "/var/lib") }

// place copies src to dst with mode, owned by uid.
func place(t *testing.T, src, dst string, mode os.FileMode, uid int) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
	return dst
}

func asNobody(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	return cmd
}

// run runs cmd to its end and returns its pid; a non-zero exit is fine.
func run(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	cmd.Wait()
	return cmd.Process.Pid
}

// crash starts cmd (an evader in "wait" mode), lets before run once it has
// been exec'd, and kills it with sig. It returns the pid.
func crash(t *testing.T, o *observer, cmd *exec.Cmd, sig syscall.Signal, before func()) int {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	defer in.Close()
	pid := cmd.Process.Pid
	o.waitEvent(t, "exec of the process to crash", pidIs(pid, event.TypeExec))
	if before != nil {
		before()
	}
	cmd.Process.Signal(sig)
	cmd.Wait()
	return pid
}

func args(ev *event.Event) []string {
	out := make([]string, len(ev.Args))
	for i, a := range ev.Args {
		out[i] = string(a)
	}
	return out
}

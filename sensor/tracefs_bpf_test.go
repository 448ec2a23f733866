//go:build linux

package sensor_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/sensor"
)

const tracefsChildEnv = "PROCWATCH_TEST_TRACEFS_CHILD"

func tracefsMounted() bool {
	var fs unix.Statfs_t
	return unix.Statfs("/sys/kernel/tracing", &fs) == nil && fs.Type == unix.TRACEFS_MAGIC
}

// TestMountsTracefs runs a sensor in a private mount namespace where
// tracefs is not mounted: it mounts tracefs itself, says so once, and
// attaches (TestTracefsChild does the checking, inside the namespace).
func TestMountsTracefs(t *testing.T) {
	if os.Getenv(tracefsChildEnv) != "" {
		t.Skip("already inside the namespace")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatal("BPF required but not root")
		}
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is needed")
	}
	script := `umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug/tracing 2>/dev/null; exec "$@"`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
		os.Args[0], "-test.run=^TestTracefsChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), tracefsChildEnv+"=1", "PROCWATCH_REQUIRE_BPF=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTracefsChild") {
		t.Fatalf("sensor in a namespace without tracefs: %v\n%s", err, out)
	}
	if !tracefsMounted() {
		t.Error("tracefs is no longer mounted outside the private namespace")
	}
}

// TestTracefsChild is run by TestMountsTracefs inside its namespace.
func TestTracefsChild(t *testing.T) {
	if os.Getenv(tracefsChildEnv) == "" {
		t.Skip("run by TestMountsTracefs inside a private mount namespace")
	}
	if tracefsMounted() {
		t.Fatal("tracefs is still mounted in the private namespace")
	}
	var logs syncBuffer
	s, c := startSensor(t, sensor.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !tracefsMounted() {
		t.Fatal("the sensor attached but tracefs is not mounted")
	}
	if n := strings.Count(logs.String(), "mounted tracefs at /sys/kernel/tracing"); n != 1 {
		t.Errorf("the mount was announced %d times, want once; logs:\n%s", n, logs.String())
	}
	if st := s.Stats(); st.State != event.SensorAttached {
		t.Errorf("state %q, want attached", st.State)
	}
	// The syscall tracepoints, found through tracefs, work: a failed exec.
	missing := filepath.Join(t.TempDir(), "missing")
	if exec.Command(missing).Run() == nil {
		t.Fatal("exec of a missing file succeeded")
	}
	c.waitFor(t, "failed exec", func(ev *event.Event) bool {
		return ev.Type == event.TypeExec && ev.Outcome == event.Failure && string(ev.Exe) == missing
	})
}

// TestSensorState: Stats says attached while Run runs, off after.
func TestSensorState(t *testing.T) {
	s, err := sensor.New(sensor.Config{})
	if err != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("BPF required but the sensor cannot load: %v", err)
		}
		t.Skipf("sensor cannot load: %v", err)
	}
	defer s.Close()
	if st := s.Stats(); st.State != event.SensorOff {
		t.Errorf("before Run: state %q, want off", st.State)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(*event.Event) {}) }()
	for !s.Running() {
		select {
		case err := <-done:
			t.Fatalf("Run: %v", err)
		default:
		}
	}
	if st := s.Stats(); st.State != event.SensorAttached || st.Error != "" {
		t.Errorf("running: state %q error %q, want attached", st.State, st.Error)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.State != event.SensorOff {
		t.Errorf("after Run: state %q, want off", st.State)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestAttachBeforeSeed: the programs attach before the process table is
// seeded from /proc, so a process that starts and ends while the seed is
// being read is still reported. The seed is held open on a FIFO in a fake
// /proc until the process has run.
func TestAttachBeforeSeed(t *testing.T) {
	// A pid above any pid_max, so that no event ever looks it up again.
	const fakePid = "999999999"
	procDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(procDir, fakePid), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(procDir, fakePid, "stat")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sensor.New(sensor.Config{ProcDir: procDir})
	if err != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("BPF required but the sensor cannot load: %v", err)
		}
		t.Skipf("sensor cannot load: %v", err)
	}
	defer s.Close()
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.add) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Opening the FIFO for writing waits until the seed opens it to read.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("the sensor says it is running before its seed is read")
	}
	pid := run(t, exec.Command("/bin/true", "during-seed"))
	w.WriteString(fakePid + " (fake) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n")
	w.Close()
	// Later reads (the table's sweep) must not block on the FIFO.
	stat := filepath.Join(procDir, "stat")
	if err := os.WriteFile(stat, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(stat, fifo); err != nil {
		t.Fatal(err)
	}

	ev := c.waitFor(t, "exec during the seed", pidIs(pid, event.TypeExec))
	if len(ev.Args) != 2 || ev.Args[1] != "during-seed" {
		t.Errorf("exec args %q", ev.Args)
	}
	c.waitFor(t, "exit during the seed", pidIs(pid, event.TypeExit))
}

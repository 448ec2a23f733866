package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// fillLargeIncidents writes n incidents of about 2 KiB each (a long
// argument, as a build's compiler line is) into the test database.
func fillLargeIncidents(t *testing.T, e testEnv, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(e.db), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(e.db, store.Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		t.Fatal(err)
	}
	long := event.Text("CFLAGS=" + strings.Repeat("-O2 -g -pipe ", 150))
	from := time.Now().Add(-time.Duration(n) * time.Second)
	for i := range n {
		at := from.Add(time.Duration(i) * time.Second)
		exe := event.Text(fmt.Sprintf("/tmp/build-%06d/configure", i))
		st.Put(rules.Incident{
			ID: rules.NewID(at), Time: at, FirstSeen: at, LastSeen: at, Count: 1, Host: "h",
			Rule: "tmp-exec", Type: rules.TypeBinExecution, Severity: rules.SeverityHigh,
			Status: rules.StatusOpen, Outcome: event.Success, Summary: exe + " executed by uid 1000",
			Process: event.Event{Type: event.TypeExec, Time: at, PID: uint32(i), UID: 1000, Exe: exe, Comm: "configure",
				Args: []event.Text{exe, "--prefix=/usr/local", long}, Cwd: "/tmp/build"},
		})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// watchHWM polls the peak resident memory (VmHWM) of process pid until it
// exits. The child's rusage is no use here: a child the test process
// starts inherits the test process's own peak when it execs.
func watchHWM(pid int) (peak int64) {
	status := fmt.Sprintf("/proc/%d/status", pid)
	for {
		b, err := os.ReadFile(status)
		if err != nil {
			return peak
		}
		i := strings.Index(string(b), "VmHWM:")
		if i < 0 {
			return peak // a zombie: the memory is gone
		}
		var kb int64
		fmt.Sscanf(string(b[i+len("VmHWM:"):]), "%d", &kb)
		peak = max(peak, kb<<10)
		time.Sleep(2 * time.Millisecond)
	}
}

// countingWriter counts bytes and lines without keeping them.
type countingWriter struct{ bytes, lines int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.bytes += int64(len(p))
	w.lines += int64(strings.Count(string(p), "\n"))
	return len(p), nil
}

// TestIncidentsStreamsALargeAnswer lists every incident of a real agent
// whose answer is about 90 MB of NDJSON with the real binary, and reads the
// client's peak resident memory from the kernel (VmHWM): the incidents are
// written as they arrive, so the client holds a frame or two, not the
// answer. Before, it collected the answer (up to a 256 MiB budget) and its
// peak grew with it, well past the answer's size.
func TestIncidentsStreamsALargeAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 40,000-incident database")
	}
	const n = 40_000
	bin := procwatchBinary(t)
	e := newTestEnv(t)
	fillLargeIncidents(t, e, n)
	useFakeSensor(t)
	startAgent(t, e)

	for _, format := range [][]string{{"--json"}, {}} {
		args := e.args(append([]string{"incidents", "--limit", "0"}, format...)...)
		cmd := exec.Command(bin, args...)
		out := &countingWriter{}
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = out, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		maxRSS := watchHWM(cmd.Process.Pid)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("procwatch incidents %v: %v\n%s", format, err, stderr.String())
		}
		t.Logf("incidents --limit 0 %v: %d lines, %d MiB written; the client's peak RSS %d MiB", format, out.lines, out.bytes>>20, maxRSS>>20)
		want := int64(n)
		if len(format) == 0 {
			want++ // the header
		}
		if out.lines != want {
			t.Errorf("%v: %d lines, want %d", format, out.lines, want)
		}
		if len(format) > 0 && out.bytes < 80<<20 {
			t.Fatalf("the answer is only %d bytes: too small to tell streaming from collecting", out.bytes)
		}
		// The binary and runtime alone take about 20 MiB; a frame is at
		// most 1 MiB. Collecting the answer took well over its size.
		if maxRSS > 64<<20 {
			t.Errorf("%v: the client's peak RSS was %d MiB for a %d MiB answer, want under 64 MiB", format, maxRSS>>20, out.bytes>>20)
		}
	}
}

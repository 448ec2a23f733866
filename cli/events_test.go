package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

// lockedBuffer is a bytes.Buffer safe to read while runEvents writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEventsJSON runs `procwatch events --json` against the real sensor and
// checks that a process shows up as parseable NDJSON with the contract's
// field names, and that the counts reach stderr at the end.
func TestEventsJSON(t *testing.T) {
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runEvents(ctx, &stdout, &stderr, true, 8) }()
	for i := 0; !strings.Contains(stderr.String(), "sensor attached"); i++ {
		select {
		case err := <-done:
			if os.Getenv("PROCWATCH_REQUIRE_BPF") != "1" {
				t.Skipf("sensor cannot load: %v", err)
			}
			t.Fatalf("events: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if i > 1000 {
			t.Fatal("sensor did not attach")
		}
	}
	cmd := exec.Command("/bin/sh", "-c", "exit 7", "procwatch-events-test")
	cmd.Run()
	pid := cmd.Process.Pid

	var exitLine map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for exitLine == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		out := stdout.String()
		// The writer flushes whole buffers, so the last line may be partial.
		out = out[:strings.LastIndexByte(out, '\n')+1]
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line is not JSON: %v: %s", err, sc.Bytes())
			}
			if m["pid"] == float64(pid) && m["type"] == "exit" {
				exitLine = m
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if exitLine == nil {
		t.Fatalf("no exit event for pid %d in:\n%s", pid, stdout.String())
	}
	if exitLine["exit_code"] != float64(7) || exitLine["outcome"] != string(event.Failure) {
		t.Errorf("exit event = %v", exitLine)
	}
	for _, k := range []string{"time", "pid", "tid", "ppid", "uid", "euid", "gid", "egid", "auid", "comm", "exe", "outcome", "duration_ns"} {
		if _, ok := exitLine[k]; !ok {
			t.Errorf("exit event lacks %q", k)
		}
	}
	if !strings.Contains(stderr.String(), "dropped") {
		t.Errorf("no counts on stderr: %q", stderr.String())
	}
}

func TestFormatEventEscapesProcessStrings(t *testing.T) {
	ev := &event.Event{
		Type: event.TypeExec, Outcome: event.Success, Comm: "evil\x1b[2J",
		Exe: "/tmp/\u202egnp.sh", Args: []event.Text{"x", "\r\x1b]8;;http://x\x07"},
	}
	line := formatEvent(ev)
	if strings.ContainsAny(line[:len(line)-1], "\x1b\r\x07\n\u202e") {
		t.Fatalf("terminal control characters in %q", line)
	}
	if !strings.Contains(line, `evil\x1b[2J`) || !strings.Contains(line, `\u{202e}`) {
		t.Errorf("escapes missing: %q", line)
	}
}

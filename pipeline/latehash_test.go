package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/exehash"
	"github.com/procwatch/procwatch/rules"
)

// tmpTool writes an executable script in a new directory under /tmp (the
// test rules raise an incident for any binary there).
func tmpTool(t *testing.T, content string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "late-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "tool")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFirstSightingGainsExeSHA256: the first run of a binary the cache has
// never seen raises its incident before the hash is known; once the
// background hash is done, the stored incident carries it, and a
// subscriber gets the updated incident, without another run.
func TestFirstSightingGainsExeSHA256(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	p := tmpTool(t, "#!/bin/sh\necho first\n")
	want, err := exehash.File(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates, err := h.local.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan rules.Incident, 64)
	go func() {
		for u := range updates {
			for _, inc := range u.Incidents {
				seen <- inc
			}
		}
	}()

	h.source.emit(t, fileExec(t, p, "once"))
	var stored rules.Incident
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		incs := h.incidents(t, api.Query{})
		if len(incs) != 1 {
			t.Fatalf("%d incidents, want 1", len(incs))
		}
		if stored = incs[0]; stored.Process.ExeSHA256 != "" || time.Now().After(deadline) {
			break
		}
	}
	if stored.Process.ExeSHA256 != want || stored.Count != 1 {
		t.Fatalf("stored incident: exe_sha256 %q count %d, want %s and 1 (cache %+v)", stored.Process.ExeSHA256, stored.Count, want, h.local.hashes.Stats())
	}
	for deadline := time.After(20 * time.Second); ; {
		select {
		case inc := <-seen:
			if inc.ID == stored.ID && inc.Process.ExeSHA256 == want {
				st, err := h.local.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.ExeHashes == nil || st.ExeHashes.Attached != 1 || st.ExeHashes.Unattached != 0 {
					t.Fatalf("status exe_hashes = %+v, want 1 attached, 0 unattached", st.ExeHashes)
				}
				return
			}
		case <-deadline:
			t.Fatal("the subscriber never got the incident with its exe_sha256")
		}
	}
}

// TestLateHashNeedsTheFileThatRan: when the file was changed after the
// run (its ctime is later than the exec), the sum of what is there now is
// not that of what ran: the incident gets none, and it is counted.
func TestLateHashNeedsTheFileThatRan(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	ranAt := time.Now().Add(-time.Minute)
	p := tmpTool(t, "#!/bin/sh\necho rewritten\n")
	ev := fileExec(t, p, "before")
	ev.Time = ranAt
	h.source.emit(t, ev)
	waitHashed(t, h.local, fileExec(t, p, "probe"))
	for deadline := time.Now().Add(20 * time.Second); h.local.late.unattached.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the changed file's incident was never counted unattached")
		}
	}
	incs := h.incidents(t, api.Query{})
	if len(incs) != 1 || incs[0].Process.ExeSHA256 != "" {
		t.Fatalf("incidents %+v: want one without exe_sha256", incs)
	}
	if n := h.local.late.attached.Load(); n != 0 {
		t.Fatalf("%d attached, want 0", n)
	}
}

// TestLateHashesAreBounded: the incidents waiting for a hash are bounded
// per file and in files; past the bounds they are counted, not kept.
func TestLateHashesAreBounded(t *testing.T) {
	now := time.Now()
	incsFor := func(ev *event.Event, n int) []rules.Incident {
		out := make([]rules.Incident, n)
		for i := range out {
			out[i] = rules.Incident{ID: rules.NewID(now), Process: *ev}
		}
		return out
	}
	tests := []struct {
		name                 string
		files, perFile       int
		wantFiles, wantUnatt int
	}{
		{"within bounds", 3, 2, 3, 0},
		{"too many for one file", 1, maxLatePerFile + 3, 1, 3},
		{"too many files", maxLateFiles + 5, 1, maxLateFiles, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newLateHashes()
			h.mu.Lock()
			for f := 0; f < tc.files; f++ {
				ev := &event.Event{Time: now, PID: 7, Exe: "/tmp/x", ExeDev: 1, ExeIno: uint64(10 + f)}
				incs := incsFor(ev, tc.perFile)
				h.addLocked(ev, incs)
				h.addLocked(ev, incs) // repeats are remembered once
			}
			h.mu.Unlock()
			if len(h.files) != tc.wantFiles || int(h.unattached.Load()) != 2*tc.wantUnatt {
				t.Fatalf("%d files, %d unattached; want %d, %d", len(h.files), h.unattached.Load(), tc.wantFiles, 2*tc.wantUnatt)
			}
		})
	}
}

// TestLateSweepKeepsUnservedFiles: after lost notices the updater looks at
// every waiting file; one not hashed yet waits on, one waiting too long is
// given up and counted.
func TestLateSweepKeepsUnservedFiles(t *testing.T) {
	h := newHarness(t, nil)
	l := h.local
	ev := &event.Event{Time: time.Now(), PID: 7, Exe: "/tmp/never-hashed", ExeDev: 1, ExeIno: 99}
	l.late.mu.Lock()
	l.late.addLocked(ev, []rules.Incident{{ID: rules.NewID(time.Now()), Process: *ev}})
	l.late.mu.Unlock()

	l.late.overflow.Store(true)
	l.attachLate(l.late.take(nil))
	if n := len(l.late.files); n != 1 || l.late.unattached.Load() != 0 {
		t.Fatalf("after a sweep: %d files waiting, %d unattached; want 1, 0", n, l.late.unattached.Load())
	}
	l.late.files[[2]uint64{1, 99}].since = time.Now().Add(-2 * lateMaxAge)
	l.late.overflow.Store(true)
	l.attachLate(l.late.take(nil))
	if n := len(l.late.files); n != 0 || l.late.unattached.Load() != 1 {
		t.Fatalf("after waiting too long: %d files waiting, %d unattached; want 0, 1", n, l.late.unattached.Load())
	}
}

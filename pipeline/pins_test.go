package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/exehash"
	"github.com/procwatch/procwatch/rules"
)

// fileExec is the exec event the sensor sends for the real file at p: its
// device and inode. Pid 0, so the cache finds the file by its path.
func fileExec(t *testing.T, p, arg string) *event.Event {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	ev := execEvent(p, arg)
	ev.PID, ev.ExeDev, ev.ExeIno = 0, uint64(st.Dev), st.Ino
	return ev
}

// waitHashed waits until the pipeline's cache knows the file of ev.
func waitHashed(t *testing.T, l *Local, ev *event.Event) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s := l.hashes.Lookup(ev); s != "" {
			return s
		}
	}
	t.Fatalf("%s never hashed: %+v", ev.Exe, l.hashes.Stats())
	return ""
}

// TestPinnedSkipSilencesOnlyThatFile pins a real file, then puts other
// content at the same path (in place, and as a new file renamed over it):
// only the pinned content is silenced, and every incident carries the
// hash of the file that ran.
func TestPinnedSkipSilencesOnlyThatFile(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	dir, err := os.MkdirTemp("/tmp", "pin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "tool")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho good\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	good, err := exehash.File(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := h.local.AddSkip(ctx, rules.Skip{Kind: rules.SkipPath, Value: p, Pin: good}); err != nil {
		t.Fatal(err)
	}
	// AddSkip warms the cache; once it knows the file, its runs are silenced.
	if got := waitHashed(t, h.local, fileExec(t, p, "probe")); got != good {
		t.Fatalf("cache hash %s, want %s", got, good)
	}
	h.source.emit(t, fileExec(t, p, "1"))
	if incs := h.incidents(t, api.Query{}); len(incs) != 0 {
		t.Fatalf("the pinned file raised %d incidents", len(incs))
	}

	replace := []struct {
		name  string
		write func() error
	}{
		{"rewritten in place", func() error { return os.WriteFile(p, []byte("#!/bin/sh\necho evil\n"), 0o755) }},
		{"renamed over", func() error {
			tmp := p + ".new"
			if err := os.WriteFile(tmp, []byte("#!/bin/sh\necho worse\n"), 0o755); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		}},
	}
	for i, r := range replace {
		if err := r.write(); err != nil {
			t.Fatal(err)
		}
		want, err := exehash.File(p)
		if err != nil {
			t.Fatal(err)
		}
		// Right after the change the hash is not known: fail closed.
		h.source.emit(t, fileExec(t, p, r.name))
		incs := h.incidents(t, api.Query{})
		if len(incs) != 2*i+1 {
			t.Fatalf("%s: %d incidents after its first run, want %d", r.name, len(incs), 2*i+1)
		}
		// Once hashed, the incident carries the new content's hash.
		waitHashed(t, h.local, fileExec(t, p, "probe"))
		h.source.emit(t, fileExec(t, p, r.name+" again"))
		incs = h.incidents(t, api.Query{})
		if len(incs) != 2*i+2 {
			t.Fatalf("%s: %d incidents after its second run, want %d", r.name, len(incs), 2*i+2)
		}
		if got := incs[0].Process.ExeSHA256; got != want {
			t.Errorf("%s: incident exe_sha256 %q, want %s", r.name, got, want)
		}
	}
}

// TestRepeatsLookUpNoHash checks that the repeats of an incident whose
// binary's hash is known cost no lookup in the hash cache (each is a stat
// or two), while the incident still carries the hash.
func TestRepeatsLookUpNoHash(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	dir, err := os.MkdirTemp("/tmp", "repeat-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "tool")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho storm\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	want, err := exehash.File(p)
	if err != nil {
		t.Fatal(err)
	}
	h.source.emit(t, fileExec(t, p, "x")) // unknown yet: queued for hashing
	waitHashed(t, h.local, fileExec(t, p, "x"))
	h.source.emit(t, fileExec(t, p, "x")) // the repeat that learns the hash
	st := h.local.hashes.Stats()
	looked := st.Hits + st.Misses
	for range 50 {
		h.source.emit(t, fileExec(t, p, "x"))
	}
	if st := h.local.hashes.Stats(); st.Hits+st.Misses != looked {
		t.Errorf("50 repeats made %d hash lookups, want 0", st.Hits+st.Misses-looked)
	}
	incs := h.incidents(t, api.Query{})
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want 1 counting every run", len(incs))
	}
	if incs[0].Count != 52 || incs[0].Process.ExeSHA256 != want {
		t.Errorf("incident count %d exe_sha256 %q, want 52 and %s", incs[0].Count, incs[0].Process.ExeSHA256, want)
	}
}

// TestPinnedSkipMasksALateHash: a run of the pinned file whose hash the
// cache does not know yet raises an incident (fail closed); once the hash
// arrives and equals the pin, the incident is masked for that skip, with
// the agent named in its history, and removing the skip re-opens it.
func TestPinnedSkipMasksALateHash(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	content := []byte("#!/bin/sh\necho pinned\n")
	p := tmpTool(t, string(content))
	pin, err := exehash.File(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	added, _, err := h.local.AddSkip(ctx, rules.Skip{Kind: rules.SkipPath, Value: p, Pin: pin})
	if err != nil {
		t.Fatal(err)
	}
	waitHashed(t, h.local, fileExec(t, p, "probe"))
	// The same bytes written again: a new version of the file, whose hash
	// the cache does not know until it has read it.
	if err := os.WriteFile(p, content, 0o755); err != nil {
		t.Fatal(err)
	}
	h.source.emit(t, fileExec(t, p, "late"))
	incs := h.incidents(t, api.Query{})
	if len(incs) != 1 {
		t.Fatalf("%d incidents from a run of unknown hash, want 1 (fail closed)", len(incs))
	}
	id := incs[0].ID
	var got rules.Incident
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got = h.incidents(t, api.Query{})[0]
		if got.Status == rules.StatusMasked || time.Now().After(deadline) {
			break
		}
	}
	if got.ID != id || got.Status != rules.StatusMasked || got.Process.ExeSHA256 != pin {
		t.Fatalf("incident after its hash arrived: status %s, exe_sha256 %q; want masked with %s", got.Status, got.Process.ExeSHA256, pin)
	}
	last := got.History[len(got.History)-1]
	if last.Skip != added.ID || last.To != rules.StatusMasked || last.By.PID != uint32(os.Getpid()) {
		t.Fatalf("history %+v: want a change to masked by this process for skip %s", got.History, added.ID)
	}
	if n, err := h.local.RemoveSkip(ctx, added.ID); err != nil || n != 1 {
		t.Fatalf("remove skip: re-opened %d, %v; want 1", n, err)
	}
	if st := h.incidents(t, api.Query{})[0].Status; st != rules.StatusOpen {
		t.Fatalf("after removing the skip the incident is %s, want open", st)
	}
}

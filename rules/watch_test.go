package rules

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type reloadResult struct {
	set *RuleSet
	err error
}

func waitReload(t *testing.T, ch <-chan reloadResult) reloadResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no reload within 5s")
		return reloadResult{}
	}
}

func expectQuiet(t *testing.T, ch <-chan reloadResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("unexpected reload: %+v", r)
	case <-time.After(3 * reloadDelay):
	}
}

const (
	goodV1 = "version: 1\nrules:\n  - {name: one, type: bin-execution, severity: {success: low}}\n"
	goodV2 = "version: 1\nrules:\n  - {name: one, type: bin-execution, severity: {success: low}}\n  - {name: two, type: root-escalation, severity: {success: high}}\n"
	broken = "version: 1\nrules:\n  - {name: one, type: bin-exec, severity: {success: low}}\n"
)

func TestWatcherReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(goodV1)
	ch := make(chan reloadResult, 10)
	w, err := NewWatcher(path, func(set *RuleSet, err error) { ch <- reloadResult{set, err} })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// An edit in place.
	write(goodV2)
	if r := waitReload(t, ch); r.err != nil || len(r.set.Rules) != 2 {
		t.Fatalf("after edit: %+v", r)
	}

	// A broken file reports its positioned error and nothing else.
	write(broken)
	r := waitReload(t, ch)
	var perrs ParseErrors
	if r.set != nil || !errors.As(r.err, &perrs) || !strings.Contains(r.err.Error(), "rules.yaml:3:") {
		t.Fatalf("after breaking: %+v", r)
	}
	if w.Err() == nil {
		t.Error("Err() is nil while the file is broken")
	}

	// Other files in the directory are not ours.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	expectQuiet(t, ch)

	// An atomic save: write elsewhere, rename over.
	tmp := filepath.Join(dir, ".rules.yaml.swp")
	if err := os.WriteFile(tmp, []byte(goodV1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if r := waitReload(t, ch); r.err != nil || len(r.set.Rules) != 1 {
		t.Fatalf("after rename: %+v", r)
	}
	if w.Err() != nil {
		t.Errorf("Err() = %v after a good reload", w.Err())
	}

	// Touching without changing the content does not reload...
	write(goodV1)
	expectQuiet(t, ch)
	// ...but SIGHUP always does.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if r := waitReload(t, ch); r.err != nil || len(r.set.Rules) != 1 {
		t.Fatalf("after SIGHUP: %+v", r)
	}
	w.Reload()
	if r := waitReload(t, ch); r.err != nil {
		t.Fatalf("after Reload: %+v", r)
	}

	// A removed file is an error; the caller keeps its rules.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := waitReload(t, ch); r.set != nil || !errors.Is(r.err, os.ErrNotExist) {
		t.Fatalf("after remove: %+v", r)
	}
}

// TestWatchEngineKeepsRulesOnBrokenFile is the hot-reload contract end to
// end: a broken file leaves the previous rules active and says why.
func TestWatchEngineKeepsRulesOnBrokenFile(t *testing.T) {
	testUsers(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(goodV1), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set, EngineOptions{Host: "h"})
	var logs syncBuffer
	w, err := WatchEngine(path, e, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; log:\n%s", what, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if err := os.WriteFile(path, []byte(goodV2), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("two rules", func() bool { return len(e.Rules()) == 2 })

	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("the reload error", func() bool { return w.Err() != nil })
	if n := len(e.Rules()); n != 2 {
		t.Errorf("broken file changed the rules: %d active, want the previous 2", n)
	}
	if incs := e.Evaluate(escalationEvent("/usr/bin/sudo", 1000, "suid-exec", "success")); len(incs) != 1 || incs[0].Rule != "two" {
		t.Errorf("previous rules not applied: %+v", incs)
	}
	waitFor("the error in the log", func() bool {
		return strings.Contains(logs.String(), "rules reload failed") && strings.Contains(logs.String(), `unknown rule type \"bin-exec\"`)
	})
}

// syncBuffer is a bytes.Buffer safe for the watcher goroutine to write
// while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

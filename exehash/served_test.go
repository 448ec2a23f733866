//go:build linux

package exehash

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestOnServedAndVerified: the waiter is told of each served request (and
// of a dropped one), and Verified gives the sum only for a version last
// changed no later than the run it is asked about.
func TestOnServedAndVerified(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tool")
	body := []byte("#!/bin/sh\necho v\n")
	if err := os.WriteFile(p, body, 0o755); err != nil {
		t.Fatal(err)
	}
	ev := eventFor(t, p)
	c := New(Options{Queue: 1})
	var mu sync.Mutex
	var told [][2]uint64
	c.OnServed(func(dev, ino uint64) {
		mu.Lock()
		told = append(told, [2]uint64{dev, ino})
		mu.Unlock()
	})
	ranBefore := time.Now().Add(-time.Hour)
	if s := c.Verified(ev.ExeDev, ev.ExeIno, time.Now()); s != "" {
		t.Fatalf("Verified before any hash: %q", s)
	}
	c.Lookup(ev) // queued: the queue (1) is now full
	other := *ev
	other.ExeIno++
	c.Lookup(&other) // dropped, and told
	mu.Lock()
	if len(told) != 1 || told[0] != [2]uint64{other.ExeDev, other.ExeIno} {
		t.Fatalf("after a drop, told %v", told)
	}
	mu.Unlock()

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); c.Run(stop) }()
	defer func() { close(stop); <-done }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(told)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never told of the served file: %+v", c.Stats())
		}
	}
	tests := []struct {
		name  string
		ranAt time.Time
		want  string
	}{
		{"run after the file was written", time.Now(), sumOf(body)},
		{"run before the file's last change", ranBefore, ""},
	}
	for _, tc := range tests {
		if got := c.Verified(ev.ExeDev, ev.ExeIno, tc.ranAt); got != tc.want {
			t.Errorf("%s: Verified = %q, want %q", tc.name, got, tc.want)
		}
	}
}

//go:build linux

package exehash

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// eventFor builds the event the sensor would send for path: its device and
// inode, and a pid that does not exist so only the path is tried.
func eventFor(t *testing.T, path string) *event.Event {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &event.Event{Type: event.TypeExec, PID: 0, Exe: event.Text(path), ExeDev: uint64(st.Dev), ExeIno: st.Ino}
}

// waitSum looks ev up until the background worker has hashed it.
func waitSum(t *testing.T, c *Cache, ev *event.Event) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := c.Lookup(ev); s != "" {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no hash for %s: %+v", ev.Exe, c.Stats())
	return ""
}

func start(t *testing.T) *Cache {
	c := New(Options{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); c.Run(stop) }()
	t.Cleanup(func() { close(stop); <-done })
	return c
}

func TestLookupHashesInBackgroundAndFailsClosedOnChange(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tool")
	v1 := []byte("#!/bin/sh\necho one\n")
	if err := os.WriteFile(p, v1, 0o755); err != nil {
		t.Fatal(err)
	}
	c := start(t)
	ev := eventFor(t, p)
	if got := c.Lookup(ev); got != "" {
		t.Fatalf("first lookup answered %q; it must not read the file", got)
	}
	if got := waitSum(t, c, ev); got != sumOf(v1) {
		t.Fatalf("hash %s, want %s", got, sumOf(v1))
	}

	// Rewrite in place (same inode) and put the old mtime back: the ctime
	// moves, so the old hash is no longer given.
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	v2 := []byte("#!/bin/sh\necho two\n")
	if err := os.WriteFile(p, v2, 0o755); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	ev2 := eventFor(t, p)
	if ev2.ExeIno != ev.ExeIno {
		t.Fatal("the rewrite changed the inode; the test wants the same one")
	}
	if got := c.Lookup(ev2); got == sumOf(v1) {
		t.Fatal("after an in-place rewrite the cache still gave the old hash")
	}
	if got := waitSum(t, c, ev2); got != sumOf(v2) {
		t.Fatalf("hash after rewrite %s, want %s", got, sumOf(v2))
	}
}

func TestLookupRefusesAnotherFileAtThePath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tool")
	if err := os.WriteFile(p, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := start(t)
	ev := eventFor(t, p)
	waitSum(t, c, ev)
	// A different file replaces it at the same path: the event of the old
	// file must not get the new file's hash, nor the new one the old's.
	tmp := filepath.Join(dir, "new")
	if err := os.WriteFile(tmp, []byte("two"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if got := c.Lookup(ev); got != "" {
			t.Fatalf("the old file's event got hash %s from the file now at its path", got)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if got := waitSum(t, c, eventFor(t, p)); got != sumOf([]byte("two")) {
		t.Fatalf("new file hash %s", got)
	}
}

func TestLookupThroughProcExe(t *testing.T) {
	// This test's own binary, looked up by pid with a path that is wrong:
	// /proc/PID/exe finds it, as it would across mount namespaces.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ev := eventFor(t, self)
	ev.PID = uint32(os.Getpid())
	ev.Exe = "/nonexistent/elsewhere"
	c := start(t)
	want, err := File(self)
	if err != nil {
		t.Fatal(err)
	}
	if got := waitSum(t, c, ev); got != want {
		t.Fatalf("hash via /proc/PID/exe %s, want %s", got, want)
	}
}

func TestStormQueuesOnce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tool")
	if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Queue: 1}) // no worker running: requests wait
	ev := eventFor(t, p)
	for i := 0; i < 1000; i++ {
		c.Lookup(ev)
	}
	if s := c.Stats(); s.Dropped != 0 || len(c.reqs) != 1 || s.Misses != 1000 {
		t.Fatalf("1000 lookups of one new file: %+v, %d queued; want one request, none dropped", s, len(c.reqs))
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("y"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.Lookup(eventFor(t, other))
	if s := c.Stats(); s.Dropped != 1 {
		t.Fatalf("a request past a full queue must be counted as dropped: %+v", s)
	}
}

func TestFileAndValidSum(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := File(p)
	if err != nil || got != sumOf([]byte("abc")) || !ValidSum(got) {
		t.Fatalf("File = %q, %v", got, err)
	}
	if _, err := File(dir); err == nil {
		t.Fatal("hashing a directory must fail")
	}
	for _, s := range []string{"", "abc", got[:63] + "G", got + "0"} {
		if ValidSum(s) {
			t.Errorf("ValidSum(%q) = true", s)
		}
	}
}

// BenchmarkLookupHit is the cost the event path pays for a known binary:
// one stat of /proc/PID/exe and a map lookup, no read.
func BenchmarkLookupHit(b *testing.B) {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(self, &st); err != nil {
		b.Fatal(err)
	}
	ev := &event.Event{PID: uint32(os.Getpid()), Exe: event.Text(self), ExeDev: uint64(st.Dev), ExeIno: st.Ino}
	c := New(Options{})
	key, sum, err := c.hashFile(self, ev.ExeDev, ev.ExeIno)
	if err != nil {
		b.Fatal(err)
	}
	c.put(key, sum)
	b.ReportAllocs()
	for b.Loop() {
		if c.Lookup(ev) == "" {
			b.Fatal("miss")
		}
	}
}

// BenchmarkLookupUnknown is the cost for a binary never hashed: a map
// lookup and a request already in flight, no stat.
func BenchmarkLookupUnknown(b *testing.B) {
	ev := &event.Event{PID: uint32(os.Getpid()), Exe: "/nonexistent", ExeDev: 1, ExeIno: 2}
	c := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		if c.Lookup(ev) != "" {
			b.Fatal("hit")
		}
	}
}

// TestRefusesDevicesAndFIFOs: a path that by now names a FIFO, a device or
// a symlink to one is refused, promptly.
func TestRefusesDevicesAndFIFOs(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, link, "/dev/zero"} {
		done := make(chan error, 1)
		go func() { _, err := File(p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("File(%s) = %v, want not a regular file", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("File(%s) blocked", p)
		}
	}
}

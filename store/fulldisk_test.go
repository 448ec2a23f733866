package store

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory for the test
// (root only) and unmounts it at the end.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs the suite as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file until the filesystem is full and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// Fill the last partial block too.
	for {
		if _, err := f.Write(chunk[:512]); err != nil {
			return path
		}
	}
}

// TestFullDiskLosesNothing puts the database on a small tmpfs, fills it,
// and keeps raising incidents. Commits fail with ENOSPC; reads still
// answer from what is committed; Status shows the pending count and the
// error; retries and their log lines back off (before, the commit loop
// retried and logged every 100 ms: ten lines a second). Once space
// returns, every incident commits.
func TestFullDiskLosesNothing(t *testing.T) {
	dir := mountTmpfs(t, "8m")
	var logs syncBuffer
	s, err := Open(filepath.Join(dir, "procwatch.db"), Options{RetentionAge: -1, BatchInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := fixtures(baseTime, 500)
	putAll(t, s, before)

	filler := fillDisk(t, dir)
	during := fixtures(baseTime.Add(time.Hour), 5000)
	for _, inc := range during {
		s.Put(inc)
	}
	failedAt := time.Now()
	deadline := failedAt.Add(30 * time.Second)
	for s.Stats().LastError == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Status()
	if !strings.Contains(st.CommitError, "no space left on device") || st.Pending != len(during) || st.FailingSince == nil {
		t.Fatalf("status while the disk is full: %+v", st)
	}

	// Reads answer from what is committed, at once.
	start := time.Now()
	got, err := s.Query(api.Query{})
	if err != nil || len(got) != len(before) {
		t.Fatalf("query on a full disk: %d incidents, %v; want the %d committed", len(got), err, len(before))
	}
	if n, err := s.Count(); err != nil || n != len(before) {
		t.Errorf("count on a full disk: %d, %v", n, err)
	}
	// A flush during the backoff returns at once, saying why.
	if err := s.Flush(); !errors.Is(err, ErrCommitsFailing) && (err == nil || !strings.Contains(err.Error(), "no space")) {
		t.Errorf("Flush on a full disk: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("reads took %v on a full disk", took)
	}

	// Let it fail for three seconds: without backoff that was 150
	// retries and 30 log lines.
	time.Sleep(3 * time.Second)
	s.qmu.Lock()
	failures := s.failures
	s.qmu.Unlock()
	failLines := strings.Count(logs.String(), "commit failed")
	if failures > 20 || failLines > 4 {
		t.Errorf("in %v of a full disk: %d commit attempts, %d log lines; want backoff", time.Since(failedAt).Round(time.Second), failures, failLines)
	}
	if st := s.Stats(); st.Dropped != 0 {
		t.Errorf("dropped %d incidents on a full disk", st.Dropped)
	}

	// Space returns: everything commits within the capped retry delay.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		n, err := s.Count()
		if err == nil && n == len(before)+len(during) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after space returned: %d incidents stored, %v; stats %+v", n, err, s.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.Status(); st.CommitError != "" || st.Pending != 0 || st.FailingSince != nil {
		t.Errorf("status after recovery: %+v", st)
	}
	if !strings.Contains(logs.String(), "commits resumed") {
		t.Errorf("no recovery log line:\n%s", logs.String())
	}
	checkCounters(t, s)
	t.Logf("%d commit attempts failed, %d log lines", failures, failLines)
}

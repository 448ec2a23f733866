package fleet

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/procwatch/procwatch/rules"
)

// TestOutboxResumes: the outbox keeps each incident's latest version
// until it is acknowledged, an acknowledgement of an older version leaves
// the newer one queued, and after a reopen (an agent restart) the queue
// and the revision counter carry on where they were.
func TestOutboxResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	box, err := openOutbox(path, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	inc := func(id rules.ID, count uint64) rules.Incident {
		return rules.Incident{ID: id, Time: now, Host: "h", Rule: "r", Status: rules.StatusOpen, Count: count}
	}
	if err := box.add([]rules.Incident{inc(1, 1), inc(2, 1), inc(3, 1)}); err != nil {
		t.Fatal(err)
	}
	first, _ := box.next(10)
	base := first[0].Rev - 1 // a new outbox starts at the time in microseconds
	if len(first) != 3 || base < uint64(now.Add(-time.Minute).UnixMicro()) || first[2].Rev != base+3 {
		t.Fatalf("queued %+v", first)
	}
	// Incident 2 is updated while version 1 is in flight; then 1 and 2's
	// first version are acknowledged.
	if err := box.add([]rules.Incident{inc(2, 2)}); err != nil {
		t.Fatal(err)
	}
	if err := box.acked(first[:2]); err != nil {
		t.Fatal(err)
	}
	box.close()

	box, err = openOutbox(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer box.close()
	left, _ := box.next(10)
	if len(left) != 2 || left[0].ID != 2 || left[0].Rev != base+4 || left[1].ID != 3 || left[1].Rev != base+3 {
		t.Fatalf("after restart the outbox holds %+v, want incident 2 rev 4 and incident 3 rev 3", left)
	}
	pending, rev, acked := box.counts()
	if pending != 2 || rev != base+4 || acked != base+2 {
		t.Fatalf("counts: pending %d rev %d acked %d, want 2 %d %d", pending, rev, acked, base+4, base+2)
	}
	if err := box.add([]rules.Incident{inc(4, 1)}); err != nil {
		t.Fatal(err)
	}
	if all, _ := box.next(10); all[len(all)-1].Rev != base+5 {
		t.Fatalf("revision after restart %d, want %d (the counter persists)", all[len(all)-1].Rev, base+5)
	}
}

// TestAgentCloseKeepsQueued: incidents handed to the agent but not yet in
// the outbox when it stops are written there, for the next start.
func TestAgentCloseKeepsQueued(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	a, err := NewAgent(AgentConfig{Host: "h", OutboxPath: path})
	if err != nil {
		t.Fatal(err)
	}
	for id := range rules.ID(3) {
		a.Put(rules.Incident{ID: id + 1, Host: "h", Status: rules.StatusOpen, Count: 1})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	box, err := openOutbox(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer box.close()
	if pending, _, _ := box.counts(); pending != 3 {
		t.Fatalf("%d incidents in the outbox after Close, want 3", pending)
	}
}

// TestAgentQueueCostsWhatItHolds: an agent that has queued nothing holds
// no memory for its queue (a preallocated channel of 65,536 incidents was
// 52 MB that every garbage collection scanned), and a queue past its bound
// drops its oldest incidents, counted as lost in the status.
func TestAgentQueueCostsWhatItHolds(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a, err := NewAgent(AgentConfig{Host: "h", OutboxPath: filepath.Join(t.TempDir(), "outbox"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Fatalf("a new agent holds %d MiB of heap, want under 4 MiB", grew>>20)
	}
	for id := range rules.ID(queueLen + 10) {
		a.Put(rules.Incident{ID: id + 1, Host: "h", Status: rules.StatusOpen, Count: 1})
	}
	if lost := a.Stats().Lost; lost != 10 {
		t.Fatalf("lost %d after %d puts into a queue of %d with no writer running, want 10", lost, queueLen+10, queueLen)
	}
	if got, _ := a.pub.queue.Take(nil); got[0].ID != 11 {
		t.Fatalf("oldest queued incident %d, want 11: the oldest give way", got[0].ID)
	}
}

// TestOutboxRefusesSymlink: the outbox is never opened through a symbolic
// link, which could point it at another file.
func TestOutboxRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	link := filepath.Join(dir, "outbox")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if box, err := openOutbox(link, false); err == nil {
		box.close()
		t.Fatal("opened the outbox through a symbolic link")
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("the link's target was created")
	}
}

package store

import (
	"runtime"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// TestRepeatsInOneBatch checks that a batch holding many repeats of the
// same incidents (an exec storm deduplicated by the rules) commits to the
// same state as committing each repeat on its own: record, count, status,
// severity index and noise counters.
func TestRepeatsInOneBatch(t *testing.T) {
	a, b := fixture(baseTime, 1), fixture(baseTime.Add(time.Second), 2)
	var puts []rules.Incident
	for i := 1; i <= 300; i++ {
		ra, rb := a, b
		ra.Count, ra.LastSeen = uint64(i), a.LastSeen.Add(time.Duration(i)*time.Millisecond)
		rb.Count = uint64(i)
		if i > 100 && i <= 200 {
			ra.Severity = rules.SeverityCritical // raised mid-storm, then back
		}
		ra.Process.Args = append(ra.Process.Args[:len(ra.Process.Args):len(ra.Process.Args)], event.Text(string(rune(0x30+i%10))))
		puts = append(puts, ra)
		if i%3 == 0 {
			puts = append(puts, rb)
		}
	}
	// A status given with the first put (no stored record yet) survives,
	// as it would when each is written in turn.
	puts[0].Status = rules.StatusAcknowledged

	batched, _ := openTemp(t, Options{RetentionAge: -1, BatchInterval: time.Hour})
	putAll(t, batched, puts)
	oneByOne, _ := openTemp(t, Options{RetentionAge: -1, BatchInterval: time.Hour})
	for i := range puts {
		putAll(t, oneByOne, puts[i:i+1])
	}

	if st := batched.Stats(); st.Committed != uint64(len(puts)) || st.Batches != 1 {
		t.Errorf("batched Stats: committed %d batches %d, want %d and 1", st.Committed, st.Batches, len(puts))
	}
	for _, id := range []rules.ID{a.ID, b.ID} {
		got, ok, err := batched.Get(id)
		want, _, _ := oneByOne.Get(id)
		if err != nil || !ok {
			t.Fatalf("Get %v: found %v, %v", id, ok, err)
		}
		sameIncident(t, got, want)
	}
	if got, _, _ := batched.Get(a.ID); got.Count != 300 || got.Status != rules.StatusAcknowledged {
		t.Errorf("a: count %d status %s, want 300 acknowledged", got.Count, got.Status)
	}
	gotOpen, _ := batched.OpenBySeverity()
	wantOpen, _ := oneByOne.OpenBySeverity()
	if len(gotOpen) != len(wantOpen) {
		t.Errorf("OpenBySeverity: %v, want %v", gotOpen, wantOpen)
	}
	for k, v := range wantOpen {
		if gotOpen[k] != v {
			t.Errorf("OpenBySeverity[%s] = %d, want %d", k, gotOpen[k], v)
		}
	}
	gotNoise, _ := batched.Noise(time.Time{}, 0)
	wantNoise, _ := oneByOne.Noise(time.Time{}, 0)
	if len(gotNoise.Commands) != len(wantNoise.Commands) || len(gotNoise.Paths) != len(wantNoise.Paths) {
		t.Fatalf("Noise: %+v, want %+v", gotNoise, wantNoise)
	}
	for i := range wantNoise.Commands {
		if gotNoise.Commands[i] != wantNoise.Commands[i] {
			t.Errorf("Noise command %d: %+v, want %+v", i, gotNoise.Commands[i], wantNoise.Commands[i])
		}
	}
	if n, _ := batched.Count(); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}

// TestPutReusesQueue checks that once a batch is committed, Put queues
// the next incidents on its array, and indexes them in its map, instead of
// growing new ones (about two dozen allocations for a thousand distinct
// incidents): an incident storm costs the writer no allocation per
// incident. GOMAXPROCS is 1 while it counts, so that no other goroutine's
// allocations are counted with Put's.
func TestPutReusesQueue(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1, BatchInterval: time.Hour})
	incs := fixtures(baseTime, 1000)
	put := func() {
		for i := range incs {
			s.Put(incs[i])
		}
	}
	put()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	runtime.ReadMemStats(&before)
	put()
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > 2 {
		t.Errorf("1000 Puts after a commit allocated %d times, want none", n)
	}
	inc := incs[999]
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(inc.ID); got.ID != inc.ID {
		t.Errorf("incident not stored after reuse")
	}
	if st := s.Stats(); st.Committed != 2000 {
		t.Errorf("committed %d, want 2000", st.Committed)
	}
}

// TestRepeatsWaitNewIncidentsDoNot checks the two deadlines of the queue:
// a repeat (count above one) waits for RepeatInterval, here an hour, while
// a new incident is committed within BatchInterval and takes the waiting
// repeat with it.
func TestRepeatsWaitNewIncidentsDoNot(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1, BatchInterval: 20 * time.Millisecond, RepeatInterval: time.Hour})
	repeat := fixture(baseTime, 1)
	repeat.Count = 7
	s.Put(repeat)
	time.Sleep(300 * time.Millisecond) // fifteen batch intervals
	if st := s.Stats(); st.Committed != 0 || st.Batches != 0 {
		t.Fatalf("a lone repeat was committed before RepeatInterval: %+v", st)
	}
	fresh := fixture(baseTime.Add(time.Second), 2)
	fresh.Count = 1
	s.Put(fresh)
	waitCommitted(t, s, 2, "a new incident")
	if st := s.Stats(); st.Batches != 1 {
		t.Fatalf("want both in one commit, got %+v", st)
	}
	got, ok, err := s.Get(repeat.ID)
	if err != nil || !ok || got.Count != 7 {
		t.Fatalf("the repeat did not go with the new incident's commit: count %d, found %v, %v", got.Count, ok, err)
	}
}

// TestFateIsUrgent checks that an update carrying a process's fate does
// not wait for RepeatInterval like a plain repeat.
func TestFateIsUrgent(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1, BatchInterval: 20 * time.Millisecond, RepeatInterval: time.Hour})
	inc := fixture(baseTime, 1)
	inc.Count = 3
	inc.Fate = &event.Fate{Time: baseTime, Signal: "SIGKILL"}
	s.Put(inc)
	waitCommitted(t, s, 1, "a fate update")
}

// waitCommitted waits until s has committed n incidents, failing after 10
// s: far beyond the 20 ms BatchInterval of the tests that use it, and far
// short of their RepeatInterval of an hour.
func waitCommitted(t *testing.T, s *Store, n uint64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Committed < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not committed within 10 s: %+v", what, s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPutFoldsRepeats checks that repeats of a queued incident replace it
// in the queue (a storm of one incident holds one entry, not one per
// exec), keep the first one's status, and still count in Committed.
func TestPutFoldsRepeats(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1, BatchInterval: time.Hour})
	a, b := fixture(baseTime, 1), fixture(baseTime.Add(time.Second), 2)
	a.Status = rules.StatusAcknowledged
	for i := 1; i <= 1000; i++ {
		r := a
		r.Count = uint64(i)
		if i > 1 {
			r.Status = rules.StatusOpen
		}
		s.Put(r)
		if i == 500 {
			s.Put(b)
		}
	}
	if q := s.Stats().Queued; q != 2 {
		t.Fatalf("queue holds %d entries after 1000 repeats of one incident and one other, want 2", q)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Committed != 1001 || st.Queued != 0 {
		t.Fatalf("stats after flush: %+v, want 1001 committed", st)
	}
	got, ok, err := s.Get(a.ID)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if got.Count != 1000 || got.Status != rules.StatusAcknowledged {
		t.Fatalf("stored count %d status %v, want 1000 and the first put's acknowledged", got.Count, got.Status)
	}
}

package pipeline

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/rules"
)

// recordingObserver keeps what the pipeline told it.
type recordingObserver struct {
	mu       sync.Mutex
	judged   int
	took     time.Duration
	raised   []rules.Incident
	lost     uint64
	kicked   int
	reloadKO int
}

func (o *recordingObserver) Judged(took time.Duration, incs []rules.Incident) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.judged++
	o.took += took
	o.raised = append(o.raised, incs...)
}

func (o *recordingObserver) SubscriberLost(n uint64) {
	o.mu.Lock()
	o.lost += n
	o.mu.Unlock()
}

func (o *recordingObserver) SubscriberDropped() {
	o.mu.Lock()
	o.kicked++
	o.mu.Unlock()
}

func (o *recordingObserver) RulesReloadFailed() {
	o.mu.Lock()
	o.reloadKO++
	o.mu.Unlock()
}

func (o *recordingObserver) snapshot() recordingObserver {
	o.mu.Lock()
	defer o.mu.Unlock()
	return recordingObserver{judged: o.judged, took: o.took, raised: append([]rules.Incident(nil), o.raised...),
		lost: o.lost, kicked: o.kicked, reloadKO: o.reloadKO}
}

// TestObserverSeesJudgementsAndReloadErrors checks that every event judged
// is reported with its time and what it raised or updated, and that a
// failed reload is reported while a good one is not.
func TestObserverSeesJudgementsAndReloadErrors(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t, func(c *Config) { c.Observer = obs })
	h.waitRunning(t)
	h.source.emit(t, execEvent("/tmp/dropper", "-x"))
	h.source.emit(t, execEvent("/tmp/dropper", "-x"))
	h.source.emit(t, execEvent("/usr/bin/ls", "-l"))

	got := obs.snapshot()
	if got.judged != 3 {
		t.Errorf("Judged called %d times for 3 events", got.judged)
	}
	if got.took <= 0 {
		t.Errorf("evaluation time %v, want > 0", got.took)
	}
	if len(got.raised) != 2 || got.raised[0].Count != 1 || got.raised[1].Count != 2 ||
		got.raised[0].ID != got.raised[1].ID || got.raised[0].Severity != rules.SeverityHigh {
		t.Errorf("Judged saw incidents %+v; want one high incident, then its repeat", got.raised)
	}

	if err := os.WriteFile(h.path, []byte("version: 1\nrules:\n  - name: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.reload(); err == nil {
		t.Fatal("reloading a broken file succeeded")
	}
	if err := os.WriteFile(h.path, []byte(testRules), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.reload(); err != nil {
		t.Fatal(err)
	}
	if got := obs.snapshot().reloadKO; got != 1 {
		t.Errorf("RulesReloadFailed called %d times, want 1 (the broken file only)", got)
	}
}

// TestObserverSeesSubscriberLosses checks that what a slow subscriber is
// told it lost is what the observer counts, and that a subscriber dropped
// for reading nothing is reported.
func TestObserverSeesSubscriberLosses(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t, func(c *Config) {
		c.Observer = obs
		c.MailboxEvents = 50
		c.DropAfter = 300 * time.Millisecond
	})
	h.waitRunning(t)
	slow, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for range n {
		h.source.emit(t, execEvent("/usr/bin/true", "x"))
	}
	_, told := drainLosses(t, slow, n)
	if told == 0 {
		t.Fatal("the slow subscriber lost nothing; the test needs a loss")
	}
	if got := obs.snapshot().lost; got != told {
		t.Errorf("observer counted %d lost, the subscriber was told of %d", got, told)
	}

	// Stop reading altogether: the subscriber is dropped and reported.
	deadline := time.Now().Add(10 * time.Second)
	for obs.snapshot().kicked == 0 {
		h.source.emit(t, execEvent("/usr/bin/true", "y"))
		if time.Now().After(deadline) {
			t.Fatal("a subscriber that stopped reading was never reported dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := obs.snapshot().kicked; got != 1 {
		t.Errorf("SubscriberDropped called %d times, want 1", got)
	}
}

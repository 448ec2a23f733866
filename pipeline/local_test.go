package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

const testRules = `version: 1
rules:
  - name: tmp-exec
    type: bin-execution
    match:
      paths: ["/tmp/**"]
    severity:
      success: high
      failure: medium
`

// fakeSource stands in for the sensor: the test pushes events, and Run
// hands them to the pipeline from one goroutine, as the sensor does.
type fakeSource struct {
	events  chan fakeItem
	started chan struct{}
	runs    atomic.Int32
	running atomic.Bool
	seen    atomic.Uint64
}

type fakeItem struct {
	ev   *event.Event
	done chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{events: make(chan fakeItem), started: make(chan struct{}, 16)}
}

func (f *fakeSource) Run(ctx context.Context, handle func(*event.Event)) error {
	f.runs.Add(1)
	f.running.Store(true)
	defer f.running.Store(false)
	f.started <- struct{}{}
	for {
		select {
		case it := <-f.events:
			handle(it.ev)
			f.seen.Add(1)
			// The sensor reuses its event memory: scribble over it so a
			// pipeline that kept the pointer would notice.
			it.ev.Exe = "reused"
			if len(it.ev.Args) > 0 {
				it.ev.Args[0] = "reused"
			}
			close(it.done)
		case <-ctx.Done():
			return nil
		}
	}
}

func (f *fakeSource) Stats() event.Stats {
	return event.Stats{Exec: f.seen.Load(), Mode: "fake"}
}

// emit hands ev to the running pipeline and waits until handle returned.
func (f *fakeSource) emit(t *testing.T, ev *event.Event) {
	t.Helper()
	it := fakeItem{ev, make(chan struct{})}
	select {
	case f.events <- it:
	case <-time.After(10 * time.Second):
		t.Error("the source is not running")
		return
	}
	<-it.done
}

var t0 = time.Now().Add(-time.Hour).Truncate(time.Second)

func execEvent(exe string, arg string) *event.Event {
	return &event.Event{
		Type: event.TypeExec, Time: time.Now(), PID: 100, PPID: 1, UID: 1000, EUID: 1000,
		Comm: event.Text(filepath.Base(exe)), Exe: event.Text(exe), Filename: event.Text(exe),
		Args: []event.Text{event.Text(exe), event.Text(arg)}, Outcome: event.Success,
	}
}

type harness struct {
	local  *Local
	store  *store.Store
	source *fakeSource
	path   string // the rules file
	cancel context.CancelFunc
	done   chan error
}

// newHarness runs a Local on a fresh database and rules file.
func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{source: newFakeSource(), path: filepath.Join(dir, "rules.yaml")}
	if err := os.WriteFile(h.path, []byte(testRules), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "procwatch.db"), store.Options{BatchInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.store = st
	set, err := rules.LoadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Host: "testhost", Store: st, Source: h.source, Rules: rules.NewEngine(set, rules.EngineOptions{Host: "testhost"}),
		RulesPath: h.path,
		Tick:      10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h.start(t, cfg)
	t.Cleanup(func() {
		h.stop(t)
		st.Close()
	})
	return h
}

// reload reads the rules file again and applies it, as the agent's
// rules.Watcher does on a change or SIGHUP.
func (h *harness) reload() error {
	set, err := rules.LoadFile(h.path)
	h.local.ApplyRules(set, err)
	return err
}

func (h *harness) start(t *testing.T, cfg Config) {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.local = l
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- l.Run(ctx) }()
}

func (h *harness) stop(t *testing.T) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

func (h *harness) waitRunning(t *testing.T) {
	t.Helper()
	select {
	case <-h.source.started:
	case <-time.After(10 * time.Second):
		t.Fatal("sensor never started")
	}
}

func (h *harness) incidents(t *testing.T, q api.Query) []rules.Incident {
	t.Helper()
	if err := h.store.Flush(); err != nil {
		t.Fatal(err)
	}
	incs, err := h.local.Incidents(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return incs
}

func TestEventsBecomeIncidentsWithDedup(t *testing.T) {
	var outMu sync.Mutex
	var out []rules.Incident
	h := newHarness(t, func(c *Config) {
		c.OnIncident = func(inc rules.Incident) {
			outMu.Lock()
			out = append(out, inc)
			outMu.Unlock()
		}
	})
	h.waitRunning(t)
	h.source.emit(t, execEvent("/tmp/dropper", "-x"))
	h.source.emit(t, execEvent("/tmp/dropper", "-x"))
	h.source.emit(t, execEvent("/usr/bin/ls", "-l"))
	h.source.emit(t, execEvent("/tmp/other\xff", "y"))

	incs := h.incidents(t, api.Query{})
	if len(incs) != 2 {
		t.Fatalf("stored %d incidents, want 2: %+v", len(incs), incs)
	}
	byExe := map[event.Text]rules.Incident{}
	for _, inc := range incs {
		byExe[inc.Process.Exe] = inc
	}
	d := byExe["/tmp/dropper"]
	if d.Count != 2 || d.Rule != "tmp-exec" || d.Severity != rules.SeverityHigh || d.Host != "testhost" || d.Status != rules.StatusOpen {
		t.Errorf("dropper incident = %+v", d)
	}
	if d.Process.Args[0] != "/tmp/dropper" {
		t.Errorf("stored args %q: the pipeline kept the sensor's memory", d.Process.Args)
	}
	if _, ok := byExe["/tmp/other\xff"]; !ok {
		t.Errorf("non-UTF-8 exe not stored exactly: %v", incs)
	}
	outMu.Lock()
	defer outMu.Unlock()
	if len(out) != 3 || out[0].ID != out[1].ID || out[1].Count != 2 {
		t.Errorf("OnIncident saw %d incidents (want new, update, new): %+v", len(out), out)
	}
}

// collect reads updates until cond holds or the deadline passes.
func collect(t *testing.T, ch <-chan api.Update, cond func([]api.Update) bool) []api.Update {
	t.Helper()
	var got []api.Update
	deadline := time.After(10 * time.Second)
	for !cond(got) {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatalf("subscription closed after %d updates", len(got))
			}
			got = append(got, u)
		case <-deadline:
			t.Fatalf("condition not met after %d updates: %+v", len(got), got)
		}
	}
	return got
}

// drainLosses reads a subscription until every one of n events has been
// delivered or reported lost in Dropped, and returns both counts.
func drainLosses(t *testing.T, ch <-chan api.Update, n uint64) (delivered, dropped uint64) {
	t.Helper()
	collect(t, ch, func(us []api.Update) bool {
		if len(us) > 0 {
			delivered += uint64(len(us[len(us)-1].Events))
			dropped += us[len(us)-1].Dropped
		}
		return delivered+dropped == n
	})
	return delivered, dropped
}

func countEvents(us []api.Update) (events, incidents int) {
	for _, u := range us {
		events += len(u.Events)
		incidents += len(u.Incidents)
	}
	return
}

func TestSubscribersGetBatches(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Tick = 200 * time.Millisecond })
	h.waitRunning(t)
	ch, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		h.source.emit(t, execEvent("/usr/bin/true", string(rune('a'+i%26))))
	}
	h.source.emit(t, execEvent("/tmp/x", "1"))
	got := collect(t, ch, func(us []api.Update) bool { e, i := countEvents(us); return e == n+1 && i == 1 })
	withEvents := 0
	for _, u := range got {
		if len(u.Events) > 0 {
			withEvents++
		}
	}
	// Emitting takes far less than a tick per event here, so n events
	// must arrive in far fewer than n messages.
	if withEvents > n/10 {
		t.Errorf("%d events came in %d updates; want batches", n+1, withEvents)
	}
	for _, u := range got {
		for _, ev := range u.Events {
			if ev.Exe == "reused" {
				t.Fatal("an event shares memory with the sensor's buffer")
			}
		}
	}
}

func TestSubscribeReplaysWithoutGapOrDuplicate(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	for i := range 5 {
		h.source.emit(t, execEvent("/tmp/old", string(rune('a'+i))))
	}
	stored := h.incidents(t, api.Query{})
	after := stored[len(stored)-2].ID // the second oldest: 3 to replay

	// Keep raising (new ones and repeats) while the subscription starts.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 40 {
			h.source.emit(t, execEvent("/tmp/new", string(rune('a'+i%20))))
		}
	}()
	ch, err := h.local.Subscribe(context.Background(), after)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	final := h.incidents(t, api.Query{})
	want := map[rules.ID]uint64{}
	for _, inc := range final {
		if inc.ID > after {
			want[inc.ID] = inc.Count
		}
	}
	type version struct {
		id    rules.ID
		count uint64
	}
	seen := map[version]int{}
	latest := map[rules.ID]uint64{}
	collect(t, ch, func(us []api.Update) bool {
		for _, u := range us[len(us)-min(len(us), 1):] {
			for _, inc := range u.Incidents {
				seen[version{inc.ID, inc.Count}]++
				latest[inc.ID] = max(latest[inc.ID], inc.Count)
			}
		}
		for id, c := range want {
			if latest[id] != c {
				return false
			}
		}
		return true
	})
	for v, n := range seen {
		if n > 1 {
			t.Errorf("incident %s count %d delivered %d times", v.id, v.count, n)
		}
		if v.id <= after {
			t.Errorf("incident %s is not after %s", v.id, after)
		}
	}
	if len(latest) != len(want) {
		t.Errorf("got %d incidents, want %d", len(latest), len(want))
	}
}

func TestSlowSubscriberLosesOnlyWhatItIsToldAbout(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MailboxEvents = 50 })
	h.waitRunning(t)
	slow, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var fastEvents atomic.Int64
	go func() {
		for u := range fast {
			fastEvents.Add(int64(len(u.Events)) + int64(u.Dropped))
		}
	}()
	// The slow subscriber reads nothing while the sensor delivers; every
	// emit returning proves the sensor was never held up.
	const n = 2000
	for range n {
		h.source.emit(t, execEvent("/usr/bin/true", "x"))
	}
	delivered, dropped := drainLosses(t, slow, n)
	if dropped == 0 || delivered < 50 || delivered >= n {
		t.Errorf("slow subscriber: %d delivered, %d dropped; want a bounded loss, reported", delivered, dropped)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fastEvents.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := fastEvents.Load(); got != n {
		t.Fatalf("fast subscriber got or was told of losing %d events, want %d", got, n)
	}
}

func TestStuckSubscriberIsDropped(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DropAfter = 200 * time.Millisecond })
	h.waitRunning(t)
	stuck, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	go func() {
		for u := range reader {
			got.Add(int64(len(u.Events)))
		}
	}()
	// Keep events coming until the stuck subscriber is gone.
	deadline := time.Now().Add(10 * time.Second)
	sent := int64(0)
	for h.local.nsubs.Load() == 2 {
		h.source.emit(t, execEvent("/usr/bin/true", "x"))
		sent++
		if time.Now().After(deadline) {
			t.Fatal("a subscriber that stopped reading was never dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Its channel holds what was delivered before, then is closed.
	for i := 0; ; i++ {
		select {
		case _, ok := <-stuck:
			if ok && i <= cap(stuck) {
				continue
			}
			if ok {
				t.Fatal("the dropped subscriber still receives updates")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the dropped subscriber's channel was not closed")
		}
		break
	}
	// The other subscriber keeps receiving.
	for range 10 {
		h.source.emit(t, execEvent("/usr/bin/true", "y"))
	}
	sent += 10
	for got.Load() < sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() != sent {
		t.Errorf("the reading subscriber got %d of %d events", got.Load(), sent)
	}
}

func TestSkipMasksFiltersAndUndoes(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	ctx := context.Background()
	for _, a := range []string{"1", "2", "3"} {
		h.source.emit(t, execEvent("/tmp/backup.sh", a))
	}
	h.source.emit(t, execEvent("/tmp/evil", "1"))
	h.store.Flush()

	// A path skip: a command skip never silences a binary in /tmp.
	sk := rules.Skip{Kind: rules.SkipPath, Value: "/tmp/backup.sh", Rule: "tmp-exec", Note: "nightly"}
	if n, err := h.local.PreviewSkip(ctx, sk); err != nil || n != 3 {
		t.Fatalf("preview = %d, %v; want 3", n, err)
	}
	added, masked, err := h.local.AddSkip(ctx, sk)
	if err != nil || masked != 3 || added.ID == "" || added.Source != rules.SourceAdded {
		t.Fatalf("add = %+v, %d, %v", added, masked, err)
	}
	if got := h.incidents(t, api.Query{Status: rules.StatusMasked}); len(got) != 3 {
		t.Errorf("%d masked incidents, want 3", len(got))
	}
	// New events from the skipped command are filtered at once.
	h.source.emit(t, execEvent("/tmp/backup.sh", "4"))
	if got := h.incidents(t, api.Query{}); len(got) != 4 {
		t.Errorf("%d incidents after a skipped event, want still 4", len(got))
	}
	skips, err := h.local.Skips(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range skips {
		if s.ID == added.ID && s.Source == rules.SourceAdded && s.Note == "nightly" {
			found = true
		}
	}
	if !found {
		t.Errorf("added skip not listed: %+v", skips)
	}
	if _, _, err := h.local.AddSkip(ctx, rules.Skip{Kind: "colour", Value: "x"}); err == nil {
		t.Error("a skip of an unknown kind was accepted")
	}
	if _, _, err := h.local.AddSkip(ctx, rules.Skip{Kind: rules.SkipUser, Value: "x", Rule: "no-such-rule"}); err == nil {
		t.Error("a skip for an unknown rule was accepted")
	}

	n, err := h.local.RemoveSkip(ctx, added.ID)
	if err != nil || n != 3 {
		t.Fatalf("remove = %d, %v; want 3", n, err)
	}
	if got := h.incidents(t, api.Query{Status: rules.StatusOpen}); len(got) != 4 {
		t.Errorf("%d open incidents after undo, want 4", len(got))
	}
	h.source.emit(t, execEvent("/tmp/backup.sh", "5"))
	if got := h.incidents(t, api.Query{}); len(got) != 5 {
		t.Errorf("%d incidents after the skip was removed, want 5", len(got))
	}
}

func TestMonitoringOffDetachesAndPersists(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	ctx := context.Background()
	if err := h.local.SetMonitoring(ctx, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.source.running.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if h.source.running.Load() {
		t.Fatal("sensor still attached with monitoring off")
	}
	st, err := h.local.Status(ctx)
	if err != nil || st.Monitoring {
		t.Fatalf("status = %+v, %v", st, err)
	}
	// An event the sensor delivers late, after the switch, raises nothing.
	h.local.handle(execEvent("/tmp/late", "1"))
	if got := h.incidents(t, api.Query{}); len(got) != 0 {
		t.Errorf("monitoring off raised %d incidents", len(got))
	}

	// The setting survives a restart: a new pipeline does not attach.
	h.stop(t)
	runs := h.source.runs.Load()
	set, _ := rules.LoadFile(h.path)
	h.start(t, Config{Store: h.store, Source: h.source, Rules: rules.NewEngine(set, rules.EngineOptions{}), Tick: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	time.Sleep(50 * time.Millisecond)
	if h.source.runs.Load() != runs {
		t.Fatal("a restarted pipeline attached the sensor although monitoring is off")
	}
	if err := h.local.SetMonitoring(ctx, true); err != nil {
		t.Fatal(err)
	}
	h.waitRunning(t)
	h.source.emit(t, execEvent("/tmp/now", "1"))
	if got := h.incidents(t, api.Query{}); len(got) != 1 {
		t.Errorf("monitoring back on: %d incidents, want 1", len(got))
	}
}

func TestReloadWithBrokenFileKeepsOldRules(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	ctx := context.Background()
	if err := os.WriteFile(h.path, []byte("version: 1\nrules:\n  - name: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.reload(); err == nil {
		t.Fatal("reloading a broken file succeeded")
	}
	st, _ := h.local.Status(ctx)
	if st.RulesError == "" || st.RulesPath != h.path {
		t.Errorf("status after a bad reload: %+v", st)
	}
	h.source.emit(t, execEvent("/tmp/still-caught", "1"))
	if got := h.incidents(t, api.Query{}); len(got) != 1 {
		t.Fatalf("old rules not active after a failed reload: %d incidents", len(got))
	}

	// A good file replaces the rules and clears the error.
	good := strings.Replace(testRules, `"/tmp/**"`, `"/opt/**"`, 1)
	if err := os.WriteFile(h.path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.reload(); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.local.Status(ctx); st.RulesError != "" {
		t.Errorf("error not cleared: %q", st.RulesError)
	}
	h.source.emit(t, execEvent("/tmp/now-ignored", "1"))
	h.source.emit(t, execEvent("/opt/now-caught", "1"))
	got := h.incidents(t, api.Query{})
	if len(got) != 2 || got[0].Process.Exe != "/opt/now-caught" {
		t.Errorf("after a good reload: %+v", got)
	}
}

func TestRulesWatcherDrivesApplyRules(t *testing.T) {
	h := newHarness(t, nil)
	w, err := rules.NewWatcher(h.path, h.local.ApplyRules)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.WriteFile(h.path, []byte("version: 1\nrules: {"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := h.local.Status(context.Background()); st.RulesError != "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("a broken rules file on disk never showed in Status.RulesError")
}

func TestSetStatusReachesSubscribers(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	h.source.emit(t, execEvent("/tmp/a", "1"))
	inc := h.incidents(t, api.Query{})[0]
	ch, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.local.SetStatus(context.Background(), []rules.ID{inc.ID}, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	collect(t, ch, func(us []api.Update) bool {
		for _, u := range us {
			for _, i := range u.Incidents {
				if i.ID == inc.ID && i.Status == rules.StatusAcknowledged {
					return true
				}
			}
		}
		return false
	})
	if err := h.local.SetStatus(context.Background(), []rules.ID{inc.ID}, "closed"); err == nil {
		t.Error("an unknown status was accepted")
	}
}

// TestSetStatusRecordsHistory: every change is kept in the incident's
// history with the caller the context names (the agent's peer), or this
// process when it names none.
func TestSetStatusRecordsHistory(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	h.source.emit(t, execEvent("/tmp/a", "1"))
	inc := h.incidents(t, api.Query{})[0]
	peer := rules.Actor{UID: 65534, PID: 4242, User: "nobody", Via: "socket"}
	steps := []struct {
		ctx  context.Context
		to   rules.Status
		want rules.Actor
	}{
		{api.WithCaller(context.Background(), peer), rules.StatusAcknowledged, peer},
		{context.Background(), rules.StatusMasked, api.Self("local")},
		{api.WithCaller(context.Background(), peer), rules.StatusOpen, peer},
	}
	for _, st := range steps {
		if err := h.local.SetStatus(st.ctx, []rules.ID{inc.ID}, st.to); err != nil {
			t.Fatal(err)
		}
	}
	got := h.incidents(t, api.Query{})[0].History
	if len(got) != len(steps) {
		t.Fatalf("history %+v, want %d entries", got, len(steps))
	}
	from := rules.StatusOpen
	for i, st := range steps {
		if got[i].From != from || got[i].To != st.to || got[i].By != st.want || got[i].Time.IsZero() {
			t.Errorf("history[%d] = %+v, want %s -> %s by %+v", i, got[i], from, st.to, st.want)
		}
		from = st.to
	}
}

func TestExportReportsProgressAndStopsWithContext(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	for i := range 20 {
		h.source.emit(t, execEvent("/tmp/e", string(rune('a'+i))))
	}
	h.store.Flush()
	var last [2]int
	ctx := api.WithExportProgress(context.Background(), func(done, total int) { last = [2]int{done, total} })
	var buf bytes.Buffer
	n, err := h.local.Export(ctx, api.Query{}, "ndjson", &buf)
	if err != nil || n != 20 {
		t.Fatalf("export = %d, %v", n, err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 20 {
		t.Fatalf("%d lines, want 20", len(lines))
	}
	var inc rules.Incident
	if err := json.Unmarshal([]byte(lines[0]), &inc); err != nil || inc.Rule != "tmp-exec" {
		t.Errorf("first line %q: %v", lines[0], err)
	}
	if last[0] != 20 {
		t.Errorf("last progress %v, want 20 done", last)
	}
	if _, err := h.local.Export(context.Background(), api.Query{}, "csv", &buf); err == nil {
		t.Error("an unknown format was accepted")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.local.Export(cancelled, api.Query{}, "json", &buf); err == nil {
		t.Error("an export with a cancelled context succeeded")
	}
}

func TestQuickOffOnRestartsTheSensorAtMostOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	ctx := context.Background()
	h.local.SetMonitoring(ctx, false)
	h.local.SetMonitoring(ctx, true)
	h.local.SetMonitoring(ctx, false)
	h.local.SetMonitoring(ctx, true)
	time.Sleep(100 * time.Millisecond)
	h.source.emit(t, execEvent("/tmp/after-toggle", "1"))
	if runs := h.source.runs.Load(); runs > 3 {
		t.Errorf("sensor started %d times for two off/on pairs", runs)
	}
	if got := h.incidents(t, api.Query{}); len(got) != 1 {
		t.Errorf("%d incidents after toggling back on, want 1", len(got))
	}
}

// TestStoreErrorsNamedOnce: the store's errors already say what failed, so
// the one line a front end prints names the operation once, not twice.
func TestStoreErrorsNamedOnce(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	sk := rules.Skip{Kind: rules.SkipCommand, Value: "backup.sh"}
	if _, _, err := h.local.AddSkip(ctx, sk); err != nil {
		t.Fatal(err)
	}
	_, _, dupErr := h.local.AddSkip(ctx, sk)
	_, rmErr := h.local.RemoveSkip(ctx, "999")
	statusErr := h.local.SetStatus(ctx, []rules.ID{12345}, rules.StatusAcknowledged)
	for _, c := range []struct {
		err  error
		is   error
		verb string
	}{
		{dupErr, store.ErrSkipExists, "add skip"},
		{rmErr, store.ErrNoSkip, "remove skip"},
		{statusErr, store.ErrNoIncident, "set status"},
	} {
		if !errors.Is(c.err, c.is) {
			t.Errorf("%s: %v, want %v", c.verb, c.err, c.is)
			continue
		}
		if n := strings.Count(c.err.Error(), c.verb); n != 1 {
			t.Errorf("%q names %q %d times, want once", c.err, c.verb, n)
		}
	}
}

// TestSlowSubscriberDropsOldestAndStatusCountsThem: a mailbox of 4 events
// given one batch of 60 keeps the newest 4, tells the subscriber it lost
// 56, and Status.QueueDropped (header, monitor status, metrics) counts
// them. The incident raised by the first event is not lost: it travels
// beside the events and stays stored.
func TestSlowSubscriberDropsOldestAndStatusCountsThem(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Tick = 2 * time.Second; c.MailboxEvents = 4 })
	h.waitRunning(t)
	ch, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	h.source.emit(t, execEvent("/tmp/x", "first"))
	for i := 1; i < n; i++ {
		h.source.emit(t, execEvent("/usr/bin/true", fmt.Sprint(i)))
	}
	var delivered []api.Envelope
	var dropped uint64
	got := collect(t, ch, func(us []api.Update) bool {
		if len(us) > 0 {
			u := us[len(us)-1]
			delivered = append(delivered, u.Events...)
			dropped += u.Dropped
		}
		return uint64(len(delivered))+dropped == n
	})
	if dropped == 0 || len(delivered) > 4 {
		t.Fatalf("delivered %d, dropped %d: want at most 4 delivered and the rest dropped", len(delivered), dropped)
	}
	if last := delivered[len(delivered)-1]; string(last.Args[1]) != fmt.Sprint(n-1) {
		t.Errorf("last delivered event is %q, want the newest (%d): the oldest give way", last.Args[1], n-1)
	}
	if _, incs := countEvents(got); incs != 1 {
		t.Errorf("%d incidents delivered, want the one /tmp/x raised", incs)
	}
	st, err := h.local.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.QueueDropped != dropped {
		t.Errorf("Status.QueueDropped = %d, want the %d the subscriber was told of", st.QueueDropped, dropped)
	}
}

// TestSkipVerdictTravelsWithTheEvent: an event a skip suppressed reaches
// the subscriber marked with the rule and the kind of skip, the others
// unmarked, whatever their position in the batch.
func TestSkipVerdictTravelsWithTheEvent(t *testing.T) {
	h := newHarness(t, nil)
	h.waitRunning(t)
	if _, _, err := h.local.AddSkip(context.Background(), rules.Skip{Kind: rules.SkipPath, Value: "/tmp/ok", Rule: "tmp-exec"}); err != nil {
		t.Fatal(err)
	}
	ch, err := h.local.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	h.source.emit(t, execEvent("/usr/bin/true", "a"))
	h.source.emit(t, execEvent("/tmp/ok/x", "b"))
	h.source.emit(t, execEvent("/tmp/bad", "c"))
	var evs []api.Envelope
	collect(t, ch, func(us []api.Update) bool {
		if len(us) > 0 {
			evs = append(evs, us[len(us)-1].Events...)
		}
		return len(evs) == 3
	})
	for _, e := range evs {
		want := string(e.Exe) == "/tmp/ok/x"
		if (e.Skip != nil) != want {
			t.Errorf("%s: skip %+v, want skipped=%v", e.Exe, e.Skip, want)
		}
		if want && (e.Skip.Rule != "tmp-exec" || e.Skip.By != rules.SkipByAdded) {
			t.Errorf("%s: skip %+v, want tmp-exec by an added skip", e.Exe, e.Skip)
		}
	}
}

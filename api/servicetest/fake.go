// Package servicetest provides an in-memory api.Service for testing
// front ends without BPF, a rules engine or a database. It keeps incidents
// and skips the way the real pipeline does (added skips mask the open
// incidents they cover and unmask exactly those when removed), records every
// call, and lets a test push updates to subscribers.
package servicetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// Fake is an in-memory api.Service. The zero value is not usable; call New.
type Fake struct {
	mu         sync.Mutex
	incidents  []rules.Incident // newest first
	skips      []rules.Skip
	maskedBy   map[string][]rules.ID // skip id -> incidents it masked
	rules      []rules.Rule
	status     api.Status
	subs       map[int]chan api.Update
	nextSub    int
	nextSkipID int
	calls      []string
	now        func() time.Time
	subBuffer  int
	sensorErr  string // why the sensor failed; "" when it runs
	actor      rules.Actor
}

// New returns an empty fake for host. now supplies the time used for added
// skips and Noise windows; nil means time.Now.
func New(host string, now func() time.Time) *Fake {
	if now == nil {
		now = time.Now
	}
	return &Fake{
		maskedBy:  map[string][]rules.ID{},
		subs:      map[int]chan api.Update{},
		now:       now,
		subBuffer: 1024,
		actor:     rules.Actor{UID: 1000, PID: 4242, User: "alice", Via: "socket"},
		status: api.Status{
			Host:       host,
			Monitoring: true,
			RulesPath:  "/etc/procwatch/rules.yaml",
			OpenBySev:  map[string]int{},
		},
	}
}

// SetRules replaces the active rules.
func (f *Fake) SetRules(r []rules.Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = slices.Clone(r)
}

// SetStats replaces the sensor statistics reported by Status.
func (f *Fake) SetStats(st event.Stats, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.Sensor = st
	f.status.Time = at
}

// SetSensorFailed makes Status report a sensor that failed for reason, as
// a pipeline whose sensor could not load does; "" makes it run again.
func (f *Fake) SetSensorFailed(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sensorErr = reason
}

// AddRulesFileSkip adds a skip as if it were written in rules.yaml.
func (f *Fake) AddRulesFileSkip(s rules.Skip) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.Source = rules.SourceRulesFile
	f.skips = append(f.skips, s)
}

// Raise stores incidents (replacing any with the same ID) without telling
// subscribers; use Publish for that.
func (f *Fake) Raise(incs ...rules.Incident) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raiseLocked(incs)
}

func (f *Fake) raiseLocked(incs []rules.Incident) {
	for _, in := range incs {
		if i := slices.IndexFunc(f.incidents, func(x rules.Incident) bool { return x.ID == in.ID }); i >= 0 {
			f.incidents[i] = in
			continue
		}
		f.incidents = append(f.incidents, in)
	}
	slices.SortFunc(f.incidents, func(a, b rules.Incident) int {
		switch {
		case a.ID > b.ID:
			return -1
		case a.ID < b.ID:
			return 1
		}
		return 0
	})
}

// Publish stores the update's incidents and sends the update to every
// subscriber. Like the real pipeline it never blocks: a subscriber whose
// buffer is full loses the update, and the loss is counted in the next one.
func (f *Fake) Publish(u api.Update) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.raiseLocked(u.Incidents)
	for _, ch := range f.subs {
		select {
		case ch <- u:
		default:
		}
	}
}

// Calls returns the names of the service methods called so far, with their
// main argument, e.g. "AddSkip command=sudo rule=esc".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *Fake) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Subscribe implements api.Service.
func (f *Fake) Subscribe(ctx context.Context, after rules.ID) (<-chan api.Update, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Subscribe %s", after)
	ch := make(chan api.Update, f.subBuffer)
	id := f.nextSub
	f.nextSub++
	if after > 0 {
		var replay []rules.Incident
		for _, in := range f.incidents {
			if in.ID > after {
				replay = append(replay, in)
			}
		}
		if len(replay) > 0 {
			ch <- api.Update{Incidents: replay}
		}
	}
	f.subs[id] = ch
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, id)
		close(ch)
		f.mu.Unlock()
	}()
	return ch, nil
}

// Incidents implements api.Service.
func (f *Fake) Incidents(_ context.Context, q api.Query) ([]rules.Incident, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Incidents")
	var out []rules.Incident
	for _, in := range f.incidents {
		if !q.Matches(&in) {
			continue
		}
		out = append(out, in)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// Noise implements api.Service by counting stored incidents.
func (f *Fake) Noise(_ context.Context, since time.Time, limit int) (api.Noise, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Noise")
	cmds := map[[2]string]int{}
	paths := map[[2]string]int{}
	for _, in := range f.incidents {
		if in.LastSeen.Before(since) {
			continue
		}
		cmds[[2]string{commandOf(in.Process), in.Rule}] += int(max(in.Count, 1))
		paths[[2]string{string(in.Process.Exe), in.Rule}] += int(max(in.Count, 1))
	}
	return api.Noise{Commands: topN(cmds, limit), Paths: topN(paths, limit)}, nil
}

func topN(m map[[2]string]int, limit int) []api.NoiseEntry {
	out := make([]api.NoiseEntry, 0, len(m))
	for k, n := range m {
		out = append(out, api.NoiseEntry{Value: k[0], Rule: k[1], Count: n})
	}
	slices.SortFunc(out, func(a, b api.NoiseEntry) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.Value != b.Value {
			if a.Value < b.Value {
				return -1
			}
			return 1
		}
		if a.Rule < b.Rule {
			return -1
		}
		return 1
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// SetStatus implements api.Service.
func (f *Fake) SetStatus(_ context.Context, ids []rules.ID, st rules.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SetStatus %s %d", st, len(ids))
	var changed []rules.Incident
	for _, id := range ids {
		i := slices.IndexFunc(f.incidents, func(x rules.Incident) bool { return x.ID == id })
		if i < 0 {
			return fmt.Errorf("incident %s: not found", id)
		}
		in := &f.incidents[i]
		if in.Status != st {
			in.History = append(slices.Clone(in.History), rules.Change{Time: f.now(), From: in.Status, To: st, By: f.actor})
		}
		in.Status = st
		changed = append(changed, *in)
	}
	// Subscribers see the changed incidents, as the pipeline sends them.
	for _, ch := range f.subs {
		select {
		case ch <- api.Update{Incidents: changed}:
		default:
		}
	}
	return nil
}

// SetActor sets who SetStatus records as making a change; the default is
// alice (uid 1000) over the socket.
func (f *Fake) SetActor(a rules.Actor) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actor = a
}

// Skips implements api.Service.
func (f *Fake) Skips(context.Context) ([]rules.Skip, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Skips")
	return slices.Clone(f.skips), nil
}

// commandOf is the command Noise counts an incident under, as the store
// does: the base name of the resolved exe, or comm when the exe is unknown.
func commandOf(ev event.Event) string {
	if ev.Exe != "" {
		return path.Base(string(ev.Exe))
	}
	return string(ev.Comm)
}

func (f *Fake) coveredOpen(s rules.Skip) []int {
	var idx []int
	for i, in := range f.incidents {
		if in.Status == rules.StatusOpen && s.Covers(&f.incidents[i]) {
			idx = append(idx, i)
		}
	}
	return idx
}

// PreviewSkip implements api.Service.
func (f *Fake) PreviewSkip(_ context.Context, s rules.Skip) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("PreviewSkip %s=%s rule=%s", s.Kind, s.Value, s.Rule)
	if err := rules.ValidateSkip(s); err != nil {
		return 0, err
	}
	return len(f.coveredOpen(s)), nil
}

// AddSkip implements api.Service.
func (f *Fake) AddSkip(_ context.Context, s rules.Skip) (rules.Skip, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("AddSkip %s=%s rule=%s", s.Kind, s.Value, s.Rule)
	if err := rules.ValidateSkip(s); err != nil {
		return rules.Skip{}, 0, err
	}
	f.nextSkipID++
	s.ID = fmt.Sprintf("s%d", f.nextSkipID)
	s.Source = rules.SourceAdded
	s.AddedAt = f.now()
	idx := f.coveredOpen(s)
	for _, i := range idx {
		f.incidents[i].Status = rules.StatusMasked
		f.maskedBy[s.ID] = append(f.maskedBy[s.ID], f.incidents[i].ID)
	}
	f.skips = append(f.skips, s)
	return s, len(idx), nil
}

// RemoveSkip implements api.Service.
func (f *Fake) RemoveSkip(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("RemoveSkip %s", id)
	i := slices.IndexFunc(f.skips, func(s rules.Skip) bool { return s.ID == id && s.Source == rules.SourceAdded })
	if i < 0 {
		return 0, fmt.Errorf("skip %q: no added skip with that id", id)
	}
	f.skips = slices.Delete(f.skips, i, i+1)
	n := 0
	for _, iid := range f.maskedBy[id] {
		j := slices.IndexFunc(f.incidents, func(x rules.Incident) bool { return x.ID == iid })
		if j >= 0 && f.incidents[j].Status == rules.StatusMasked {
			f.incidents[j].Status = rules.StatusOpen
			n++
		}
	}
	delete(f.maskedBy, id)
	return n, nil
}

// Rules implements api.Service.
func (f *Fake) Rules(context.Context) ([]rules.Rule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Rules")
	return slices.Clone(f.rules), nil
}

// SetMonitoring implements api.Service.
func (f *Fake) SetMonitoring(_ context.Context, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SetMonitoring %t", on)
	f.status.Monitoring = on
	return nil
}

// Status implements api.Service; open counts come from the stored
// incidents.
func (f *Fake) Status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.OpenBySev = map[string]int{}
	for _, in := range f.incidents {
		if in.Status == rules.StatusOpen {
			st.OpenBySev[in.Severity.String()]++
		}
	}
	if st.Time.IsZero() {
		st.Time = f.now()
	}
	switch {
	case f.sensorErr != "":
		st.Sensor.State, st.Sensor.Error, st.Sensor.Mode = event.SensorFailed, f.sensorErr, ""
	case !st.Monitoring:
		st.Sensor.State, st.Sensor.Mode = event.SensorOff, ""
	default:
		st.Sensor.State = event.SensorAttached
		if st.Sensor.Mode == "" {
			st.Sensor.Mode = "tp_btf+tracepoint"
		}
	}
	return st, nil
}

// Export implements api.Service.
func (f *Fake) Export(ctx context.Context, q api.Query, format string, w io.Writer) (int, error) {
	list, err := f.Incidents(ctx, q)
	if err != nil {
		return 0, err
	}
	switch format {
	case "json":
		return len(list), json.NewEncoder(w).Encode(list)
	case "ndjson":
		enc := json.NewEncoder(w)
		for _, in := range list {
			if err := enc.Encode(in); err != nil {
				return 0, err
			}
		}
		return len(list), nil
	}
	return 0, fmt.Errorf("export format %q: want json or ndjson", format)
}

var _ api.Service = (*Fake)(nil)

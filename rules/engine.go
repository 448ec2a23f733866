package rules

import (
	"hash/maphash"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/event"
)

// DefaultDedupWindow is how long repeats of an incident aggregate into it.
const DefaultDedupWindow = 60 * time.Second

// maxDedupEntries bounds the dedup table: past it the table is emptied, so
// a flood of distinct incidents costs memory only for one window at most.
const maxDedupEntries = 1 << 16

// EngineOptions configure an Engine. Zero values pick the defaults.
type EngineOptions struct {
	// Host names the machine in incidents; default os.Hostname().
	Host string
	// DedupWindow: repeats of the same rule, exe, args, uid and outcome
	// within this long of the incident's first sighting update it instead of
	// raising another. Default DefaultDedupWindow; negative disables dedup.
	DedupWindow time.Duration
	// Now is the clock for events without a time; default time.Now.
	Now func() time.Time
}

// Engine judges events against a RuleSet. Evaluate must be called from one
// goroutine; SetRules and SetAddedSkips may be called from any goroutine
// while it runs, and take effect from the next event.
type Engine struct {
	host   string
	window time.Duration
	now    func() time.Time

	set   atomic.Pointer[RuleSet]
	added atomic.Pointer[addedIndex]

	// Owned by the Evaluate goroutine.
	dedup     map[dedupKey]*Incident
	seed      maphash.Seed
	lastSweep time.Time
	facts     facts
}

// dedupKey identifies repeats of one incident. The arguments are kept as a
// keyed 64-bit hash: a repeat in a flood then costs no allocation, and with
// a random per-engine seed a process cannot choose arguments that collide.
type dedupKey struct {
	rule    string
	exe     string
	args    uint64
	uid     uint32
	outcome event.Outcome
}

// NewEngine returns an engine for set (nil means no rules).
func NewEngine(set *RuleSet, opts EngineOptions) *Engine {
	e := &Engine{host: opts.Host, window: opts.DedupWindow, now: opts.Now, dedup: map[dedupKey]*Incident{}, seed: maphash.MakeSeed()}
	if e.host == "" {
		e.host, _ = os.Hostname()
	}
	if e.window == 0 {
		e.window = DefaultDedupWindow
	}
	if e.now == nil {
		e.now = time.Now
	}
	if set == nil {
		set = &RuleSet{Version: 1}
	}
	e.set.Store(set)
	e.added.Store(&addedIndex{})
	return e
}

// SetRules replaces the active rules, as a hot reload does. Dedup state is
// kept, so a reload does not re-raise incidents that are still aggregating.
func (e *Engine) SetRules(set *RuleSet) {
	if set != nil {
		e.set.Store(set)
	}
}

// RuleSet returns the active rules.
func (e *Engine) RuleSet() *RuleSet { return e.set.Load() }

// Rules returns a copy of the active rules, for display.
func (e *Engine) Rules() []Rule { return slices.Clone(e.set.Load().Rules) }

// SetAddedSkips replaces the skips added at run time (from the database).
// Invalid skips are left out and reported; the valid ones apply anyway.
func (e *Engine) SetAddedSkips(skips []Skip) error {
	a, err := newAddedIndex(skips)
	e.added.Store(a)
	return err
}

// Skips lists every active skip with where it comes from: the rules file's
// global and per-rule skips, then the added ones.
func (e *Engine) Skips() []Skip {
	out := e.set.Load().Skips()
	return append(out, e.added.Load().list...)
}

// Verdict is the full judgement of one event.
type Verdict struct {
	// Incidents raised or updated by the event: a new incident, or a copy of
	// an earlier one with the same ID, Count+1 and LastSeen moved on.
	Incidents []Incident
	// Skipped counts rules that would have raised an incident had a skip
	// not suppressed it, so front ends can show suppressed events dimmed.
	Skipped int
}

// Evaluate judges one event and returns the incidents it raises or
// updates; nil (without allocating) when it raises none.
func (e *Engine) Evaluate(ev *event.Event) []Incident { return e.Judge(ev).Incidents }

// Judge is Evaluate that also reports suppressed matches.
//
// For each rule of the event's type: pick the severity for the event's
// outcome (none ends it), check every selector, then the skips. The rule's
// own skips (from the file and added for it) always apply. Global skips
// apply to every rule except root-escalation rules: an escalation to root
// is too important for a broad global skip to hide, so only a skip written
// on the escalation rule silences it.
func (e *Engine) Judge(ev *event.Event) Verdict {
	set := e.set.Load()
	added := e.added.Load()
	f := &e.facts
	f.init(ev)
	var v Verdict
	for i := range set.compiled {
		r := &set.compiled[i]
		if r.evType != ev.Type {
			continue
		}
		sev := r.rule.Severity.Success
		if f.outcome == event.Failure {
			sev = r.rule.Severity.Failure
		}
		if sev == SeverityNone || !r.matches(f) {
			continue
		}
		if r.skip.match(f) || added.byRule[r.rule.Name].match(f) ||
			(r.rule.Type != TypeRootEscalation && (set.global.match(f) || added.global.match(f))) {
			v.Skipped++
			continue
		}
		v.Incidents = append(v.Incidents, e.raise(r.rule, sev, ev, f))
	}
	f.ev = nil
	return v
}

// matches checks every selector the rule gives.
func (r *compiledRule) matches(f *facts) bool {
	// A truncated path's top is unknown, so it may lie under any selected
	// directory; a path nested deep enough to hide its top is itself
	// suspicious, so it is judged as in scope rather than let through.
	if r.paths != nil && !f.truncated && !r.paths.match(f.path) {
		return false
	}
	if r.commands != nil && !r.commands.match(f.base, f.comm) {
		return false
	}
	if r.users != nil && !r.users.match(f) {
		return false
	}
	if r.parents != nil && !r.parents.matchName(f.parent) {
		return false
	}
	if r.container != nil && *r.container != (f.ev.ContainerID != "") {
		return false
	}
	if r.images != nil && !imageMatches(r.images, f.ev) {
		return false
	}
	if len(r.exitCodes) > 0 || len(r.signals) > 0 {
		return r.endedAsSelected(f.ev)
	}
	return true
}

// endedAsSelected is the exit_codes and signals selector. The two lists
// describe one thing, how the process ended, so the process matches if it
// exited with a listed code or died of a listed signal.
func (r *compiledRule) endedAsSelected(ev *event.Event) bool {
	if ev.Signal != "" {
		return slices.Contains(r.signals, ev.Signal)
	}
	return ev.ExitCode != nil && slices.Contains(r.exitCodes, *ev.ExitCode)
}

// raise builds a new incident or updates the one it repeats.
func (e *Engine) raise(rule *Rule, sev Severity, ev *event.Event, f *facts) Incident {
	t := ev.Time
	if t.IsZero() {
		t = e.now()
	}
	var key dedupKey
	if e.window > 0 {
		key = dedupKey{rule: rule.Name, exe: f.path, args: e.hashArgs(ev.Args), uid: f.uid, outcome: f.outcome}
		if inc, ok := e.dedup[key]; ok {
			if age := t.Sub(inc.FirstSeen); age < e.window && age > -e.window {
				inc.Count++
				if t.After(inc.LastSeen) {
					inc.LastSeen = t
				}
				return *inc
			}
		}
		e.sweep(t)
	}
	inc := Incident{
		ID:        NewID(t),
		Time:      t,
		Host:      e.host,
		Rule:      rule.Name,
		Type:      rule.Type,
		Outcome:   f.outcome,
		Severity:  sev,
		Summary:   event.Text(summarize(ev, f)),
		Status:    StatusOpen,
		Process:   cloneEvent(ev),
		Count:     1,
		FirstSeen: t,
		LastSeen:  t,
	}
	if e.window > 0 {
		stored := inc
		e.dedup[key] = &stored
	}
	return inc
}

// sweep drops dedup entries whose window has passed, at most once a window.
func (e *Engine) sweep(now time.Time) {
	if len(e.dedup) < maxDedupEntries && now.Sub(e.lastSweep) < e.window {
		return
	}
	e.lastSweep = now
	for k, inc := range e.dedup {
		if now.Sub(inc.FirstSeen) >= e.window {
			delete(e.dedup, k)
		}
	}
	if len(e.dedup) >= maxDedupEntries {
		clear(e.dedup)
	}
}

// hashArgs hashes argv for the dedup key. Each argument is followed by a
// NUL, which cannot occur inside one, so the encoding is unambiguous.
func (e *Engine) hashArgs(args []event.Text) uint64 {
	var h maphash.Hash
	h.SetSeed(e.seed)
	for _, a := range args {
		h.WriteString(string(a))
		h.WriteByte(0)
	}
	return h.Sum64()
}

// cloneEvent copies ev deeply enough that the incident does not share
// slices or pointers with a buffer the sensor may reuse.
func cloneEvent(ev *event.Event) event.Event {
	c := *ev
	c.Args = slices.Clone(ev.Args)
	c.Ancestors = slices.Clone(ev.Ancestors)
	c.OldUID = clonePtr(ev.OldUID)
	c.OldEUID = clonePtr(ev.OldEUID)
	c.NewUID = clonePtr(ev.NewUID)
	c.NewEUID = clonePtr(ev.NewEUID)
	c.ExitCode = clonePtr(ev.ExitCode)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

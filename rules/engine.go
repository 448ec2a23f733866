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
	// DedupWindow: repeats of an incident within this long of its first
	// sighting update it instead of raising another (see dedupKey).
	// Default DefaultDedupWindow; negative disables dedup.
	DedupWindow time.Duration
	// Now is the clock for events without a time; default time.Now.
	Now func() time.Time
	// Mounts is this host's mount identity, against which events' file
	// identities are checked; zero fields are read with DetectHostMounts.
	Mounts HostMounts
}

// Engine judges events against a RuleSet. Evaluate must be called from one
// goroutine; SetRules and SetAddedSkips may be called from any goroutine
// while it runs, and take effect from the next event.
type Engine struct {
	host   string
	window time.Duration
	now    func() time.Time
	mounts HostMounts

	set   atomic.Pointer[RuleSet]
	added atomic.Pointer[addedIndex]

	// Owned by the Evaluate goroutine.
	dedup     map[dedupKey]*tracked
	floods    map[dedupKey]*flood
	fates     map[uint32][]*tracked // escalation incidents by pid, awaiting the exit
	seed      maphash.Seed
	lastSweep time.Time
	facts     facts
	argBuf    []byte
	verdict   []Incident // the array Judge's verdicts reuse

	fatesLost atomic.Uint64
}

// flood follows, for one user, aggregating rule and scope, how many
// incidents the window has raised, and the incident that gathers the rest.
type flood struct {
	start  time.Time
	raised int
	agg    *tracked
}

// tracked is an incident the engine may update: by a repeat, by another
// binary of a flood it aggregates, or by its process's exit.
type tracked struct {
	inc   Incident
	names map[uint64]struct{} // aggregates only: hashes of the distinct binaries
}

// dedupKey identifies repeats of one incident. The arguments are kept as a
// keyed 64-bit hash: a repeat in a flood then costs no allocation, and with
// a random per-engine seed a process cannot choose arguments that collide.
//
// Escalations keep the method in the key, exits their exit code and
// signal: those are the facts an analyst triages by.
//
// A rule with aggregate also counts, per user and scope (the root of the
// rule's path entry that matched, /tmp for "/tmp/**", which the rules file
// fixes and the process cannot choose), the incidents each window raises.
// Past floodThreshold, further execs there gather into one flood incident
// (see flood), so a new directory or name per exec does not make a row
// each.
type dedupKey struct {
	rule    string
	exe     string
	scope   string
	args    uint64
	uid     uint32
	outcome event.Outcome
	method  string
	code    int32
	signal  string
}

// floodThreshold is how many incidents one user may raise under one scope
// of an aggregating rule in a window before the rest gather into one.
const floodThreshold = 16

// Bounds of an aggregated incident: how many distinct binaries it counts
// (past it, Distinct stops growing while Count goes on) and how many of
// their names it keeps as a sample.
const (
	maxDistinct = 1 << 14
	sampleSize  = 10
)

// maxFates bounds the escalation incidents awaiting their process's exit;
// past it the oldest-looking is forgotten and counted (FatesLost).
const maxFates = 1 << 14

// NewEngine returns an engine for set (nil means no rules).
func NewEngine(set *RuleSet, opts EngineOptions) *Engine {
	e := &Engine{host: opts.Host, window: opts.DedupWindow, now: opts.Now, mounts: opts.Mounts,
		dedup: map[dedupKey]*tracked{}, floods: map[dedupKey]*flood{}, fates: map[uint32][]*tracked{}, seed: maphash.MakeSeed()}
	if e.host == "" {
		e.host, _ = os.Hostname()
	}
	if e.window == 0 {
		e.window = DefaultDedupWindow
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.mounts.MntNS == 0 && e.mounts.RootDev == 0 {
		e.mounts = *hostMounts()
	}
	if set == nil {
		set = &RuleSet{Version: 1}
	}
	e.set.Store(set)
	e.added.Store(&addedIndex{})
	return e
}

// FatesLost counts escalation incidents whose process's end was not
// attached because too many escalated processes were still running.
func (e *Engine) FatesLost() uint64 { return e.fatesLost.Load() }

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
	// an earlier one with the same ID, Count+1 and LastSeen moved on, and
	// last the escalation incidents whose process this exit event ended,
	// with their Fate set. Judge reuses the slice's array: it is valid until
	// the next Judge call, so copy what must outlive it (Evaluate does).
	Incidents []Incident
	// Fated says how many of Incidents (at the end) are such fate updates
	// rather than sightings.
	Fated int
	// Skipped counts rules that would have raised an incident had a skip
	// not suppressed it, so front ends can show suppressed events dimmed.
	Skipped int
	// Skip names the first suppressed match and the kind of skip that
	// suppressed it; zero when Skipped is 0.
	Skip SkipHit
}

// Kinds of skip in SkipHit.By.
const (
	SkipByRule   = "rule"   // a skip written on the rule in the rules file
	SkipByAdded  = "added"  // a skip added at run time (skip list)
	SkipByGlobal = "global" // a global skip of the rules file
)

// SkipHit says which rule's match a skip suppressed, and which kind of
// skip it was, so a front end can say why an event is dimmed.
type SkipHit struct {
	Rule string `json:"rule"`
	By   string `json:"by"`
}

// Evaluate judges one event and returns the incidents it raises or
// updates, in a slice of their own; nil (without allocating) when it
// raises none.
func (e *Engine) Evaluate(ev *event.Event) []Incident {
	incs := e.Judge(ev).Incidents
	if len(incs) == 0 {
		return nil
	}
	return slices.Clone(incs)
}

// Judge is Evaluate that also reports suppressed matches.
//
// For each rule of the event's type: pick the severity for the event's
// outcome (none ends it), check every selector, then the skips. The rule's
// own skips (from the file and added for it) always apply. Global skips
// apply to every rule except root-escalation rules: an escalation to root
// is too important for a broad global skip to hide, so only a skip written
// on the escalation rule silences it. An exit event also ends the wait of
// the escalation incidents of its process (see Incident.Fate).
func (e *Engine) Judge(ev *event.Event) Verdict {
	set := e.set.Load()
	added := e.added.Load()
	f := &e.facts
	f.init(ev, &e.mounts)
	// The incidents go into the array of the previous verdict: an exec
	// storm raising an incident per event then allocates none for them.
	clear(e.verdict)
	v := Verdict{Incidents: e.verdict[:0]}
	for i := range set.compiled {
		r := &set.compiled[i]
		if r.evType != ev.Type {
			continue
		}
		sev := r.rule.Severity.Success
		if f.outcome == event.Failure {
			sev = r.rule.Severity.Failure
		}
		if sev == SeverityNone {
			continue
		}
		scope, ok := e.matches(r, f)
		if !ok {
			continue
		}
		global := r.rule.Type != TypeRootEscalation
		if by := skippedBy(r, added, set, global, f); by != "" {
			if v.Skipped == 0 {
				v.Skip = SkipHit{Rule: r.rule.Name, By: by}
			}
			v.Skipped++
			continue
		}
		v.Incidents = append(v.Incidents, e.raise(r.rule, sev, ev, f, scope))
	}
	if ev.Type == event.TypeExit {
		n := len(v.Incidents)
		v.Incidents = e.attachFate(ev, v.Incidents)
		v.Fated = len(v.Incidents) - n
	}
	f.ev = nil
	e.verdict = v.Incidents
	return v
}

// matches checks every selector the rule gives. scope is the root of the
// path entry that placed the binary, for aggregation; empty when the rule
// does not select by location.
func (e *Engine) matches(r *compiledRule, f *facts) (scope string, ok bool) {
	if r.paths != nil || len(r.fs) > 0 {
		if scope, ok = r.located(f); !ok {
			return "", false
		}
	}
	if r.commands != nil && !r.commands.match(f.base, f.comm) &&
		(f.script == "" || !r.commands.match(baseName(f.script), "")) {
		return "", false
	}
	if r.args != nil {
		var hit bool
		hit, e.argBuf = r.args.match(f.ev.Args, string(f.ev.Cwd), e.argBuf)
		if !hit {
			return "", false
		}
	}
	if r.owners != nil && !r.owners.matchOwner(f) {
		return "", false
	}
	if r.users != nil && !r.users.match(f) {
		return "", false
	}
	if r.parents != nil && !r.parents.matchName(f.parent) {
		return "", false
	}
	if r.container != nil && *r.container != (f.ev.ContainerID != "") {
		return "", false
	}
	if r.images != nil && !imageMatches(r.images, f.ev) {
		return "", false
	}
	if len(r.exitCodes) > 0 || len(r.signals) > 0 {
		return scope, r.endedAsSelected(f.ev)
	}
	return scope, true
}

// located is the paths and filesystems selectors: the binary, the script
// the kernel ran, or the binary's origin within its own filesystem under a
// selected path, or the binary on a selected filesystem type. Every name
// counts, so none of them hides the binary. A truncated path's top is
// unknown, so it may lie under any selected directory; a path nested deep
// enough to hide its top is itself suspicious, so it is judged as in scope
// rather than let through.
func (r *compiledRule) located(f *facts) (string, bool) {
	if r.paths != nil {
		if f.truncated {
			return truncatedMark, true
		}
		if root, ok := r.paths.matchRoot(f.path); ok {
			return root, true
		}
		if f.script != "" {
			if root, ok := r.paths.matchRoot(f.script); ok {
				return root, true
			}
		}
		if f.origin != "" {
			if root, ok := r.paths.matchRoot(f.origin); ok {
				return root, true
			}
		}
	}
	if fs := f.ev.ExeFS; fs != "" && !isFailedExec(f.ev) && slices.Contains(r.fs, fs) {
		return fsScope + fs, true
	}
	return "", false
}

// fsScope starts the scope of an incident placed by its filesystem type.
const fsScope = "fs:"

// endedAsSelected is the exit_codes and signals selector. The two lists
// describe one thing, how the process ended, so the process matches if it
// exited with a listed code or died of a listed signal.
func (r *compiledRule) endedAsSelected(ev *event.Event) bool {
	if ev.Signal != "" {
		return slices.Contains(r.signals, ev.Signal)
	}
	return ev.ExitCode != nil && slices.Contains(r.exitCodes, *ev.ExitCode)
}

// key builds the dedup key of an event for rule (see dedupKey).
func (e *Engine) key(rule *Rule, ev *event.Event, f *facts) dedupKey {
	k := dedupKey{rule: rule.Name, uid: f.uid, outcome: f.outcome, code: -1}
	k.exe = f.path
	if f.script != "" {
		k.scope = f.script
	}
	k.args = e.hashArgs(ev.Args)
	switch ev.Type {
	case event.TypeEscalation:
		k.method = ev.Method
	case event.TypeExit:
		if ev.ExitCode != nil {
			k.code = int32(*ev.ExitCode)
		}
		k.signal = ev.Signal
	}
	return k
}

// raise builds a new incident or updates the one it repeats, or the
// flood incident it belongs to.
func (e *Engine) raise(rule *Rule, sev Severity, ev *event.Event, f *facts, scope string) Incident {
	t := ev.Time
	if t.IsZero() {
		t = e.now()
	}
	var key dedupKey
	if e.window > 0 {
		key = e.key(rule, ev, f)
		if tr, ok := e.dedup[key]; ok && e.within(tr.inc.FirstSeen, t) {
			tr.inc.Count++
			if t.After(tr.inc.LastSeen) {
				tr.inc.LastSeen = t
			}
			return tr.inc
		}
		e.sweep(t)
		if rule.Aggregate && scope != "" {
			fk := dedupKey{rule: rule.Name, scope: scope, uid: f.uid, outcome: f.outcome, code: -1}
			fl := e.floods[fk]
			if fl == nil || !e.within(fl.start, t) {
				fl = &flood{start: t}
				e.floods[fk] = fl
			}
			if fl.raised >= floodThreshold {
				return e.gather(fl, rule, sev, ev, f, scope, t)
			}
			fl.raised++
		}
	}
	tr := &tracked{inc: e.newIncident(rule, sev, ev, f, t)}
	if e.window > 0 {
		e.dedup[key] = tr
	}
	if rule.Type == TypeRootEscalation && ev.PID != 0 {
		e.awaitFate(ev.PID, tr)
	}
	return tr.inc
}

func (e *Engine) within(first, t time.Time) bool {
	age := t.Sub(first)
	return age < e.window && age > -e.window
}

func (e *Engine) newIncident(rule *Rule, sev Severity, ev *event.Event, f *facts, t time.Time) Incident {
	return Incident{
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
}

// gather adds an exec past the flood threshold to the flood's incident,
// raising it on the first.
func (e *Engine) gather(fl *flood, rule *Rule, sev Severity, ev *event.Event, f *facts, scope string, t time.Time) Incident {
	tr := fl.agg
	if tr == nil {
		tr = &tracked{inc: e.newIncident(rule, sev, ev, f, t), names: map[uint64]struct{}{}}
		tr.inc.Scope = scope
		fl.agg = tr
	} else {
		tr.inc.Count++
		if t.After(tr.inc.LastSeen) {
			tr.inc.LastSeen = t
		}
	}
	if e.addName(tr, f) {
		tr.inc.Summary = event.Text(summarizeFlood(&tr.inc))
	}
	return tr.inc
}

// addName counts the event's binary (or script) in an aggregated
// incident, keeping the first sampleSize names. It reports whether the
// incident changed.
func (e *Engine) addName(tr *tracked, f *facts) bool {
	name := f.path
	if f.script != "" {
		name = f.script
	}
	if len(tr.names) >= maxDistinct {
		return false
	}
	h := maphash.String(e.seed, name)
	if _, seen := tr.names[h]; seen {
		return false
	}
	tr.names[h] = struct{}{}
	tr.inc.Distinct++
	if len(tr.inc.Sample) < sampleSize {
		tr.inc.Sample = append(tr.inc.Sample, event.Text(name))
	}
	return true
}

// awaitFate files an escalation incident under its pid until the process
// exits. A full table forgets an entry, counted in FatesLost: an attacker
// who keeps many escalated processes alive costs the analyst only the
// exit status of some, never an incident.
func (e *Engine) awaitFate(pid uint32, tr *tracked) {
	if len(e.fates) >= maxFates {
		for p := range e.fates {
			delete(e.fates, p)
			e.fatesLost.Add(1)
			break
		}
	}
	e.fates[pid] = append(e.fates[pid], tr)
}

// fateSlack allows for the clocks of the escalation and exit records when
// telling whether an exit belongs to the process that escalated.
const fateSlack = time.Millisecond

// attachFate sets the Fate of the escalation incidents awaiting ev's
// process and appends the updated incidents to out. The process must have
// started no later than the escalation: a later process that reused the
// pid (its own exit missed) is not the one that escalated.
func (e *Engine) attachFate(ev *event.Event, out []Incident) []Incident {
	waiting, ok := e.fates[ev.PID]
	if !ok {
		return out
	}
	delete(e.fates, ev.PID)
	started := ev.Time.Add(-time.Duration(ev.DurationNS))
	for _, tr := range waiting {
		if ev.DurationNS > 0 && tr.inc.Process.Time.Add(fateSlack).Before(started) {
			continue
		}
		tr.inc.Fate = &event.Fate{
			Time:       ev.Time,
			ExitCode:   clonePtr(ev.ExitCode),
			Signal:     ev.Signal,
			CoreDumped: ev.CoreDumped,
			DurationNS: ev.DurationNS,
		}
		tr.inc.Summary = event.Text(string(tr.inc.Summary) + fateSuffix(tr.inc.Fate))
		out = append(out, tr.inc)
	}
	return out
}

// sweep drops dedup entries whose window has passed, at most once a window.
func (e *Engine) sweep(now time.Time) {
	if len(e.dedup) < maxDedupEntries && len(e.floods) < maxDedupEntries && now.Sub(e.lastSweep) < e.window {
		return
	}
	e.lastSweep = now
	for k, tr := range e.dedup {
		if now.Sub(tr.inc.FirstSeen) >= e.window {
			delete(e.dedup, k)
		}
	}
	for k, fl := range e.floods {
		if now.Sub(fl.start) >= e.window {
			delete(e.floods, k)
		}
	}
	if len(e.dedup) >= maxDedupEntries {
		clear(e.dedup)
	}
	if len(e.floods) >= maxDedupEntries {
		clear(e.floods)
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
	c.ExeOwner = clonePtr(ev.ExeOwner)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// skippedBy returns the kind of the first skip that suppresses rule r's
// match of the event, or "" when none does: the rule's own skips always
// apply, global ones except on root-escalation rules (global false).
func skippedBy(r *compiledRule, added *addedIndex, set *RuleSet, global bool, f *facts) string {
	switch {
	case r.skip.match(f):
		return SkipByRule
	case added.matchRule(r.rule.Name, global, f):
		return SkipByAdded
	case global && set.global.match(f):
		return SkipByGlobal
	}
	return ""
}

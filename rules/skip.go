package rules

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/procwatch/procwatch/event"
)

// skipIndex is a compiled skip list: exact commands in maps, paths in a
// prefix map plus globs, users by uid and name, pins, and the owners that
// narrow them all.
type skipIndex struct {
	commands *commandSet
	paths    *pathSet
	users    *userSet
	owners   *userSet
	// pins holds pinned path skips: exact path to the content hashes
	// allowed there.
	pins map[string][]string
}

func newSkipIndex(l SkipList) skipIndex {
	return skipIndex{
		commands: newCommandSet(l.Commands),
		paths:    newPathSet(l.Paths),
		users:    newUserSet(l.Users),
		owners:   newUserSet(l.Owners),
	}
}

// match reports whether a skip of the list covers the event. Commands and
// paths are judged on what the process cannot forge (facts.skipName and
// facts.skipPath): a binary in a world-writable or memory location never
// meets a command skip, and one whose path a private mount namespace or a
// chroot made up never meets a path or command skip.
func (s *skipIndex) match(f *facts) bool {
	if s == nil || s.commands == nil && s.paths == nil && s.users == nil && s.pins == nil {
		return false
	}
	f.skipFacts()
	if !s.commands.match(f.skipName, "") && !s.paths.match(f.skipPath) && !s.users.match(f) &&
		!(len(s.pins) > 0 && s.matchPin(f)) {
		return false
	}
	return s.owners == nil || s.owners.matchOwner(f)
}

// matchPin: the event's binary is exactly a pinned path and its content
// hash, attached by the pipeline from its cache, is one pinned there. An
// unknown hash matches nothing (fail closed), and so do a failed exec (its
// subject path is not the binary that was hashed) and a "#!" script (the
// hash is its interpreter's, not the script's). Unlike plain path skips a
// pin does not need the path placed on the host's own mounts: the content
// names the file, so a private mount namespace that shows the approved
// binary at the approved path still runs exactly the approved binary.
func (s *skipIndex) matchPin(f *facts) bool {
	sum := f.ev.ExeSHA256
	if sum == "" || f.script != "" || f.truncated || isFailedExec(f.ev) || f.path != string(f.ev.Exe) {
		return false
	}
	for _, want := range s.pins[f.path] {
		if want == sum {
			return true
		}
	}
	return false
}

func (s *skipIndex) addPin(path, sum string) {
	if s.pins == nil {
		s.pins = map[string][]string{}
	}
	s.pins[path] = append(s.pins[path], sum)
}

// oneSkipIndex compiles a single valid skip.
func oneSkipIndex(s Skip) skipIndex {
	if s.Pin != "" {
		idx := skipIndex{owners: newUserSet(s.Owners)}
		idx.addPin(s.Value, s.Pin)
		return idx
	}
	var l SkipList
	l.add(s.Kind, s.Value)
	l.Owners = s.Owners
	return newSkipIndex(l)
}

// addedIndex is the compiled form of the skips added at run time: global
// ones and one index per rule name.
type addedIndex struct {
	list   []Skip
	global skipIndex
	byRule map[string]*skipIndex
	pinned map[string]struct{} // every pinned path, for PinnedPath
	// narrowed holds skips with owners, each compiled on its own since
	// their owners apply to them alone; rare, so a list.
	narrowed []narrowedSkip
}

type narrowedSkip struct {
	rule string
	idx  skipIndex
}

// matchRule reports whether an added skip for rule (or, when global is
// true, a global one) covers the event.
func (a *addedIndex) matchRule(rule string, global bool, f *facts) bool {
	if a.byRule[rule].match(f) || (global && a.global.match(f)) {
		return true
	}
	for i := range a.narrowed {
		n := &a.narrowed[i]
		if (n.rule == rule || (global && n.rule == "")) && n.idx.match(f) {
			return true
		}
	}
	return false
}

func newAddedIndex(skips []Skip) (*addedIndex, error) {
	a := &addedIndex{byRule: map[string]*skipIndex{}}
	global := SkipList{}
	perRule := map[string]*SkipList{}
	pins := map[string][]Skip{} // by rule, "" for every rule
	var bad []error
	for _, s := range skips {
		if err := ValidateSkip(s); err != nil {
			bad = append(bad, err)
			continue
		}
		if s.Source == "" {
			s.Source = SourceAdded
		}
		a.list = append(a.list, s)
		if len(s.Owners) > 0 {
			a.narrowed = append(a.narrowed, narrowedSkip{rule: s.Rule, idx: oneSkipIndex(s)})
			if s.Pin != "" {
				if a.pinned == nil {
					a.pinned = map[string]struct{}{}
				}
				a.pinned[s.Value] = struct{}{}
			}
			continue
		}
		if s.Pin != "" {
			pins[s.Rule] = append(pins[s.Rule], s)
			continue
		}
		l := &global
		if s.Rule != "" {
			if perRule[s.Rule] == nil {
				perRule[s.Rule] = &SkipList{}
			}
			l = perRule[s.Rule]
		}
		l.add(s.Kind, s.Value)
	}
	a.global = newSkipIndex(global)
	for name, l := range perRule {
		idx := newSkipIndex(*l)
		a.byRule[name] = &idx
	}
	for name, ps := range pins {
		idx := &a.global
		if name != "" {
			if idx = a.byRule[name]; idx == nil {
				idx = &skipIndex{}
				a.byRule[name] = idx
			}
		}
		for _, p := range ps {
			idx.addPin(p.Value, p.Pin)
			if a.pinned == nil {
				a.pinned = map[string]struct{}{}
			}
			a.pinned[p.Value] = struct{}{}
		}
	}
	if len(bad) > 0 {
		return a, fmt.Errorf("ignored %d invalid added skips: %w", len(bad), joinErrors(bad))
	}
	return a, nil
}

// PinnedPath reports whether an added skip is pinned to the file at path.
// The pipeline asks before judging an event, so it looks up the binary's
// content hash (a stat and a cache lookup) only for the events a pinned
// skip could silence. Safe from any goroutine.
func (e *Engine) PinnedPath(path string) bool {
	a := e.added.Load()
	if a == nil || len(a.pinned) == 0 {
		return false
	}
	_, ok := a.pinned[path]
	return ok
}

// PinnedSkips returns the added skips pinned to a file's hash. The
// pipeline checks them against an incident whose binary's hash arrived
// after it was raised, to mask what they would have silenced. Safe from
// any goroutine.
func (e *Engine) PinnedSkips() []Skip {
	a := e.added.Load()
	if a == nil || len(a.pinned) == 0 {
		return nil
	}
	var out []Skip
	for _, s := range a.list {
		if s.Pin != "" {
			out = append(out, s)
		}
	}
	return out
}

func (l *SkipList) add(kind, value string) {
	switch kind {
	case SkipCommand:
		l.Commands = append(l.Commands, value)
	case SkipPath:
		l.Paths = append(l.Paths, value)
	case SkipUser:
		l.Users = append(l.Users, value)
	}
}

// ValidateSkip checks a skip before it is stored or applied: a known kind,
// a non-empty value, and for paths an absolute path or a valid glob. Front
// ends call it so an operator hears about a typo at once.
func ValidateSkip(s Skip) error {
	if s.Value == "" {
		return fmt.Errorf("skip %s: empty value", s.Kind)
	}
	if slices.Contains(s.Owners, "") {
		return fmt.Errorf("skip %s %q: empty owner", s.Kind, s.Value)
	}
	if s.Pin != "" {
		return validatePin(s)
	}
	switch s.Kind {
	case SkipCommand, SkipUser:
	case SkipPath:
		if p := checkPathPattern(s.Value); p != nil {
			return fmt.Errorf("skip path: %s (%s)", p.msg, p.hint)
		}
	default:
		return fmt.Errorf("skip %q: unknown kind %q (want command, path or user)", s.Value, s.Kind)
	}
	return nil
}

// Matches reports whether the skip's value matches the process of ev, by
// the same rules the engine uses (command: exe base name or comm, with
// comm truncation; path: prefix on directory boundaries or glob; user:
// name or uid). It ignores which rule the skip is for: see Covers.
func (s Skip) Matches(ev *event.Event) bool {
	if ValidateSkip(s) != nil {
		return false
	}
	idx := oneSkipIndex(s)
	var f facts
	f.init(ev, hostMounts())
	return idx.match(&f)
}

// Covers reports whether the skip would have suppressed inc: its value
// matches the incident's process and its scope reaches the incident's
// rule. A skip for one rule covers only that rule's incidents; a global
// skip covers every rule except root-escalation rules, which only skips
// written for them can silence. The store uses this to mask incidents when
// a skip is added and to unmask them when it is removed.
func (s Skip) Covers(inc *Incident) bool { return s.Coverer()(inc) }

// Coverer returns Covers with the skip's matcher built once, for testing
// many incidents: adding a skip checks every stored incident.
func (s Skip) Coverer() func(*Incident) bool {
	if ValidateSkip(s) != nil {
		return func(*Incident) bool { return false }
	}
	idx := oneSkipIndex(s)
	host := hostMounts()
	return func(inc *Incident) bool {
		if s.Rule != "" {
			if s.Rule != inc.Rule {
				return false
			}
		} else if inc.Type == TypeRootEscalation {
			return false
		}
		var f facts
		f.init(&inc.Process, host)
		return idx.match(&f)
	}
}

// validatePin checks a pinned skip: a path skip for one exact absolute
// file (no glob, no directory prefix) and a hex SHA-256.
func validatePin(s Skip) error {
	if s.Kind != SkipPath {
		return fmt.Errorf("skip %s %q: only a path skip can be pinned to a file's SHA-256", s.Kind, s.Value)
	}
	if !strings.HasPrefix(s.Value, "/") || isGlob(s.Value) || path.Clean(s.Value) != s.Value || s.Value == "/" {
		return fmt.Errorf("skip path %q: a pinned skip names one file by its absolute, clean path, without wildcards", s.Value)
	}
	if !validSum(s.Pin) {
		return fmt.Errorf("skip path %q: pin %q is not a SHA-256 (64 lower-case hex digits)", s.Value, s.Pin)
	}
	return nil
}

func validSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func joinErrors(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// hostMounts is this host's mount identity, read once, for matching
// outside an engine (Skip.Matches, Skip.Coverer).
var hostMounts = sync.OnceValue(func() *HostMounts {
	h := DetectHostMounts()
	return &h
})

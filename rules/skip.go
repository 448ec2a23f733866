package rules

import (
	"fmt"
	"strings"

	"github.com/procwatch/procwatch/event"
)

// skipIndex is a compiled skip list: exact commands in maps, paths in a
// prefix map plus globs, users by uid and name.
type skipIndex struct {
	commands *commandSet
	paths    *pathSet
	users    *userSet
}

func newSkipIndex(l SkipList) skipIndex {
	return skipIndex{
		commands: newCommandSet(l.Commands),
		paths:    newPathSet(l.Paths),
		users:    newUserSet(l.Users),
	}
}

func (s *skipIndex) match(f *facts) bool {
	if s == nil {
		return false
	}
	return s.commands.match(f.base, f.comm) || s.paths.match(f.path) || s.users.match(f)
}

// addedIndex is the compiled form of the skips added at run time: global
// ones and one index per rule name.
type addedIndex struct {
	list   []Skip
	global skipIndex
	byRule map[string]*skipIndex
}

func newAddedIndex(skips []Skip) (*addedIndex, error) {
	a := &addedIndex{byRule: map[string]*skipIndex{}}
	global := SkipList{}
	perRule := map[string]*SkipList{}
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
	if len(bad) > 0 {
		return a, fmt.Errorf("ignored %d invalid added skips: %w", len(bad), joinErrors(bad))
	}
	return a, nil
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
	var l SkipList
	l.add(s.Kind, s.Value)
	idx := newSkipIndex(l)
	var f facts
	f.init(ev)
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
	var l SkipList
	l.add(s.Kind, s.Value)
	idx := newSkipIndex(l)
	return func(inc *Incident) bool {
		if s.Rule != "" {
			if s.Rule != inc.Rule {
				return false
			}
		} else if inc.Type == TypeRootEscalation {
			return false
		}
		var f facts
		f.init(&inc.Process)
		return idx.match(&f)
	}
}

func joinErrors(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

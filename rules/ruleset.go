package rules

import (
	"errors"
	"fmt"
	"os"

	"github.com/procwatch/procwatch/event"
)

// DefaultYAML holds the built-in rules.yaml. Package main embeds the file
// from the repository root (go:embed cannot reach a parent directory from
// here) and sets this before any command runs.
var DefaultYAML []byte

// DefaultName is the name the built-in rules carry in messages.
const DefaultName = "rules.yaml (built in)"

// RuleSet is a validated rules file, compiled for matching. It is immutable
// once Parse returns it, so one RuleSet can be shared between engines and
// goroutines.
type RuleSet struct {
	Name    string   // file name, for messages
	Version int      // always 1 today
	Skip    SkipList // global skips
	Rules   []Rule

	compiled []compiledRule
	global   skipIndex
}

// compiledRule is a Rule with its selectors and skips turned into lookup
// structures.
type compiledRule struct {
	rule      *Rule
	evType    event.EventType
	paths     *pathSet
	fs        []string
	commands  *commandSet
	args      *argSet
	users     *userSet
	owners    *userSet
	parents   *commandSet
	container *bool
	images    []glob
	exitCodes []int
	signals   []string
	skip      skipIndex
}

var typeEvents = map[string]event.EventType{
	TypeBinExecution:       event.TypeExec,
	TypeRootEscalation:     event.TypeEscalation,
	TypeTerminationFailure: event.TypeExit,
}

func (s *RuleSet) compile() error {
	s.global = newSkipIndex(s.Skip)
	s.compiled = make([]compiledRule, len(s.Rules))
	for i := range s.Rules {
		r := &s.Rules[i]
		evType, ok := typeEvents[r.Type]
		if !ok {
			return fmt.Errorf("rule %q: unknown type %q", r.Name, r.Type)
		}
		s.compiled[i] = compiledRule{
			rule:      r,
			evType:    evType,
			paths:     newPathSet(r.Match.Paths),
			fs:        r.Match.Filesystems,
			commands:  newCommandSet(r.Match.Commands),
			args:      newArgSet(r.Match.Args),
			users:     newUserSet(r.Match.Users),
			owners:    newUserSet(r.Match.Owners),
			parents:   newCommandSet(r.Match.ParentCommands),
			container: r.Match.Container,
			images:    compileGlobs(r.Match.Images),
			exitCodes: r.Match.ExitCodes,
			signals:   r.Match.Signals,
			skip:      newSkipIndex(r.Skip),
		}
	}
	return nil
}

// Skips lists every skip written in the file: global ones with an empty
// Rule, then each rule's own, all with Source rules.yaml.
func (s *RuleSet) Skips() []Skip {
	var out []Skip
	out = appendSkips(out, s.Skip, "")
	for _, r := range s.Rules {
		out = appendSkips(out, r.Skip, r.Name)
	}
	return out
}

func appendSkips(out []Skip, l SkipList, rule string) []Skip {
	for _, v := range l.Commands {
		out = append(out, Skip{Kind: SkipCommand, Value: v, Rule: rule, Source: SourceRulesFile, Owners: l.Owners})
	}
	for _, v := range l.Paths {
		out = append(out, Skip{Kind: SkipPath, Value: v, Rule: rule, Source: SourceRulesFile, Owners: l.Owners})
	}
	for _, v := range l.Users {
		out = append(out, Skip{Kind: SkipUser, Value: v, Rule: rule, Source: SourceRulesFile, Owners: l.Owners})
	}
	return out
}

// Rule returns the rule called name, or nil.
func (s *RuleSet) Rule(name string) *Rule {
	for i := range s.Rules {
		if s.Rules[i].Name == name {
			return &s.Rules[i]
		}
	}
	return nil
}

// LoadFile reads and parses a rules file. Problems in the file come back as
// ParseErrors; a file that cannot be read gives a wrapped *PathError.
func LoadFile(path string) (*RuleSet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	return Parse(path, data)
}

// ErrNoDefault means DefaultYAML was never set: the binary was built
// without the embedded rules (as in some package tests).
var ErrNoDefault = errors.New("no built-in rules: this binary was built without rules.yaml; pass --rules PATH")

// Default parses the built-in rules.
func Default() (*RuleSet, error) {
	if len(DefaultYAML) == 0 {
		return nil, ErrNoDefault
	}
	return Parse(DefaultName, DefaultYAML)
}

// Load returns the rules at path, or the built-in rules when path is empty:
// the meaning of the global --rules flag.
func Load(path string) (*RuleSet, error) {
	if path == "" {
		return Default()
	}
	return LoadFile(path)
}

// Package suggest proposes skips for incidents and explains, in words a
// front end can show as they are, what a skip would cover. The TUI (its
// `p` key and its Noise screen) and the CLI (`skip add`, `skip suggest`)
// share it, so both offer the same skip for the same incident and warn
// about the same dangers.
//
// A suggestion is the narrowest skip that silences the incident: the
// exact resolved binary (never its directory), for the incident's rule
// only, and pinned to the binary's SHA-256 when it lives where someone
// other than the package manager can write (so a different file put at
// that path later is not silenced). A command name is never suggested: the
// process chooses it. Widening a suggestion is the operator's explicit
// edit, and Warnings says what the wider skip costs.
package suggest

import (
	"fmt"
	"path"
	"strings"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// ManyIncidents is how many masked open incidents make a skip ask for
// confirmation: past it, Warnings says so and the CLI wants --yes.
const ManyIncidents = 100

// Warning codes: stable names a front end can test for; Text is what to show.
const (
	WarnDirectory   = "directory"    // a path skip that covers a directory, not one file
	WarnRuleScope   = "rule-scope"   // the skip covers all a rule watches
	WarnMany        = "many"         // masks more than ManyIncidents open incidents
	WarnEveryRule   = "every-rule"   // global skip: root escalations stay uncovered
	WarnEscalation  = "escalation"   // the incident is an escalation a global skip cannot silence
	WarnCommand     = "command"      // a command name, chosen by the process
	WarnUser        = "user"         // every process of a user
	WarnUnpinned    = "unpinned"     // a file in a writable place, not pinned
	WarnHashUnknown = "hash-unknown" // could not pin: the binary's hash is not known
	WarnRebuilt     = "rebuilt"      // different contents ran at the path: not pinned
)

// Warning is one danger of a skip, as one line of at most about 75
// columns so that it fits an 80-column confirmation.
type Warning struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// Suggestion is a skip ready to add, with why it is the one offered and
// what it would cost.
type Suggestion struct {
	Skip     rules.Skip `json:"skip"`
	Why      string     `json:"why"`
	Count    int        `json:"count,omitempty"` // incidents it stands for (noise suggestions)
	Warnings []Warning  `json:"warnings,omitempty"`
}

// systemDirs hold binaries the package manager installs, writable by root
// only; pinning them would break the skip at every upgrade. Anything else
// (home directories, /tmp, /opt, /usr/local, build trees) is pinned.
var systemDirs = []string{"/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/games", "/bin", "/sbin", "/lib", "/lib64", "/usr/lib64"}

// Writable reports whether the binary ev ran lives where a pinned skip is
// the safe default: outside the system directories, or owned by someone
// other than root.
func Writable(ev *event.Event) bool {
	if ev.ExeOwner != nil && *ev.ExeOwner != 0 {
		return true
	}
	return !systemPath(subjectPath(ev))
}

// subjectPath is the file an incident is about, as path skips judge it:
// the "#!" script the kernel ran, else the resolved exe; for a failed exec
// (nothing ran) the absolute path that was asked for.
func subjectPath(ev *event.Event) string {
	if ev.Type == event.TypeExec && ev.Outcome == event.Failure && strings.HasPrefix(string(ev.Filename), "/") {
		return path.Clean(string(ev.Filename))
	}
	if strings.HasPrefix(string(ev.Script), "/") {
		return string(ev.Script) // path skips judge the script, not its interpreter
	}
	return string(ev.Exe)
}

// ForIncident is the skip `p` offers for inc: its exact binary, for its
// rule, pinned when the binary is in a writable place and its hash is
// known. For a root escalation it is always a path skip for the
// escalation's rule (a global skip would not silence it).
func ForIncident(inc *rules.Incident) Suggestion {
	p := subjectPath(&inc.Process)
	s := rules.Skip{Kind: rules.SkipPath, Value: p, Rule: inc.Rule}
	// Why is for display: the values in it are escaped for the terminal.
	dp, dr := event.DisplayString(p), event.DisplayString(inc.Rule)
	sg := Suggestion{Skip: s}
	failed := inc.Process.Type == event.TypeExec && inc.Process.Outcome == event.Failure
	switch {
	case strings.HasPrefix(p, "…") || !strings.HasPrefix(p, "/"):
		sg.Why = "the binary's full path is not known; no path skip can name it"
		sg.Skip.Kind, sg.Skip.Value = rules.SkipCommand, string(inc.Process.Comm)
	case !Writable(&inc.Process):
		sg.Why = fmt.Sprintf("only %s, a system binary, for rule %s", dp, dr)
	case failed:
		sg.Why = fmt.Sprintf("only failed runs of %s (nothing ran, so there is no content to pin), for rule %s", dp, dr)
	case inc.Process.Script != "":
		sg.Why = fmt.Sprintf("only the script %s, for rule %s (scripts are not pinned)", dp, dr)
	case inc.Process.ExeSHA256 != "":
		sg.Skip.Pin = inc.Process.ExeSHA256
		sg.Why = fmt.Sprintf("only this exact file (%s, SHA-256 %s…), for rule %s", dp, sg.Skip.Pin[:12], dr)
	default:
		sg.Why = fmt.Sprintf("only %s, for rule %s (not pinned: its SHA-256 is not known)", dp, dr)
	}
	sg.Warnings = Warnings(Check{Skip: sg.Skip, Incident: inc, ExactFile: true})
	return sg
}

// Check is what Warnings judges: a skip and what the caller knows about it.
type Check struct {
	Skip rules.Skip
	// Masked is how many open incidents it would mask (a preview); 0 when
	// not known.
	Masked int
	// ExactFile says the path names one file (the TUI made it from an
	// incident's exe; the CLI found a regular file there). A path that is
	// not known to be one file is treated as a directory.
	ExactFile bool
	// Incident is the incident the skip is for, when there is one.
	Incident *rules.Incident
	// Rule is the rule the skip is for (Skip.Rule), when known.
	Rule *rules.Rule
}

// Warnings lists what a skip covers beyond one file of one rule, in words.
func Warnings(c Check) []Warning {
	s := c.Skip
	var w []Warning
	add := func(code, format string, a ...any) {
		w = append(w, Warning{Code: code, Text: fmt.Sprintf(format, a...)})
	}
	switch s.Kind {
	case rules.SkipPath:
		dir := strings.ContainsAny(s.Value, "*?[") || !c.ExactFile
		if dir && s.Pin == "" {
			add(WarnDirectory, "covers every binary under %s, not one file", clip(s.Value, 40))
		} else if s.Pin == "" && c.Incident != nil && Writable(&c.Incident.Process) && !failedExec(c.Incident) {
			add(WarnUnpinned, "not pinned: any file later put at %s is silenced too", clip(s.Value, 30))
		}
		if c.Rule != nil && coversRulePaths(s, c.Rule) {
			add(WarnRuleScope, "covers all that rule %s watches: it will raise nothing", clip(c.Rule.Name, 30))
		}
	case rules.SkipCommand:
		add(WarnCommand, "a command name is chosen by the process: any program named %s", clip(s.Value, 30))
		if c.Rule != nil && slicesHas(c.Rule.Match.Commands, s.Value) && len(c.Rule.Match.Commands) == 1 {
			add(WarnRuleScope, "covers all that rule %s watches: it will raise nothing", clip(c.Rule.Name, 30))
		}
	case rules.SkipUser:
		add(WarnUser, "covers every process user %s runs", clip(s.Value, 30))
	}
	if s.Rule == "" {
		add(WarnEveryRule, "for every rule but root escalations (only a skip for their rule can)")
		if c.Incident != nil && c.Incident.Type == rules.TypeRootEscalation {
			add(WarnEscalation, "this incident is a root escalation: a skip for every rule will not silence it")
		}
	}
	if c.Masked > ManyIncidents {
		add(WarnMany, "masks %d open incidents (more than %d)", c.Masked, ManyIncidents)
	}
	return w
}

func failedExec(inc *rules.Incident) bool {
	return inc.Process.Type == event.TypeExec && inc.Process.Outcome == event.Failure
}

// coversRulePaths: the path skip covers every tree the rule's path
// selectors watch (each selector's fixed leading directory lies under it).
func coversRulePaths(s rules.Skip, r *rules.Rule) bool {
	if s.Pin != "" || len(r.Match.Paths) == 0 {
		return false
	}
	v := strings.TrimRight(s.Value, "/")
	for _, g := range r.Match.Paths {
		fixed := g
		if i := strings.IndexAny(g, "*?["); i >= 0 {
			fixed = g[:i]
		}
		fixed = strings.TrimRight(fixed, "/")
		if !(v == "" || fixed == v || strings.HasPrefix(fixed, v+"/")) {
			return false
		}
	}
	return true
}

func slicesHas(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// clip shortens s to n runes with an ellipsis, and escapes it for a
// terminal: values come from processes.
func clip(s string, n int) string {
	d := event.DisplayString(s)
	r := []rune(d)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return d
}

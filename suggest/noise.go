package suggest

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/procwatch/procwatch/rules"
)

// FromIncidents turns the top talkers among incs into suggested skips:
// each open incident's ForIncident skip, counted over the incidents it
// covers, most first, cut to limit (0: all). A binary that raised many
// incidents is then silenced with one suggestion, as narrowly as `p` would
// do it for one of them. Incidents that are not open are left out.
//
// When different contents ran at one path (a build tree rebuilds its test
// programs), a pin would cover one version only and the next build would
// raise again: the suggestion is then the exact path without a pin, with
// a warning that says so.
func FromIncidents(incs []rules.Incident, limit int) []Suggestion {
	type key struct{ kind, value, rule string }
	type group struct {
		sg   Suggestion
		pins map[string]bool
	}
	byKey := map[key]*group{}
	var order []*group
	for i := range incs {
		inc := &incs[i]
		if inc.Status != rules.StatusOpen {
			continue
		}
		sg := ForIncident(inc)
		k := key{sg.Skip.Kind, sg.Skip.Value, sg.Skip.Rule}
		g := byKey[k]
		if g == nil {
			g = &group{sg: sg, pins: map[string]bool{}}
			byKey[k] = g
			order = append(order, g)
		}
		g.sg.Count += int(max(inc.Count, 1))
		g.pins[sg.Skip.Pin] = true
	}
	out := make([]Suggestion, 0, len(order))
	for _, g := range order {
		if len(g.pins) > 1 && g.sg.Skip.Pin != "" {
			g.sg.Skip.Pin = ""
			g.sg.Why = "only " + clip(g.sg.Skip.Value, 50) + forRule(g.sg.Skip.Rule) + " (not pinned: it changes)"
			g.sg.Warnings = []Warning{{Code: WarnRebuilt, Text: fmt.Sprintf(
				"%d different files ran at %s: not pinned, so any file there is silenced", len(g.pins), clip(g.sg.Skip.Value, 24))}}
		}
		out = append(out, g.sg)
	}
	sortByCount(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func systemPath(p string) bool {
	for _, d := range systemDirs {
		if len(p) > len(d) && p[:len(d)] == d && p[len(d)] == '/' {
			return true
		}
	}
	return false
}

func forRule(r string) string {
	if r == "" {
		return ", for every rule"
	}
	return ", for rule " + clip(r, 30)
}

func sortByCount(s []Suggestion) {
	slices.SortStableFunc(s, func(a, b Suggestion) int { return cmp.Compare(b.Count, a.Count) })
}

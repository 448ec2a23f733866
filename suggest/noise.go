package suggest

import (
	"cmp"
	"slices"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/service"
)

// FromIncidents turns the top talkers among incs into suggested skips:
// each open incident's ForIncident skip, counted over the incidents it
// covers, most first, cut to limit (0: all). A binary that raised many
// incidents is then silenced with one suggestion, as narrowly as `p` would
// do it for one of them. Incidents that are not open are left out.
func FromIncidents(incs []rules.Incident, limit int) []Suggestion {
	type key struct{ kind, value, rule, pin string }
	byKey := map[key]int{}
	var out []Suggestion
	for i := range incs {
		inc := &incs[i]
		if inc.Status != rules.StatusOpen {
			continue
		}
		sg := ForIncident(inc)
		k := key{sg.Skip.Kind, sg.Skip.Value, sg.Skip.Rule, sg.Skip.Pin}
		n := int(max(inc.Count, 1))
		if j, ok := byKey[k]; ok {
			out[j].Count += n
			continue
		}
		byKey[k] = len(out)
		sg.Count = n
		out = append(out, sg)
	}
	sortByCount(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// FromNoise turns the Noise screen's path counts into suggested skips:
// each path for its rule, exactly (never its directory). Noise counters
// hold no content hashes, so these are not pinned and Warnings says so for
// binaries in writable places; FromIncidents pins them.
func FromNoise(n service.Noise, limit int) []Suggestion {
	var out []Suggestion
	for _, e := range n.Paths {
		if e.Value == "" || e.Value[0] != '/' {
			continue
		}
		s := rules.Skip{Kind: rules.SkipPath, Value: e.Value, Rule: e.Rule}
		sg := Suggestion{Skip: s, Count: e.Count, Why: "only " + clip(e.Value, 50) + forRule(e.Rule)}
		sg.Warnings = Warnings(Check{Skip: s, ExactFile: true})
		if !systemPath(e.Value) {
			sg.Warnings = append(sg.Warnings, Warning{Code: WarnUnpinned,
				Text: "not pinned: any file later put at " + clip(e.Value, 30) + " is silenced too"})
		}
		out = append(out, sg)
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

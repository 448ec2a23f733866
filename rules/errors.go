package rules

import (
	"fmt"
	"strings"
)

// ParseError is one problem found in a rules file, with the position an
// editor can jump to. Hint, when set, tells the operator how to fix it.
type ParseError struct {
	File string
	Line int
	Col  int
	Msg  string
	Hint string
}

// Error formats the problem as file:line:col: message; hint, the form
// compilers use, so editors and CI logs link it to the source.
func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// ParseErrors holds every problem found in one rules file. Parse reports
// them all at once so an operator fixes a file in one pass instead of one
// error per run.
type ParseErrors []*ParseError

// Error returns one line per problem.
func (errs ParseErrors) Error() string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.As and errors.Is.
func (errs ParseErrors) Unwrap() []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return out
}

// closest returns the candidate nearest to s by edit distance when it is
// close enough to be a plausible typo, for "did you mean" hints.
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	if len(s) <= 3 {
		bestDist = 2
	}
	for _, c := range candidates {
		if d := EditDistance(strings.ToLower(s), c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance between a and b, in bytes. It
// ranks "did you mean" hints: for rule fields and values here, and for the
// CLI's flag names, so both suggest the same way.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean returns a hint naming the closest candidate, or listing all of
// them when none is close.
func didYouMean(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf("did you mean %q?", c)
	}
	return "expected one of: " + strings.Join(candidates, ", ")
}

package api

import (
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

func TestQueryMatches(t *testing.T) {
	at := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	inc := rules.Incident{
		Time: at, Rule: "exec-from-writable-dir", Type: rules.TypeBinExecution, Status: rules.StatusOpen,
		Severity: rules.SeverityHigh, Summary: "/tmp/x executed by uid 0 (root)",
		Process: event.Event{Exe: "/tmp/x", Args: []event.Text{"/tmp/x", "--flag=secret"}},
	}
	tests := []struct {
		name string
		q    Query
		want bool
	}{
		{"empty query", Query{}, true},
		{"severity floor met", Query{MinSeverity: rules.SeverityHigh}, true},
		{"severity floor above", Query{MinSeverity: rules.SeverityCritical}, false},
		{"type", Query{Type: rules.TypeRootEscalation}, false},
		{"rule", Query{Rule: "exec-from-writable-dir"}, true},
		{"status", Query{Status: rules.StatusMasked}, false},
		{"since is inclusive", Query{Since: at}, true},
		{"since after", Query{Since: at.Add(time.Second)}, false},
		{"until is inclusive", Query{Until: at}, true},
		{"until before", Query{Until: at.Add(-time.Second)}, false},
		{"grep in summary", Query{Grep: "uid 0"}, true},
		{"grep in an argument", Query{Grep: "secret"}, true},
		{"grep is case-sensitive", Query{Grep: "SECRET"}, false},
	}
	for _, tt := range tests {
		if got := tt.q.Matches(&inc); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
	}
}

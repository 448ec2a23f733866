package rules

import (
	"slices"
	"testing"
)

func TestExpendableFirst(t *testing.T) {
	incs := []Incident{
		{ID: 9, Status: StatusOpen, Severity: SeverityCritical},
		{ID: 1, Status: StatusOpen, Severity: SeverityCritical},
		{ID: 8, Status: StatusOpen, Severity: SeverityLow},
		{ID: 7, Status: StatusAcknowledged, Severity: SeverityCritical},
		{ID: 2, Status: StatusMasked, Severity: SeverityHigh},
		{ID: 3, Status: StatusOpen, Severity: SeverityLow},
	}
	slices.SortFunc(incs, func(a, b Incident) int { return ExpendableFirst(&a, &b) })
	var got []ID
	for _, inc := range incs {
		got = append(got, inc.ID)
	}
	if want := []ID{2, 7, 3, 8, 1, 9}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v: masked, acknowledged, then open by severity, oldest first", got, want)
	}
}

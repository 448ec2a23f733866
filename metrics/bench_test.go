package metrics

import (
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// BenchmarkJudged is what --metrics-addr adds to the sensor's path for each
// event: reading the clock twice around the rules and the Judged call (one
// event in ten raising an incident, as in pipeline's BenchmarkHandle).
func BenchmarkJudged(b *testing.B) {
	m, err := New(Sources{Status: func() (api.Status, error) { return api.Status{}, nil }})
	if err != nil {
		b.Fatal(err)
	}
	raised := []rules.Incident{{Severity: rules.SeverityHigh, Count: 1}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		began := time.Now()
		var incs []rules.Incident
		if i%10 == 0 {
			incs = raised
		}
		m.Judged(time.Since(began), incs)
	}
}

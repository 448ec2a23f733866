// Package metricstest scrapes a Prometheus endpoint in tests and looks up
// sample values, so the metrics package's tests and the agent's end-to-end
// tests check the served text the same way a Prometheus server reads it.
package metricstest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url, checks for 200 and the text format, and parses the body
// with the Prometheus text parser; any failure ends the test.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: read: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, body)
	}
	f, err := Parse(body)
	if err != nil {
		t.Fatalf("scrape %s: %v\n%s", url, err, body)
	}
	return f
}

// Parse reads the Prometheus text exposition format.
func Parse(body []byte) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return Families(fams), nil
}

// Value returns the value of the sample of family name whose labels
// include every name=value pair in labels (given as alternating names and
// values): the counter, gauge or untyped value, or a histogram's sample
// count. ok is false when no such sample exists.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// Type returns the family's type, or "" when it is absent.
func (f Families) Type(name string) string {
	fam := f[name]
	if fam == nil {
		return ""
	}
	return fam.GetType().String()
}

func hasLabels(m *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == want[i] && lp.GetValue() == want[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunExecShort runs a short storm to check the benchmark's own
// bookkeeping: both phases ran, every exec and exit of the monitored phase
// was captured, and the report carries every figure. It asserts no timing.
func TestRunExecShort(t *testing.T) {
	res, err := RunExec(context.Background(), ExecConfig{Workers: 2, Duration: 300 * time.Millisecond, Rounds: 1})
	if err != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("bench: %v", err)
		}
		t.Skipf("bench cannot run here: %v", err)
	}
	if res.RateWithout <= 0 || res.RateWith <= 0 || res.Expected == 0 {
		t.Fatalf("no storm measured: %+v", res)
	}
	if res.Captured != res.Expected || res.Drops != 0 {
		t.Errorf("captured %d of %d, drops %d", res.Captured, res.Expected, res.Drops)
	}
	if res.PeakRSSBytes <= 0 || res.CPUPerEvent <= 0 {
		t.Errorf("missing resource figures: %+v", res)
	}
	report := res.Report()
	for _, want := range []string{"ratio", "captured", "drops", "CPU per event", "peak RSS"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

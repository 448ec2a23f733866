package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// agentStoreStatus reads the database part of `monitor status --json`.
func agentStoreStatus(t *testing.T, e testEnv) api.StoreStatus {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(mustRun(t, e, "monitor", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Store == nil {
		t.Fatal("monitor status --json has no store")
	}
	return *st.Store
}

// TestAgentRetentionFlags runs the agent with --retention-count and
// --retention-age, floods it past the limit and checks through the CLI
// that the lowest-ranked incidents went (a newer medium before an older
// high), that monitor status shows the limits and the eviction counter,
// that the limits are stored for the next run, and that 0 keeps forever.
func TestAgentRetentionFlags(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	stop := startAgent(t, e, "--retention-count", "5", "--retention-age", "2d")
	for i := range 3 {
		src.emit(t, tmpExec(fmt.Sprintf("/tmp/high%d", i), "x"))
	}
	for i := range 4 {
		ev := tmpExec(fmt.Sprintf("/tmp/medium%d", i), "x")
		ev.Outcome, ev.Errno = event.Failure, "EACCES"
		src.emit(t, ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for agentStoreStatus(t, e).EvictedByCount < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	var exes []string
	for _, inc := range parseNDJSON(t, mustRun(t, e, "incidents", "--json")) {
		exes = append(exes, string(inc.Process.Exe))
	}
	slices.Sort(exes)
	want := []string{"/tmp/high0", "/tmp/high1", "/tmp/high2", "/tmp/medium2", "/tmp/medium3"}
	if !slices.Equal(exes, want) {
		t.Errorf("kept %v, want %v (the oldest mediums go before any open high)", exes, want)
	}
	st := agentStoreStatus(t, e)
	if st.RetentionCount != 5 || st.RetentionAgeSeconds != 2*86400 || st.EvictedByCount != 2 || st.Incidents != 5 {
		t.Errorf("status: %+v", st)
	}
	text := mustRun(t, e, "monitor", "status")
	for _, line := range []string{"retention:   at most 5 incidents, for 2 days", "evicted:     2 deleted by the count limit"} {
		if !strings.Contains(text, line) {
			t.Errorf("monitor status lacks %q:\n%s", line, text)
		}
	}
	if err, log := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, log)
	} else if strings.Count(log, "count limit reached") != 1 {
		t.Errorf("want one eviction log line:\n%s", log)
	}

	// Stored: a run without the flags keeps them.
	stop = startAgent(t, e)
	if st := agentStoreStatus(t, e); st.RetentionCount != 5 || st.RetentionAgeSeconds != 2*86400 || st.EvictedByCount != 2 {
		t.Errorf("after a restart without flags: %+v", st)
	}
	stop()

	// 0 (or less) keeps forever; changing one limit leaves the other.
	stop = startAgent(t, e, "--retention-count", "0")
	if st := agentStoreStatus(t, e); st.RetentionCount != 0 || st.RetentionAgeSeconds != 2*86400 {
		t.Errorf("--retention-count 0: %+v", st)
	}
	stop()
	stop = startAgent(t, e, "--retention-age", "-1h")
	if st := agentStoreStatus(t, e); st.RetentionCount != 0 || st.RetentionAgeSeconds != 0 {
		t.Errorf("--retention-age -1h: %+v", st)
	}
	if text := mustRun(t, e, "monitor", "status"); !strings.Contains(text, "retention:   all incidents, forever") {
		t.Errorf("monitor status with no limits:\n%s", text)
	}
	src.emit(t, tmpExec("/tmp/after", "x"))
	waitIncidents(t, e, 6)
	stop()
}

// TestRetentionFlagErrors: a bad value is a usage error, one line, exit 2.
func TestRetentionFlagErrors(t *testing.T) {
	e := newTestEnv(t)
	for _, args := range [][]string{
		{"agent", "--retention-age", "soon"},
		{"agent", "--retention-count", "many"},
	} {
		_, errOut, code := runCLI(t, "", e.args(args...)...)
		if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "retention") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
}

// TestAgentFloodKeepsWhatMatters floods a running agent at its count limit
// through the rules: 2,000 failed execs of distinct /tmp paths by uid 65534
// (medium) after a few successful ones (high). The high incidents all
// survive, only flood incidents are evicted, and the eviction counter moves
// in monitor status and in the Prometheus metrics.
func TestAgentFloodKeepsWhatMatters(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	port := freePort(t)
	stop := startAgent(t, e, "--retention-count", "100", "--metrics-addr", ":"+port)
	for i := range 5 {
		src.emit(t, tmpExec(fmt.Sprintf("/tmp/dropper%d", i), "x"))
	}
	waitIncidents(t, e, 5)
	const flood = 2000
	for i := range flood {
		ev := tmpExec(fmt.Sprintf("/tmp/flood/%05d", i), "x")
		ev.UID, ev.EUID, ev.Outcome, ev.Errno = 65534, 65534, event.Failure, "EACCES"
		src.emit(t, ev)
	}
	want := uint64(5 + flood - 100)
	waitMetric(t, "http://127.0.0.1:"+port+"/metrics", float64(want), "procwatch_store_evicted_incidents_total")
	if st := agentStoreStatus(t, e); st.EvictedByCount != want || st.Incidents != 100 {
		t.Errorf("status after the flood: %+v", st)
	}
	high := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--severity", "high", "--limit", "0"))
	if len(high) != 5 {
		t.Errorf("%d high incidents survived the flood, want all 5", len(high))
	}
	for _, inc := range parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--limit", "0")) {
		if inc.Severity != rules.SeverityHigh && !strings.HasPrefix(string(inc.Process.Exe), "/tmp/flood/") {
			t.Errorf("unexpected incident %s", inc.Process.Exe)
		}
	}
	if err, log := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, log)
	} else if n := strings.Count(log, "count limit reached"); n != 1 {
		t.Errorf("%d eviction log lines for one flood, want 1", n)
	}
}

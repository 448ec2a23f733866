package cli

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/metrics/metricstest"
)

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// waitMetric scrapes url until the sample has value v, and returns the
// last scrape.
func waitMetric(t *testing.T, url string, v float64, name string, labels ...string) metricstest.Families {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := metricstest.Scrape(t, url)
		got, ok := f.Value(name, labels...)
		if ok && got == v {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAgentServesMetrics(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	port := freePort(t)
	stop := startAgent(t, e, "--metrics-addr", ":"+port)
	url := "http://127.0.0.1:" + port + "/metrics"

	// A second agent is told about the first, not about the busy port.
	if _, errOut, code := runCLI(t, "", e.args("agent", "--metrics-addr", ":"+port)...); code != 1 || !strings.Contains(errOut, "already running") {
		t.Errorf("second agent: exit %d, %q; want 1 and already running", code, errOut)
	}

	src.emit(t, tmpExec("/tmp/backup.sh", "a"))
	src.emit(t, tmpExec("/tmp/backup.sh", "a")) // a repeat of the same incident
	src.emit(t, tmpExec("/usr/bin/ls", "c"))    // no rule matches
	waitIncidents(t, e, 1)

	f := waitMetric(t, url, 1, "procwatch_incidents_open", "severity", "high")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"procwatch_events_total", []string{"type", "exec"}, 3},
		{"procwatch_rule_evaluation_seconds", nil, 3}, // one observation per event
		{"procwatch_incidents_raised_total", []string{"severity", "high"}, 1},
		{"procwatch_incident_repeats_total", []string{"severity", "high"}, 1},
		{"procwatch_incidents_raised_total", []string{"severity", "critical"}, 0},
		{"procwatch_incidents_open", []string{"severity", "medium"}, 0},
		{"procwatch_monitoring", nil, 1},
		{"procwatch_rules_reload_errors_total", nil, 0},
		{"procwatch_store_dropped_incidents_total", nil, 0},
	} {
		if got, ok := f.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if got, _ := f.Value("procwatch_store_committed_incidents_total"); got < 1 {
		t.Errorf("store committed %v incidents, want at least 1", got)
	}
	if _, ok := f.Value("go_goroutines"); !ok {
		t.Error("go_goroutines missing: the Go collector is not registered")
	}

	// Gauges follow the agent: monitoring off and on.
	mustRun(t, e, "monitor", "off")
	waitMetric(t, url, 0, "procwatch_monitoring")
	mustRun(t, e, "monitor", "on")
	waitMetric(t, url, 1, "procwatch_monitoring")

	// A broken rules file is counted and flagged until a good one loads.
	if err := os.WriteFile(e.rules, []byte("version: 1\nrules:\n  - name: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, url, 1, "procwatch_rules_reload_failing")
	if got, _ := metricstest.Scrape(t, url).Value("procwatch_rules_reload_errors_total"); got < 1 {
		t.Errorf("reload errors %v after a broken rules file, want at least 1", got)
	}
	if err := os.WriteFile(e.rules, []byte(agentTestRules), 0o600); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, url, 0, "procwatch_rules_reload_failing")

	err, stderr := stop()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, stderr)
	}
	if want := "url=http://127.0.0.1:" + port + "/metrics"; !strings.Contains(stderr, want) {
		t.Errorf("log does not say the metrics are on 127.0.0.1 (%s):\n%s", want, stderr)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
		c.Close()
		t.Error("the metrics port still accepts connections after the agent stopped")
	}
}

func TestAgentMetricsOffByDefault(t *testing.T) {
	cmd := newAgentCmd(&Options{})
	if fl := cmd.Flags().Lookup("metrics-addr"); fl == nil || fl.DefValue != "" {
		t.Fatalf("--metrics-addr default %+v, want empty (off)", fl)
	}
	if fl := cmd.Flags().Lookup("metrics-allow-remote"); fl == nil || fl.DefValue != "false" {
		t.Fatalf("--metrics-allow-remote default %+v, want false", fl)
	}
	useFakeSensor(t)
	e := newTestEnv(t)
	stop := startAgent(t, e)
	err, stderr := stop()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "metrics") {
		t.Errorf("an agent without --metrics-addr mentions metrics:\n%s", stderr)
	}
}

func TestAgentRefusesBadMetricsAddr(t *testing.T) {
	useFakeSensor(t)
	e := newTestEnv(t)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--metrics-addr", "0.0.0.0:0"}, "--metrics-allow-remote"},
		{[]string{"--metrics-addr", "[::]:0"}, "--metrics-allow-remote"},
		{[]string{"--metrics-addr", "192.0.2.7:9464"}, "not a loopback address"},
		{[]string{"--metrics-addr", "9464"}, "HOST:PORT"},
		{[]string{"--metrics-addr", "127.0.0.1:notaport"}, "bad port"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, errOut, code := runCLI(t, "", e.args(append([]string{"agent"}, c.args...)...)...)
			if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.says) {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line saying %q", code, errOut, c.says)
			}
		})
	}
	// Refused before anything started: no socket, no database.
	for _, p := range []string{e.sock, e.db} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists after the agent refused its flags", p)
		}
	}
}

func TestAgentMetricsPortInUse(t *testing.T) {
	useFakeSensor(t)
	e := newTestEnv(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	_, errOut, code := runCLI(t, "", e.args("agent", "--metrics-addr", "localhost:"+port)...)
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "address already in use; choose another --metrics-addr") {
		t.Errorf("exit %d, stderr %q; want exit 1 and one line naming the busy address", code, errOut)
	}
	if _, err := os.Stat(e.db); err == nil {
		t.Error("the database was opened although the agent could not serve its metrics")
	}
}

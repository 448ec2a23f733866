package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

const agentTestRules = `version: 1
rules:
  - name: tmp-exec
    type: bin-execution
    match:
      paths: ["/tmp/**"]
    severity:
      success: high
      failure: medium
`

// fakeSensor replaces the BPF sensor in agent tests: events sent on its
// channel reach the pipeline from one goroutine, as the sensor's do.
type fakeSensor struct {
	events  chan *event.Event
	running atomic.Bool
	seen    atomic.Uint64
}

func (f *fakeSensor) Run(ctx context.Context, handle func(*event.Event)) error {
	f.running.Store(true)
	defer f.running.Store(false)
	for {
		select {
		case ev := <-f.events:
			handle(ev)
			f.seen.Add(1)
		case <-ctx.Done():
			return nil
		}
	}
}

func (f *fakeSensor) Stats() event.Stats { return event.Stats{Exec: f.seen.Load(), Mode: "fake"} }

func (f *fakeSensor) emit(t *testing.T, ev *event.Event) {
	t.Helper()
	select {
	case f.events <- ev:
	case <-time.After(10 * time.Second):
		t.Fatal("the fake sensor is not running")
	}
}

// useFakeSensor makes the agent commands run on a fake sensor for one test.
func useFakeSensor(t *testing.T) *fakeSensor {
	f := &fakeSensor{events: make(chan *event.Event)}
	old := newEventSource
	newEventSource = func(int, func()) (pipeline.EventSource, func() error, error) {
		return f, func() error { return nil }, nil
	}
	t.Cleanup(func() { newEventSource = old })
	return f
}

func tmpExec(exe, arg string) *event.Event {
	return &event.Event{
		Type: event.TypeExec, Time: time.Now(), PID: 4242, PPID: 1, UID: 1000, EUID: 1000,
		Comm: event.Text(filepath.Base(exe)), Exe: event.Text(exe), Filename: event.Text(exe),
		Args: []event.Text{event.Text(exe), event.Text(arg)}, Outcome: event.Success,
	}
}

// testEnv is a temp dir with a rules file, a database path and a socket
// path, and the global flags that select them.
type testEnv struct {
	dir, rules, db, sock string
}

func newTestEnv(t *testing.T) testEnv {
	dir := t.TempDir()
	e := testEnv{dir: dir, rules: filepath.Join(dir, "rules.yaml"), db: filepath.Join(dir, "state", "procwatch.db"), sock: filepath.Join(dir, "run", "procwatch.sock")}
	if err := os.WriteFile(e.rules, []byte(agentTestRules), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e testEnv) args(args ...string) []string {
	return append([]string{"--rules", e.rules, "--db", e.db, "--socket", e.sock}, args...)
}

// startAgent runs `procwatch agent` in the background until the test ends
// or stop is called; stop returns the command's error and its stderr.
func startAgent(t *testing.T, e testEnv, extra ...string) (stop func() (error, string)) {
	t.Helper()
	root := NewRoot()
	var stdout, stderr lockedBuffer
	root.SetArgs(e.args(append([]string{"agent"}, extra...)...))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := protocol.Dial(e.sock); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("agent exited at start: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("agent socket never answered\n%s", stderr.String())
		}
	}
	var stopped atomic.Bool
	stop = func() (error, string) {
		if stopped.Swap(true) {
			return nil, stderr.String()
		}
		cancel()
		select {
		case err := <-done:
			return err, stderr.String()
		case <-time.After(20 * time.Second):
			t.Fatal("agent did not stop")
			return nil, ""
		}
	}
	t.Cleanup(func() { stop() })
	return stop
}

// mustRun runs a command and fails the test unless it exits 0.
func mustRun(t *testing.T, e testEnv, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, "", e.args(args...)...)
	if code != 0 {
		t.Fatalf("procwatch %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func parseNDJSON(t *testing.T, s string) []rules.Incident {
	t.Helper()
	var out []rules.Incident
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var inc rules.Incident
		if err := json.Unmarshal([]byte(line), &inc); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, inc)
	}
	return out
}

// waitIncidents polls `incidents --json` until want incidents are listed.
func waitIncidents(t *testing.T, e testEnv, want int, args ...string) []rules.Incident {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		incs := parseNDJSON(t, mustRun(t, e, append([]string{"incidents", "--json"}, args...)...))
		if len(incs) == want {
			return incs
		}
		if time.Now().After(deadline) {
			t.Fatalf("listed %d incidents, want %d: %+v", len(incs), want, incs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAgentEndToEnd(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	outFile := filepath.Join(e.dir, "incidents.ndjson")
	stop := startAgent(t, e, "--output", outFile)

	for p, want := range map[string]os.FileMode{filepath.Dir(e.sock): os.ModeDir | 0o700, e.sock: os.ModeSocket | 0o600, e.db: 0o600, outFile: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}

	// A second agent on the same socket refuses to start.
	_, errOut, code := runCLI(t, "", e.args("agent")...)
	if code != 1 || !strings.Contains(errOut, "already running") {
		t.Errorf("second agent: exit %d, %q", code, errOut)
	}

	hostile := "/tmp/evil\xff\x1b[2J"
	src.emit(t, tmpExec("/tmp/backup.sh", "a"))
	src.emit(t, tmpExec("/tmp/backup.sh", "a")) // a repeat: same incident, count 2
	src.emit(t, tmpExec(hostile, "b"))
	src.emit(t, tmpExec("/usr/bin/ls", "c")) // no rule matches
	incs := waitIncidents(t, e, 2)
	if incs[0].Process.Exe != event.Text(hostile) {
		t.Errorf("newest incident exe %q, want the exact bytes %q", incs[0].Process.Exe, hostile)
	}
	waitCount := time.Now().Add(10 * time.Second)
	for incs[1].Count != 2 && time.Now().Before(waitCount) {
		time.Sleep(50 * time.Millisecond)
		incs = waitIncidents(t, e, 2)
	}
	if incs[1].Count != 2 {
		t.Errorf("repeat not counted: %+v", incs[1])
	}

	// Human output escapes what a process chose.
	human := mustRun(t, e, "incidents")
	// (The summary is a plain string, so the agent's JSON turned the
	// invalid byte into U+FFFD; the escape character must not survive.)
	if strings.Contains(human, "\x1b") || !strings.Contains(human, `\x1b[2J`) {
		t.Errorf("human output not escaped:\n%q", human)
	}
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--grep", "backup")); len(got) != 1 {
		t.Errorf("--grep backup: %d incidents", len(got))
	}
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--severity", "critical")); len(got) != 0 {
		t.Errorf("--severity critical: %d incidents", len(got))
	}
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--limit", "1")); len(got) != 1 {
		t.Errorf("--limit 1: %d incidents", len(got))
	}

	// Skips reach the running agent: mask, filter, undo.
	// (A path skip: a command skip never silences a binary in /tmp.)
	out := mustRun(t, e, "skip", "add", "--rule", "tmp-exec", "path", "/tmp/backup.sh", "--note", "nightly")
	if !strings.Contains(out, "masked 1 open incident\n") {
		t.Errorf("skip add said %q", out)
	}
	var skips []rules.Skip
	if err := json.Unmarshal([]byte(mustRun(t, e, "skip", "list", "--json")), &skips); err != nil {
		t.Fatal(err)
	}
	var added rules.Skip
	for _, s := range skips {
		if s.Source == rules.SourceAdded {
			added = s
		}
	}
	if added.ID == "" || added.Value != "/tmp/backup.sh" || added.Note != "nightly" || added.Rule != "tmp-exec" {
		t.Fatalf("skip list: %+v", skips)
	}
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--status", "masked")); len(got) != 1 {
		t.Errorf("%d masked incidents, want 1", len(got))
	}
	src.emit(t, tmpExec("/tmp/backup.sh", "new args")) // skipped at once
	out = mustRun(t, e, "skip", "rm", added.ID)
	if !strings.Contains(out, "unmasked 1 incident\n") {
		t.Errorf("skip rm said %q", out)
	}
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--status", "open")); len(got) != 2 {
		t.Errorf("%d open incidents after undo, want 2", len(got))
	}
	_, errOut, code = runCLI(t, "", e.args("skip", "rm", "path", "/tmp/backup.sh", "--rule", "tmp-exec")...)
	if code != 1 || !strings.Contains(errOut, "no added skip") {
		t.Errorf("rm of a removed skip: exit %d, %q", code, errOut)
	}

	// --follow prints incidents raised after it started.
	followCtx, stopFollow := context.WithCancel(context.Background())
	var followOut lockedBuffer
	followDone := make(chan error, 1)
	go func() {
		root := NewRoot()
		root.SetArgs(e.args("incidents", "--json", "--follow", "--limit", "1"))
		root.SetOut(&followOut)
		root.SetErr(io.Discard)
		followDone <- root.ExecuteContext(followCtx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(followOut.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	src.emit(t, tmpExec("/tmp/followed", "x"))
	for !strings.Contains(followOut.String(), "/tmp/followed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stopFollow()
	if err := <-followDone; err != nil {
		t.Errorf("follow: %v", err)
	}
	if got := parseNDJSON(t, followOut.String()); len(got) != 2 || got[1].Process.Exe != "/tmp/followed" {
		t.Errorf("follow printed %+v", got)
	}

	// Monitoring off detaches the sensor and persists.
	mustRun(t, e, "monitor", "off")
	deadline = time.Now().Add(10 * time.Second)
	for src.running.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if src.running.Load() {
		t.Error("sensor still running with monitoring off")
	}
	var st struct {
		Monitoring bool           `json:"monitoring"`
		OpenBySev  map[string]int `json:"open_by_severity"`
		Sensor     event.Stats    `json:"sensor"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, e, "monitor", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Monitoring || st.OpenBySev["high"] != 3 || st.Sensor.Mode != "fake" {
		t.Errorf("status: %+v", st)
	}

	// A broken rules file on disk is reported; the old rules stay.
	if err := os.WriteFile(e.rules, []byte("version: 1\nrules: ["), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(mustRun(t, e, "monitor", "status"), "rules error:") {
		if time.Now().After(deadline) {
			t.Fatal("a broken rules file never showed in monitor status")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := mustRun(t, e, "monitor", "on"); out != "monitoring on\n" {
		t.Errorf("monitor on said %q", out)
	}
	src.emit(t, tmpExec("/tmp/after-bad-reload", "x"))
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--grep", "after-bad-reload")); len(got) != 1 {
		t.Errorf("the previous rules stopped working after a bad reload: %d incidents", len(got))
	}
	mustRun(t, e, "monitor", "off")

	// Export through the agent.
	exp := filepath.Join(e.dir, "export.json")
	mustRun(t, e, "export", "-o", exp, "--rule", "tmp-exec")
	if fi, err := os.Stat(exp); err != nil || fi.Mode() != 0o600 {
		t.Fatalf("export file: %v %v", fi, err)
	}
	var exported []rules.Incident
	data, _ := os.ReadFile(exp)
	if err := json.Unmarshal(data, &exported); err != nil || len(exported) != 4 {
		t.Fatalf("export: %d incidents, %v", len(exported), err)
	}

	if err, logs := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, logs)
	} else if !strings.Contains(logs, "database flushed") {
		t.Errorf("agent log lacks the shutdown line:\n%s", logs)
	}

	// --output got every incident and update, as NDJSON.
	outData, _ := os.ReadFile(outFile)
	lines := parseNDJSON(t, string(outData))
	if len(lines) != 5 || lines[1].Count != 2 || lines[0].ID != lines[1].ID {
		t.Errorf("--output has %d lines (want new, update, new, new, new): %s", len(lines), outData)
	}

	// With the agent gone, the same commands read the database directly,
	// and the monitoring choice persisted.
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json")); len(got) != 4 {
		t.Errorf("offline: %d incidents, want 4", len(got))
	}
	if out := mustRun(t, e, "monitor", "status"); !strings.Contains(out, "monitoring:  off") {
		t.Errorf("offline status:\n%s", out)
	}
	if _, errOut, code := runCLI(t, "", e.args("incidents", "--follow")...); code != 1 || !strings.Contains(errOut, "needs a running agent") {
		t.Errorf("offline --follow: exit %d, %q", code, errOut)
	}
	out = mustRun(t, e, "skip", "add", "path", "/tmp/followed")
	if !strings.Contains(out, "masked 1 open incident\n") {
		t.Errorf("offline skip add: %q", out)
	}
}

func TestOfflineCommandsReportALockedDatabase(t *testing.T) {
	e := newTestEnv(t)
	st, err := store.Open(e.db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	_, errOut, code := runCLI(t, "", e.args("incidents")...)
	if code != 1 || !strings.Contains(errOut, "procwatch is already running") || !strings.Contains(errOut, e.db) {
		t.Errorf("exit %d, %q", code, errOut)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to report the lock", d)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	useFakeSensor(t)
	e := newTestEnv(t)
	os.MkdirAll(filepath.Dir(e.sock), 0o700)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: e.sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // what a killed agent leaves behind
	// Commands treat it as "no agent" (monitor status then says nothing
	// monitors, exit 1) ...
	if _, errOut, code := runCLI(t, "", e.args("monitor", "status")...); code != 1 || !strings.Contains(errOut, "no agent is running") {
		t.Errorf("monitor status with a stale socket: exit %d, %q", code, errOut)
	}
	// ... and a new agent takes its place.
	stop := startAgent(t, e)
	if err, logs := stop(); err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
}

func TestServeStdio(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	opts := &Options{RulesPath: e.rules, DBPath: e.db, Socket: e.sock}

	serveOn := func(t *testing.T) (*protocol.Client, func() error) {
		front, back := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- runServe(context.Background(), opts, back, io.Discard) }()
		c, err := protocol.NewClient(front)
		if err != nil {
			t.Fatal(err)
		}
		return c, func() error {
			c.Close()
			select {
			case err := <-done:
				return err
			case <-time.After(20 * time.Second):
				return errors.New("serve did not end")
			}
		}
	}

	t.Run("runs the pipeline without an agent", func(t *testing.T) {
		c, end := serveOn(t)
		st, err := c.Status(context.Background())
		if err != nil || st.Sensor.Mode != "fake" || st.RulesPath != e.rules {
			t.Errorf("status %+v, %v", st, err)
		}
		src.emit(t, tmpExec("/tmp/via-serve", "1"))
		deadline := time.Now().Add(10 * time.Second)
		for {
			incs, err := c.Incidents(context.Background(), api.Query{})
			if err == nil && len(incs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("incidents: %v, %v", incs, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := end(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Run("relays to a running agent", func(t *testing.T) {
		stop := startAgent(t, e)
		c, end := serveOn(t)
		if err := c.SetMonitoring(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		// The agent itself changed, not a second pipeline.
		direct, err := protocol.Dial(e.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer direct.Close()
		if st, err := direct.Status(context.Background()); err != nil || st.Monitoring {
			t.Errorf("agent status after relay: %+v, %v", st, err)
		}
		if err := end(); err != nil {
			t.Errorf("serve: %v", err)
		}
		stop()
	})
}

func TestUsageErrorsExitTwo(t *testing.T) {
	e := newTestEnv(t)
	cases := [][]string{
		{"incidents", "--severity", "bogus"},
		{"incidents", "--type", "fork"},
		{"incidents", "--status", "closed"},
		{"incidents", "--since", "yesterday-ish"},
		{"incidents", "--since", "1h", "--until", "2h"},
		{"incidents", "--limit", "-1"},
		{"export", "--format", "xml"},
		{"export", "--until", "nope"},
		{"skip", "add", "colour", "red"},
		{"skip", "add", "path", ""},
		{"serve"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, errOut, code := runCLI(t, "", e.args(args...)...)
			if code != 2 || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line", code, errOut)
			}
		})
	}
	// Nothing was created by commands that failed their flags.
	if _, err := os.Stat(e.db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a usage error created the database: %v", err)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 5, 6, 12, 0, 0, 0, time.Local)
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", time.Time{}, true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.AddDate(0, 0, -7), true},
		{"1d12h", now.Add(-36 * time.Hour), true},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.Local), true},
		{"2026-01-02T15:04", time.Date(2026, 1, 2, 15, 4, 0, 0, time.Local), true},
		{"2026-01-02 15:04:05", time.Date(2026, 1, 2, 15, 4, 5, 0, time.Local), true},
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), true},
		{"-5m", time.Time{}, false},
		{"xd", time.Time{}, false},
		{"tomorrow", time.Time{}, false},
	}
	for _, c := range cases {
		got, err := parseWhen(c.in, now)
		if (err == nil) != c.ok || !got.Equal(c.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestAgentWithRealSensor runs the agent on the real BPF sensor and checks
// that running a binary from a watched directory becomes an incident. It
// needs root and a kernel that loads the programs; it skips otherwise,
// unless PROCWATCH_REQUIRE_BPF=1 demands it.
func TestAgentWithRealSensor(t *testing.T) {
	e := newTestEnv(t)
	bin := filepath.Join(e.dir, "bin")
	os.MkdirAll(bin, 0o755)
	rulesYAML := strings.Replace(agentTestRules, `"/tmp/**"`, fmt.Sprintf("%q", bin+"/**"), 1)
	os.WriteFile(e.rules, []byte(rulesYAML), 0o600)
	_, closeProbe, err := newEventSource(1<<20, nil)
	if err != nil {
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("sensor cannot load and PROCWATCH_REQUIRE_BPF=1: %v", err)
		}
		t.Skipf("sensor cannot load: %v", err)
	}
	closeProbe()
	startAgent(t, e)
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, "procwatch-agent-test")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// The sensor attaches just after the socket answers; run the binary
	// until it is seen (repeats fold into one incident).
	deadline := time.Now().Add(20 * time.Second)
	var incs []rules.Incident
	for len(incs) == 0 && time.Now().Before(deadline) {
		if err := exec.Command(exe, "marker").Run(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		incs = parseNDJSON(t, mustRun(t, e, "incidents", "--json"))
	}
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want 1: %+v", len(incs), incs)
	}
	if incs[0].Process.Exe != event.Text(exe) || incs[0].Rule != "tmp-exec" {
		t.Errorf("incident %+v", incs[0])
	}
}

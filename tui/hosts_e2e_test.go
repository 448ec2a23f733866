package tui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
)

// realAgent is one `procwatch agent` with its own database and socket,
// standing for one host.
type realAgent struct {
	t       *testing.T
	bin     string
	dir     string
	cmd     *exec.Cmd
	exited  chan error
	log     string
	started int // agent processes started so far
}

func (a *realAgent) db() string     { return filepath.Join(a.dir, "procwatch.db") }
func (a *realAgent) socket() string { return filepath.Join(a.dir, "procwatch.sock") }
func (a *realAgent) marker() string { return filepath.Join(a.dir, "down") }

// transport is the host's command: the relay of `serve --stdio` to this
// agent, refusing (as an unreachable host would) while the agent is not
// running or the test marked the host down.
func (a *realAgent) transport(name string) string {
	return fmt.Sprintf(`if [ -e %[1]s ]; then echo "%[2]s is down (test marker)" >&2; exit 1; fi; `+
		`if [ ! -S %[3]s ]; then echo "no agent on %[3]s" >&2; exit 1; fi; `+
		`exec %[4]s --db %[5]s --socket %[3]s serve --stdio`, a.marker(), name, a.socket(), a.bin, a.db())
}

// start runs the agent and waits until its sensor is attached. An agent
// that exits instead is an error carrying its log.
func (a *realAgent) start() error {
	a.t.Helper()
	a.started++
	a.log = filepath.Join(a.dir, fmt.Sprintf("agent-%d.log", a.started))
	logf, err := os.OpenFile(a.log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	defer logf.Close()
	a.cmd = exec.Command(a.bin, "--db", a.db(), "--socket", a.socket(), "agent")
	a.cmd.Stdout, a.cmd.Stderr = io.Discard, logf
	if err := a.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }()
	a.exited = exited
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(a.log)
		if bytes.Contains(b, []byte("sensor attached")) {
			return nil
		}
		select {
		case err := <-exited:
			a.cmd = nil
			return fmt.Errorf("agent exited (%v): %s", err, b)
		case <-time.After(20 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(a.log)
	return fmt.Errorf("agent sensor not attached within 15 s: %s", b)
}

// waitLog waits until the agent's log holds n lines containing s.
func (a *realAgent) waitLog(s string, n int) {
	a.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(a.log)
		if bytes.Count(b, []byte(s)) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(a.log)
	a.t.Fatalf("agent log never showed %d× %q:\n%s", n, s, b)
}

// stop ends the agent with SIGTERM, as systemd would.
func (a *realAgent) stop() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
}

func buildProcwatch(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "procwatch")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/procwatch/procwatch").CombinedOutput(); err != nil {
		t.Fatalf("build procwatch: %v\n%s", err, out)
	}
	return bin
}

// TestHostsEndToEnd drives the multi-host UI against two real agents on
// this machine, each with its own database and socket and reached through
// `procwatch serve --stdio` as a transport command: switching monitoring
// off and on on both at once, an incident seen by both with the right host
// names, an agent killed (its host shows unreachable) and restarted, and an
// incident raised while the UI could not reach it delivered after the
// reconnect. Two agents on one machine both see every process, so one exec
// raises an incident on each.
//
// It needs root and BPF; it skips without them unless
// PROCWATCH_REQUIRE_BPF=1.
func TestHostsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	require := os.Getenv("PROCWATCH_REQUIRE_BPF") == "1"
	if os.Geteuid() != 0 {
		if require {
			t.Fatal("PROCWATCH_REQUIRE_BPF=1 but not root")
		}
		t.Skip("not root")
	}
	dir, err := os.MkdirTemp("", "procwatch-hosts-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := buildProcwatch(t, dir)

	names := []string{"host-a", "host-b"}
	agents := make([]*realAgent, 2)
	for i := range agents {
		d := filepath.Join(dir, names[i])
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		agents[i] = &realAgent{t: t, bin: bin, dir: d}
		t.Cleanup(agents[i].stop)
	}
	for _, a := range agents {
		if err := a.start(); err != nil {
			if require {
				t.Fatalf("PROCWATCH_REQUIRE_BPF=1 but the agent did not start: %v", err)
			}
			t.Skipf("the agent did not start (no BPF here?): %v", err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hostList := make([]*hosts.Host, 2)
	for i, a := range agents {
		hostList[i] = hosts.FromSpec(hosts.Spec{Name: names[i], Command: a.transport(names[i])},
			hosts.Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
		hostList[i].Start(ctx)
		t.Cleanup(func() { hostList[i].Close() })
	}
	opts := testOptions()
	opts.NoStatusPoll = false
	opts.Tick = 20 * time.Millisecond
	m := NewHosts(ctx, FromHosts(hostList), opts)
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(160, 48),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	h := &harness{t: t, tm: tm, w: 160, h: 48}
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})

	// Both hosts connected; switch monitoring off, then on, on both at once.
	h.typeKeys("8")
	h.waitFor("2 hosts │ ● mon 2/2")
	h.typeKeys("*")
	h.waitFor("2 selected")
	h.typeKeys("d")
	h.waitFor("[y/n] Switch monitoring off on host-a, host-b?")
	h.typeKeys("y")
	h.waitFor("Monitoring off on host-a, host-b", "○ mon 0/2")
	for _, hc := range hostList {
		if st, err := hc.Status(ctx); err != nil || st.Monitoring {
			t.Fatalf("%s after switching off: monitoring %v, %v", hc.Name(), st.Monitoring, err)
		}
	}
	h.typeKeys("a")
	h.waitFor("Monitoring on on host-a, host-b", "● mon 2/2")
	for _, a := range agents {
		a.waitLog("sensor attached", 2) // attached again
	}

	// One exec from /tmp: an incident on each host, each with its name.
	runProbe := func(name string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		data, err := os.ReadFile("/bin/true")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(p).CombinedOutput(); err != nil {
			t.Fatalf("run %s: %v\n%s", p, err, out)
		}
		return p
	}
	// incidentHosts lists the hosts whose incidents the UI holds for exe.
	incidentHosts := func(exe string) map[string]rules.Incident {
		got := map[string]rules.Incident{}
		h.with(func(m *Model) {
			for k, r := range m.inc.byID {
				if in := r.item; string(in.Process.Exe) == exe {
					got[m.hosts[k.host].name] = *in
				}
			}
		})
		return got
	}
	waitIncidents := func(exe string, want ...string) map[string]rules.Incident {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := incidentHosts(exe)
			ok := len(got) == len(want)
			for _, w := range want {
				_, has := got[w]
				ok = ok && has
			}
			if ok {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("incidents of %s are from %v, want %v\n%s", exe, got, want, h.screen())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	one := runProbe("probe-one")
	waitIncidents(one, "host-a", "host-b")
	h.typeKeys("1")
	// Filter by this run's own directory: every sensor on the machine sees
	// every process, including probes of tests running in parallel.
	h.typeKeys("/" + filepath.Base(dir) + "/probe-one")
	h.press(tea.KeyEnter)
	s := h.waitFor("2 shown")
	for _, name := range names {
		if !strings.Contains(s, name) {
			t.Errorf("incident list lacks a row of %s:\n%s", name, s)
		}
	}
	h.press(tea.KeyEscape)

	// host-b goes away: its agent stops and its transport refuses.
	var lastB rules.ID
	h.with(func(m *Model) { lastB = m.hosts[1].lastID })
	if err := os.WriteFile(agents[1].marker(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	agents[1].stop()
	h.typeKeys("8")
	h.waitFor("host-b unreachable: ", "host-b is down (test marker)", "2 hosts, 1 down")
	if c := hostList[1].Conn(); c.State != hosts.Unreachable {
		t.Errorf("host-b connection = %+v", c)
	}
	if _, err := hostList[1].Status(ctx); !hosts.IsUnreachable(err) {
		t.Errorf("Status on host-b while down: %v", err)
	}

	// Its agent comes back on the same database and raises an incident
	// while the UI still cannot reach it.
	if err := agents[1].start(); err != nil {
		t.Fatalf("restart host-b's agent: %v", err)
	}
	two := runProbe("probe-two")
	waitIncidents(two, "host-a")
	waitStored(t, agents[1], two)
	if got := incidentHosts(two); len(got) != 1 {
		t.Fatalf("host-b's incident reached the UI while it was unreachable: %v", got)
	}

	// The host is reachable again: the UI reconnects, resumes after the
	// last id it had, and shows the incident it missed.
	if err := os.Remove(agents[1].marker()); err != nil {
		t.Fatal(err)
	}
	h.waitFor("2 hosts │ ● mon 2/2")
	got := waitIncidents(two, "host-a", "host-b")
	if got["host-b"].ID <= lastB {
		t.Errorf("host-b's new incident %s is not after the last id before the outage %s", got["host-b"].ID, lastB)
	}
	if c := hostList[1].Conn(); c.Connects < 2 {
		t.Errorf("host-b connects = %d, want a reconnect", c.Connects)
	}
	// The same resume at the protocol level: replayed after lastB, exactly
	// the missed incident and nothing seen before.
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	ch, err := hostList[1].Subscribe(sctx, lastB)
	if err != nil {
		t.Fatal(err)
	}
	var replay []rules.Incident
	for u := range ch {
		replay = append(replay, u.Incidents...)
		if len(u.Incidents) > 0 {
			break
		}
	}
	found := false
	for _, in := range replay {
		if in.ID <= lastB {
			t.Errorf("replay after %s sent %s again", lastB, in.ID)
		}
		found = found || string(in.Process.Exe) == two
	}
	if !found {
		t.Errorf("replay after %s lacks %s: %d incidents", lastB, two, len(replay))
	}
}

// waitStored waits until the agent has stored an incident of exe, asking
// it with `procwatch incidents --json` over its socket.
func waitStored(t *testing.T, a *realAgent, exe string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := protocol.Dial(a.socket())
		if err == nil {
			list, err := c.Incidents(context.Background(), api.Query{Grep: filepath.Base(exe)})
			c.Close()
			if err == nil && len(list) > 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("agent at %s never stored an incident of %s", a.socket(), exe)
}

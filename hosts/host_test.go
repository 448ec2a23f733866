package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
)

// serveEnv makes the test binary serve a fake agent on stdin/stdout, so
// CommandDialer can be tested with a real process and real pipes.
const serveEnv = "PROCWATCH_HOSTS_TEST_SERVE"

func TestMain(m *testing.M) {
	if host := os.Getenv(serveEnv); host != "" {
		f := servicetest.New(host, nil)
		f.Raise(servicetest.IncidentFor(42, host, "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium,
			servicetest.ExecEvent(time.Now(), 7, 1000, "/tmp/x"), "ran from /tmp"))
		err := protocol.Serve(context.Background(), f, stdio{})
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { return os.Stdout.Close() }

// pipeAgent dials in-memory connections to a fake served by protocol.Serve.
// Setting down makes dials fail; drop ends every open connection.
type pipeAgent struct {
	fake *servicetest.Fake

	mu    sync.Mutex
	down  error
	conns []net.Conn
	dials int
}

func (p *pipeAgent) dial(ctx context.Context) (io.ReadWriteCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dials++
	if p.down != nil {
		return nil, p.down
	}
	a, b := net.Pipe()
	p.conns = append(p.conns, b)
	go protocol.Serve(context.Background(), p.fake, b)
	return a, nil
}

func (p *pipeAgent) setDown(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = err
}

func (p *pipeAgent) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func fastOptions() Options {
	return Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond}
}

// waitState polls until the host is in state st and ok accepts the snapshot.
func waitState(t *testing.T, h *Host, st State, ok func(Conn) bool) Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var c Conn
	for time.Now().Before(deadline) {
		c = h.Conn()
		if c.State == st && (ok == nil || ok(c)) {
			return c
		}
		select {
		case <-h.Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("host %s never reached %s; last %+v", h.Name(), st, c)
	return c
}

func TestHostReconnectsAndResumes(t *testing.T) {
	fake := servicetest.New("agent-host", nil)
	p := &pipeAgent{fake: fake}
	h := New("web1", p.dial, fastOptions())
	if c := h.Conn(); c.State != Connecting {
		t.Fatalf("before Start: %+v", c)
	}
	h.Start(t.Context())
	t.Cleanup(func() { h.Close() })
	waitState(t, h, Connected, nil)

	st, err := h.Status(t.Context())
	if err != nil || st.Host != "agent-host" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := h.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := servicetest.IncidentFor(100, "agent-host", "crash", rules.TypeTerminationFailure, rules.SeverityLow,
		servicetest.ExitEvent(time.Now(), 1, 1000, "/bin/x", 0, "SIGSEGV"), "crashed")
	waitSubscribers(t, fake)
	fake.Publish(api.Update{Incidents: []rules.Incident{first}})
	if u := <-ch; len(u.Incidents) != 1 || u.Incidents[0].ID != 100 {
		t.Fatalf("update = %+v", u)
	}

	// The agent goes away and stays away: the subscription ends, calls
	// fail with the reason, and the host reports it is unreachable.
	p.setDown(errors.New("dial tcp: connection refused"))
	p.drop()
	for range ch {
	}
	c := waitState(t, h, Unreachable, func(c Conn) bool { return strings.Contains(c.Reason, "connection refused") })
	if c.Retry.IsZero() || c.Failures == 0 {
		t.Errorf("unreachable snapshot lacks retry or failures: %+v", c)
	}
	_, err = h.Status(t.Context())
	if !IsUnreachable(err) || !strings.Contains(err.Error(), "host web1 is unreachable: dial tcp: connection refused") {
		t.Errorf("Status while down: %v", err)
	}
	// Failures pile up and the backoff grows towards its cap.
	waitState(t, h, Unreachable, func(c Conn) bool { return c.Failures >= 3 })

	// While it is down an incident is stored; after the reconnect a
	// subscription from the last id seen replays it.
	missed := first
	missed.ID = 200
	fake.Raise(missed)
	p.setDown(nil)
	got := make(chan api.Update, 1)
	go func() {
		ch, err := h.Subscribe(ctx, 100) // waits for the connection
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- <-ch
	}()
	c = waitState(t, h, Connected, nil)
	if c.Connects != 2 || c.Failures != 0 {
		t.Errorf("after reconnect: %+v", c)
	}
	select {
	case u := <-got:
		if len(u.Incidents) != 1 || u.Incidents[0].ID != 200 {
			t.Fatalf("replay after reconnect = %+v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no replay after reconnect")
	}
}

func waitSubscribers(t *testing.T, f *servicetest.Fake) {
	t.Helper()
	// Subscribe returns after the fake registered the subscriber; this
	// only guards against the agent's own goroutine being late.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range f.Calls() {
			if strings.HasPrefix(c, "Subscribe") {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the fake never saw a subscription")
}

func TestSubscribeWaitsForConnection(t *testing.T) {
	p := &pipeAgent{fake: servicetest.New("x", nil), down: errors.New("not yet")}
	h := New("web2", p.dial, fastOptions())
	h.Start(t.Context())
	t.Cleanup(func() { h.Close() })
	waitState(t, h, Unreachable, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.Subscribe(ctx, 0); !IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Subscribe on a host that stays down: %v", err)
	}
}

func TestCloseStopsReconnecting(t *testing.T) {
	p := &pipeAgent{fake: servicetest.New("x", nil), down: errors.New("down")}
	h := New("web3", p.dial, fastOptions())
	h.Start(t.Context())
	waitState(t, h, Unreachable, nil)
	h.Close()
	p.mu.Lock()
	n := p.dials
	p.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dials != n {
		t.Errorf("dialled %d more times after Close", p.dials-n)
	}
}

func TestBackoff(t *testing.T) {
	o := Options{MinBackoff: time.Second, MaxBackoff: 10 * time.Second}
	o.defaults()
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {50, 10 * time.Second}} {
		for range 20 {
			got := o.backoff(tc.failures)
			if got > tc.want || got < tc.want*4/5 {
				t.Fatalf("backoff(%d) = %v, want within 20%% below %v", tc.failures, got, tc.want)
			}
		}
	}
}

func TestCommandTransport(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := FromSpec(Spec{Name: "cmd", Command: serveEnv + "=from-command " + exe}, fastOptions())
	h.Start(t.Context())
	waitState(t, h, Connected, nil)
	st, err := h.Status(t.Context())
	if err != nil || st.Host != "from-command" {
		t.Fatalf("Status over the command = %+v, %v", st, err)
	}
	list, err := h.Incidents(t.Context(), api.Query{})
	if err != nil || len(list) != 1 || list[0].ID != 42 {
		t.Fatalf("Incidents over the command = %+v, %v", list, err)
	}
	start := time.Now()
	h.Close()
	if d := time.Since(start); d > closeGrace {
		t.Errorf("Close took %v: the transport did not end when its stdin closed", d)
	}
}

func TestCommandFailureReason(t *testing.T) {
	for _, tc := range []struct {
		command, want string
	}{
		{`echo "ssh: connect to host web9 port 22: Connection refused" >&2; exit 255`,
			"transport exit status 255: ssh: connect to host web9 port 22: Connection refused"},
		{`echo "sudo: a terminal is required to read the password" >&2; exit 1`,
			"transport exit status 1: sudo: a terminal is required"},
		{`exec /nonexistent/procwatch serve --stdio`, "transport exit status 127: "},
	} {
		h := FromSpec(Spec{Name: "bad", Command: tc.command}, Options{MinBackoff: time.Minute})
		h.Start(t.Context())
		c := waitState(t, h, Unreachable, nil)
		h.Close()
		// The transport's own words come first, not the protocol's EOF.
		if !strings.HasPrefix(c.Reason, tc.want) {
			t.Errorf("%s: reason %q, want it to start with %q", tc.command, c.Reason, tc.want)
		}
	}
}

func TestCommandHasNoTerminal(t *testing.T) {
	// The transport must not reach the UI's terminal: /dev/tty cannot be
	// opened without a controlling terminal.
	h := FromSpec(Spec{Name: "tty", Command: `if (: </dev/tty) 2>/dev/null; then echo "has a terminal" >&2; else echo "no terminal" >&2; fi; exit 3`},
		Options{MinBackoff: time.Minute})
	h.Start(t.Context())
	c := waitState(t, h, Unreachable, nil)
	h.Close()
	if !strings.Contains(c.Reason, "no terminal") {
		t.Errorf("reason = %q", c.Reason)
	}
}

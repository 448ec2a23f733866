package fleet

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procwatch/procwatch/rules"
)

// startWithConfig runs one server with a configuration file (the account
// layout of docs/fleet.md) on a free port.
func startWithConfig(t *testing.T, conf string) string {
	t.Helper()
	o, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", freePort(t), true, true
	o.JetStream, o.StoreDir = true, t.TempDir()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return fmt.Sprintf("127.0.0.1:%d", o.Port)
}

// permErrors collects the permission violations a connection is told of.
type permErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *permErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs = append(p.errs, err.Error())
}

func (p *permErrors) has(sub string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		if strings.Contains(e, "Permissions Violation") && strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

// TestPermissions runs the fleet under the documented accounts: an agent
// works within its own host's subjects and is refused when it publishes
// as another host; an operator's control calls are recorded under its
// name and refused under another's; a read-only user reads but can
// neither control nor change skips.
func TestPermissions(t *testing.T) {
	addr := startWithConfig(t, "testdata/accounts.conf")
	setupStreams(t, "nats://admin:admin-secret@"+addr, 1)

	web1 := startReplayAgent(t, "web1", "nats://agent-web1:web1-secret@"+addr, capture("web1", 10), 0)
	alice := newViewerAs(t, "nats://alice:alice-secret@"+addr, "alice")
	waitFor(t, 20*time.Second, "web1's incidents in alice's view", func() bool { return len(alice.Incidents("web1")) == 8 })
	waitFor(t, 10*time.Second, "web1's status", func() bool { return alice.Host("web1", false).Conn().State.String() == "connected" })
	ctx := context.Background()
	if err := alice.Host("web1", false).SetMonitoring(ctx, false); err != nil {
		t.Fatalf("alice cannot switch web1 off: %v", err)
	}
	if _, err := alice.AddFleetSkip(ctx, "", rules.Skip{Kind: rules.SkipUser, Value: "1000"}); err != nil {
		t.Fatalf("alice cannot add a fleet skip: %v", err)
	}
	waitFor(t, 10*time.Second, "the skip applied on web1", func() bool { return web1.agent.skips.state().Applied == 1 })

	// The agent of web1, with its own credentials, publishing as web2.
	var pe permErrors
	nc, err := nats.Connect("nats://agent-web1:web1-secret@"+addr, nats.ErrorHandler(pe.handler), nats.CustomInboxPrefix(InboxFor("web1")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Publish(StatusSubject("web2"), []byte(`{"monitoring":true}`))
	js, _ := jetstream.New(nc)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = js.Publish(pctx, IncidentsSubject("web2"), []byte(`{}`), jetstream.WithMsgID("forged"))
	cancel()
	if err == nil {
		t.Fatal("web1's agent published an incident as web2")
	}
	nc.Flush()
	waitFor(t, 5*time.Second, "the server refusing web1 as web2", func() bool {
		return pe.has(IncidentsSubject("web2")) && pe.has(StatusSubject("web2"))
	})
	time.Sleep(time.Second)
	for _, h := range alice.Hosts() {
		if h.Name == "web2" {
			t.Errorf("a forged web2 reached the fleet view: %+v", h)
		}
	}
	// Its own subject still works on the same connection.
	pctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	_, err = js.Publish(pctx, IncidentsSubject("web1"), []byte(`{"id":"00000000000000ff","host":"web1"}`), jetstream.WithMsgID("own"))
	cancel()
	if err != nil {
		t.Errorf("web1 cannot publish its own incident: %v", err)
	}

	// Alice calling control under bob's name is refused by the server.
	var ape permErrors
	anc, err := nats.Connect("nats://alice:alice-secret@"+addr, nats.ErrorHandler(ape.handler), nats.CustomInboxPrefix(InboxFor("alice")))
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	if _, err := anc.Request(ControlSubject("web1", OpMonitorOn, "bob"), nil, 2*time.Second); err == nil {
		t.Error("alice called web1's control service as bob")
	}
	waitFor(t, 5*time.Second, "the server refusing alice as bob", func() bool { return ape.has(ControlSubject("web1", OpMonitorOn, "bob")) })

	// The read-only user reads, and can neither control nor change skips.
	viewer := newViewerAs(t, "nats://viewer:viewer-secret@"+addr, "viewer")
	if err := viewer.WaitCaughtUp(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(viewer.Incidents("web1")); n < 8 {
		t.Errorf("viewer reads %d of web1's incidents, want 8 or more", n)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := viewer.Host("web1", false).SetMonitoring(short, true); err == nil || !strings.Contains(err.Error(), "Permissions Violation") {
		t.Errorf("the read-only user switching monitoring on: %v, want a permissions violation", err)
	}
	short, cancel = context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := viewer.AddFleetSkip(short, "", rules.Skip{Kind: rules.SkipCommand, Value: "x"}); err == nil {
		t.Error("the read-only user added a fleet skip")
	}
	if st, err := web1.local.Status(ctx); err != nil || st.Monitoring {
		t.Errorf("web1 monitoring %v (%v) after the refused call, want still off", st.Monitoring, err)
	}
}

func newViewerAs(t *testing.T, url, user string) *viewer {
	t.Helper()
	v := &viewer{msgs: map[string]int{}}
	nc, err := Connect(ConnOptions{URLs: url, FailFast: true, InboxPrefix: InboxFor(user)})
	if err != nil {
		t.Fatal(err)
	}
	v.nc = nc
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v.Client, err = NewClient(ctx, nc, ClientOptions{Caller: Identity(ConnOptions{URLs: url})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close(); nc.Close() })
	return v
}

// TestDocsAccountLayout keeps docs/fleet.md's configuration the one tested.
func TestDocsAccountLayout(t *testing.T) {
	conf, err := os.ReadFile("testdata/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/fleet.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(conf)) {
		t.Error("docs/fleet.md does not quote fleet/testdata/accounts.conf as it is; copy it there")
	}
}

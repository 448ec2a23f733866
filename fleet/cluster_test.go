package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// cluster is a JetStream cluster of real nats-server instances running in
// the test process, on loopback.
type cluster struct {
	t       testing.TB
	servers []*server.Server
	opts    []*server.Options
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts n servers routed to each other and waits until
// JetStream has a meta leader.
func startCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{t: t}
	routePorts := make([]int, n)
	for i := range routePorts {
		routePorts[i] = freePort(t)
	}
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	dir := t.TempDir()
	if clusterDir != "" {
		dir = clusterDir
	}
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       freePort(t),
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			Cluster:    server.ClusterOpts{Name: "procwatch-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     routes,
			NoLog:      true,
			NoSigs:     true,
		}
		if n == 1 {
			o.Cluster, o.Routes = server.ClusterOpts{}, nil
		}
		c.opts = append(c.opts, o)
		c.servers = append(c.servers, c.start(o))
	}
	t.Cleanup(c.shutdown)
	c.waitJetStream()
	return c
}

func (c *cluster) start(o *server.Options) *server.Server {
	s, err := server.NewServer(o)
	if err != nil {
		c.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("server %s not ready", o.ServerName)
	}
	return s
}

func (c *cluster) shutdown() {
	for _, s := range c.servers {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
}

// urls lists the client URLs of the running servers.
func (c *cluster) urls() string {
	var u []string
	for i, s := range c.servers {
		if s != nil {
			u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", c.opts[i].Port))
		}
	}
	return strings.Join(u, ",")
}

func (c *cluster) waitJetStream() {
	c.t.Helper()
	nc, err := nats.Connect(c.urls())
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream cluster not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill shuts down the server named name and returns its index.
func (c *cluster) kill(name string) int {
	for i, s := range c.servers {
		if s != nil && s.Name() == name {
			s.Shutdown()
			s.WaitForShutdown()
			c.servers[i] = nil
			return i
		}
	}
	c.t.Fatalf("no running server %q", name)
	return -1
}

// proxy forwards TCP to a server and can cut every connection, so one
// agent can be really disconnected while the cluster stays up.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go p.serve()
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { io.Copy(out, in); out.Close() }()
		go func() { io.Copy(in, out); in.Close() }()
	}
}

// setCut closes every forwarded connection and refuses new ones (true),
// or lets connections through again (false).
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// replayAgent is a whole agent: a pipeline with a real store, fed by a
// replayed capture, publishing through a fleet Agent.
type replayAgent struct {
	host   string
	replay *Replay
	store  *store.Store
	local  *pipeline.Local
	agent  *Agent
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

const replayRules = `version: 1
rules:
  - name: exec-from-writable-dir
    type: bin-execution
    match: {paths: ["/tmp/**"]}
    severity: {success: medium, failure: low}
`

// capture returns n exec events from /tmp, each with arguments of its
// own except every fifth, which repeats the one before: the rules update
// that incident (count 2), so updates travel as well as new incidents.
func capture(host string, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		arg := i
		if i%5 == 4 {
			arg = i - 1
		}
		evs[i] = event.Event{Type: event.TypeExec, PID: uint32(1000 + i), PPID: 1, UID: 1000, EUID: 1000,
			Comm: "payload", Exe: "/tmp/payload", Filename: "/tmp/payload",
			Args:    []event.Text{"/tmp/payload", event.Text(fmt.Sprintf("%s-%d", host, arg))},
			Outcome: event.Success}
	}
	return evs
}

// agentGate, when set, holds every replay started afterwards until it is
// closed; agentDirs, when set, is where agents keep their files (the
// scale run puts them in /dev/shm).
var (
	agentGate chan struct{}
	agentDirs string
	// clusterDir, when set, holds the servers' JetStream storage (the
	// scale run puts it in /dev/shm too).
	clusterDir string
	// agentHandOff, when set, sees every incident as the pipeline hands
	// it to the fleet outbox (the scale run times the pipeline's share).
	agentHandOff func(inc *rules.Incident)
)

func startReplayAgent(t testing.TB, host, urls string, evs []event.Event, rate float64) *replayAgent {
	t.Helper()
	dir := t.TempDir()
	if agentDirs != "" {
		dir = filepath.Join(agentDirs, host)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(dir, "procwatch.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// One incident per distinct argument list: the default rules would
	// gather a flood like this capture into one incident.
	set, err := rules.Parse("fleet-test.yaml", []byte(replayRules))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ra := &replayAgent{host: host, store: st, done: make(chan error, 1),
		replay: &Replay{Rate: rate, events: evs, done: make(chan struct{}), gate: agentGate, stats: event.Stats{Mode: "replay"}}}
	ra.local, err = pipeline.New(pipeline.Config{Host: host, Store: st, Source: ra.replay,
		Rules: rules.NewEngine(set, rules.EngineOptions{Host: host}), OnIncident: func(inc rules.Incident) {
			if f := agentHandOff; f != nil {
				f(&inc)
			}
			ra.agent.Put(inc)
		}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ra.agent, err = NewAgent(AgentConfig{Host: host, OutboxPath: filepath.Join(dir, "outbox.db"), NoSync: true,
		Service: ra.local, Logger: log, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	ra.nc, err = Connect(ConnOptions{URLs: urls, Name: host, Logger: log, OnlyListed: true, InboxPrefix: InboxFor(host)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra.cancel = cancel
	if err := ra.agent.Start(ctx, ra.nc); err != nil {
		t.Fatal(err)
	}
	go func() { ra.done <- ra.local.Run(ctx) }()
	t.Cleanup(ra.stop)
	return ra
}

func (ra *replayAgent) stop() {
	if ra.cancel == nil {
		return
	}
	ra.cancel()
	<-ra.done
	ra.agent.Close()
	ra.nc.Close()
	ra.store.Close()
	ra.cancel = nil
}

// settled reports whether the capture is played and everything acknowledged.
func (ra *replayAgent) settled() bool {
	select {
	case <-ra.replay.Done():
	default:
		return false
	}
	s := ra.agent.Stats()
	return s.Pending == 0 && ra.agent.pub.queue.Len() == 0
}

// localIncidents returns the agent's stored incidents by id.
func (ra *replayAgent) localIncidents(t testing.TB) map[rules.ID]rules.Incident {
	t.Helper()
	if err := ra.store.Flush(); err != nil {
		t.Fatal(err)
	}
	all, err := ra.store.Query(serviceQueryAll)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[rules.ID]rules.Incident, len(all))
	for _, inc := range all {
		m[inc.ID] = inc
	}
	return m
}

func setupStreams(t testing.TB, urls string, replicas int) {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Setup(ctx, js, StreamOptions{Replicas: replicas}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var serviceQueryAll = api.Query{}

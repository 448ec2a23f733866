package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/tui"
)

// The scale run is a measurement, not a test: it starts N replayed agents
// (each with its own pipeline, store and outbox) against a 3-node cluster
// in this process, and a fleet UI in a separate process (this test binary
// again, TestScaleViewer) so that the UI's CPU is its own. Run it with
//
//	PROCWATCH_FLEET_SCALE=200x20x30s go test ./fleet -run TestScale -v -timeout 20m
//
// (agents x incidents per second each x duration). The README quotes its
// output; it is skipped without the variable.

// scaleResult is what the viewer process measured.
type scaleResult struct {
	Hosts        int     `json:"hosts"`
	Incidents    int     `json:"incidents"`
	Dups         int     `json:"dups"`
	LatP50ms     float64 `json:"latency_p50_ms"` // event handled by an agent's pipeline -> fleet client in the UI process
	LatP99ms     float64 `json:"latency_p99_ms"`
	LatMaxms     float64 `json:"latency_max_ms"`
	StreamP50ms  float64 `json:"stream_p50_ms"` // event handled -> stored in the stream (the agent's side of the delivery)
	StreamP99ms  float64 `json:"stream_p99_ms"`
	ScreenP50ms  float64 `json:"screen_p50_ms"` // event handled -> the frame that first shows the incident
	ScreenP99ms  float64 `json:"screen_p99_ms"`
	ScreenMaxms  float64 `json:"screen_max_ms"`
	OnScreen     int     `json:"on_screen"`   // incidents timed to the screen
	ViewP99ms    float64 `json:"view_p99_ms"` // one render of the UI
	ViewsPerSec  float64 `json:"views_per_s"` // renders (View calls) per second
	KeyP50ms     float64 `json:"key_p50_ms"`  // key sent -> next frame rendered
	KeyP99ms     float64 `json:"key_p99_ms"`
	KeyMaxms     float64 `json:"key_max_ms"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	WallSeconds  float64 `json:"wall_seconds"`
	CPUPercent   float64 `json:"cpu_percent"` // of one core
	MaxRSSMiB    float64 `json:"max_rss_mib"`
	TickMs       float64 `json:"tick_ms"`
	KeysMeasured int     `json:"keys_measured"`
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := min(int(p*float64(len(s))), len(s)-1)
	return s[i]
}

func parseScale(t *testing.T, s string) (agents int, rate float64, d time.Duration) {
	parts := strings.Split(s, "x")
	if len(parts) != 3 {
		t.Fatalf("PROCWATCH_FLEET_SCALE=%q: want AGENTSxRATExDURATION, e.g. 200x20x30s", s)
	}
	var err1, err2, err3 error
	agents, err1 = strconv.Atoi(parts[0])
	rate, err2 = strconv.ParseFloat(parts[1], 64)
	d, err3 = time.ParseDuration(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("PROCWATCH_FLEET_SCALE=%q: want AGENTSxRATExDURATION", s)
	}
	return
}

// distinctCapture is n exec events, each raising an incident of its own.
func distinctCapture(host string, n int) []event.Event {
	evs := capture(host, n)
	for i := range evs {
		evs[i].Args[1] = event.Text(fmt.Sprintf("%s-%d", host, i))
	}
	return evs
}

func TestScale(t *testing.T) {
	spec := os.Getenv("PROCWATCH_FLEET_SCALE")
	if spec == "" {
		t.Skip("a measurement: set PROCWATCH_FLEET_SCALE=200x20x30s to run it")
	}
	n, rate, dur := parseScale(t, spec)
	// The agents' databases and (unless PROCWATCH_FLEET_SCALE_DISK=1) the
	// servers' JetStream storage go to tmpfs: the run measures the fleet's
	// path to the screen, not the shared disk of the machine it runs on.
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "procwatch-scale-")
		if err == nil {
			agentDirs = shm
			if os.Getenv("PROCWATCH_FLEET_SCALE_DISK") != "1" {
				clusterDir = filepath.Join(shm, "cluster")
			}
			t.Cleanup(func() { os.RemoveAll(shm) })
		}
	}
	t.Logf("JetStream storage: %s", cmp.Or(clusterDir, "the test's temporary directory (disk)"))
	c := startCluster(t, 3)
	urls := c.urls()
	setupStreams(t, urls, 3)

	// The viewer first, so it sees the hosts come up.
	args := []string{"-test.run", "^TestScaleViewer$", "-test.v"}
	if prof := os.Getenv("PROCWATCH_FLEET_VIEWER_PROFILE"); prof != "" {
		args = append(args, "-test.cpuprofile", prof)
	}
	viewer := exec.Command(os.Args[0], args...)
	viewer.Env = append(os.Environ(), "PROCWATCH_FLEET_VIEWER="+urls, fmt.Sprintf("PROCWATCH_FLEET_VIEWER_FOR=%s", dur+10*time.Second),
		fmt.Sprintf("PROCWATCH_FLEET_VIEWER_HOSTS=%d", n))
	var out strings.Builder
	viewer.Stdout, viewer.Stderr = &out, &out
	if err := viewer.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	start := time.Now()
	// Every agent is set up first; the replays start together once the
	// viewer has seen them all, so the measurement has no warm-up.
	agentGate = make(chan struct{})
	var (
		handMu sync.Mutex
		handed []float64 // event handled -> handed to the outbox, ms
	)
	agentHandOff = func(inc *rules.Incident) {
		d := float64(time.Since(inc.LastSeen).Microseconds()) / 1000
		handMu.Lock()
		handed = append(handed, d)
		handMu.Unlock()
	}
	defer func() { agentGate, agentDirs, clusterDir, agentHandOff = nil, "", "", nil }()
	agents := make([]*replayAgent, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		host := fmt.Sprintf("h%03d", i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			agents[i] = startReplayAgent(t, host, urls, distinctCapture(host, int(rate*dur.Seconds())), rate)
		})
	}
	wg.Wait()
	t.Logf("%d agents started in %s; replays start now", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(4 * time.Second) // a status from each, for the viewer's host list
	close(agentGate)
	// Every second: what the agents have had acknowledged and still hold,
	// and what the stream stored, to tell a stall of the agents from one
	// of the cluster.
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		nc, err := Connect(ConnOptions{URLs: urls, FailFast: true})
		if err != nil {
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-tick.C:
			case <-stopSampling:
				return
			}
			var published, pending uint64
			for _, ra := range agents {
				s := ra.agent.Stats()
				published += s.Published
				pending += uint64(s.Pending)
			}
			stored := "?"
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if st, err := js.Stream(ctx, StreamName); err == nil {
				stored = fmt.Sprint(st.CachedInfo().State.Msgs)
			}
			cancel()
			t.Logf("t=%2ds agents: %6d acknowledged, %5d queued; stream: %s messages", i, published, pending, stored)
		}
	}()
	defer func() { close(stopSampling); <-sampled }()
	if err := viewer.Wait(); err != nil {
		t.Fatalf("viewer: %v\n%s", err, out.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "window ") {
			t.Log(l)
		}
	}
	i := strings.Index(out.String(), "SCALE ")
	if i < 0 {
		t.Fatalf("viewer printed no result:\n%s", out.String())
	}
	line := out.String()[i+len("SCALE "):]
	line = line[:strings.IndexByte(line, '\n')]
	var r scaleResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	var lost, pending uint64
	for _, ra := range agents {
		s := ra.agent.Stats()
		lost += s.Lost
		pending += uint64(s.Pending)
	}
	t.Logf("agents: lost %d, still queued %d", lost, pending)
	handMu.Lock()
	t.Logf("pipeline (event handled -> handed to the fleet outbox): %d incidents, p50 %.1f ms, p99 %.1f ms", len(handed), pct(handed, 0.5), pct(handed, 0.99))
	handMu.Unlock()
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("viewer (%d agents x %g incidents/s for %s):\n%s", n, rate, dur, b)
	if want := int(float64(n) * rate * dur.Seconds()); r.Incidents < want {
		t.Logf("the viewer saw %d of %d incidents before it stopped", r.Incidents, want)
	}
}

// keyProbe wraps the UI model and times keys: from the moment a key is
// sent to the end of the next frame.
type keyProbe struct {
	m     *tui.Model
	mu    *sync.Mutex
	sent  *time.Time
	seen  *bool
	keys  *[]float64
	views *[]float64
	// seenAt maps an incident id to when its event was handled (LastSeen);
	// applied collects those a tick just put on screen, screen their
	// event-to-frame latencies.
	seenAt  map[uint64]time.Time
	applied *[]time.Time
	screen  *[]float64
}

func (p keyProbe) Init() tea.Cmd { return p.m.Init() }

func (p keyProbe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok && k.Code == tea.KeyDown {
		p.mu.Lock()
		*p.seen = true
		p.mu.Unlock()
	}
	// The UI's frame message carries the incidents it applies now; the
	// frame after this Update shows them. Read by reflection: the type is
	// the UI's own.
	if rv := reflect.ValueOf(msg); rv.Kind() == reflect.Struct && rv.Type().Name() == "frameMsg" {
		if incs := rv.FieldByName("batch").FieldByName("incidents"); incs.IsValid() {
			p.mu.Lock()
			for i := range incs.Len() {
				if at, ok := p.seenAt[incs.Index(i).FieldByName("inc").FieldByName("ID").Uint()]; ok {
					*p.applied = append(*p.applied, at)
				}
			}
			p.mu.Unlock()
		}
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p keyProbe) View() tea.View {
	t0 := time.Now()
	v := p.m.View()
	now := time.Now()
	p.mu.Lock()
	*p.views = append(*p.views, float64(now.Sub(t0).Microseconds())/1000)
	for _, at := range *p.applied {
		*p.screen = append(*p.screen, float64(now.Sub(at).Microseconds())/1000)
	}
	*p.applied = (*p.applied)[:0]
	if *p.seen && !p.sent.IsZero() {
		*p.keys = append(*p.keys, float64(now.Sub(*p.sent).Microseconds())/1000)
		*p.seen, *p.sent = false, time.Time{}
	}
	p.mu.Unlock()
	return v
}

// TestScaleViewer is the fleet UI process of TestScale.
func TestScaleViewer(t *testing.T) {
	urls := os.Getenv("PROCWATCH_FLEET_VIEWER")
	if urls == "" {
		t.Skip("run by TestScale")
	}
	runFor, _ := time.ParseDuration(os.Getenv("PROCWATCH_FLEET_VIEWER_FOR"))
	var (
		mu       sync.Mutex
		lats     []float64
		toStream []float64   // event handled -> stored in the stream
		arrivals []time.Time // when each of lats arrived
		dups     int
		seenAt   = map[uint64]time.Time{}
	)
	nc, err := Connect(ConnOptions{URLs: urls, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := NewClient(ctx, nc, ClientOptions{Caller: "scale", OnIncident: func(_ string, inc *rules.Incident, _ uint64, dup bool, stored time.Time) {
		now := time.Now()
		d := float64(now.Sub(inc.LastSeen).Microseconds()) / 1000
		mu.Lock()
		seenAt[uint64(inc.ID)] = inc.LastSeen
		lats = append(lats, d)
		arrivals = append(arrivals, now)
		if !stored.IsZero() {
			toStream = append(toStream, float64(stored.Sub(inc.LastSeen).Microseconds())/1000)
		}
		if dup {
			dups++
		}
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Wait for every host's status (the replays start after that).
	want, _ := strconv.Atoi(os.Getenv("PROCWATCH_FLEET_VIEWER_HOSTS"))
	c.WaitHosts(ctx, 5*time.Minute, want)
	infos := c.Hosts()
	list := make([]tui.Host, len(infos))
	for i, h := range infos {
		fh := c.Host(h.Name, false)
		list[i] = tui.Host{Name: h.Name, Service: fh, Conn: fh.Conn}
	}
	opts := tui.Options{}
	m := tui.NewHosts(ctx, list, opts)
	var (
		sent    time.Time
		seen    bool
		keys    []float64
		views   []float64
		applied []time.Time
		screen  []float64
	)
	p := keyProbe{m: m, mu: &mu, sent: &sent, seen: &seen, keys: &keys, views: &views,
		seenAt: seenAt, applied: &applied, screen: &screen}
	prog := tea.NewProgram(p, tea.WithInput(nil), tea.WithOutput(devNull(t)), tea.WithWindowSize(160, 48), tea.WithContext(ctx))
	done := make(chan error, 1)
	go func() { _, err := prog.Run(); done <- err }()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	deadline := start.Add(runFor)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		if sent.IsZero() {
			sent = time.Now()
			mu.Unlock()
			prog.Send(tea.KeyPressMsg{Code: tea.KeyDown})
			continue
		}
		mu.Unlock()
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	wall := time.Since(start).Seconds()
	cpu := float64(ru.Utime.Nano()+ru.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / 1e9
	prog.Quit()
	<-done
	mu.Lock()
	defer mu.Unlock()
	r := scaleResult{Hosts: len(infos), Incidents: len(lats), Dups: dups,
		LatP50ms: pct(lats, 0.5), LatP99ms: pct(lats, 0.99), LatMaxms: pct(lats, 1),
		StreamP50ms: pct(toStream, 0.5), StreamP99ms: pct(toStream, 0.99),
		ScreenP50ms: pct(screen, 0.5), ScreenP99ms: pct(screen, 0.99), ScreenMaxms: pct(screen, 1), OnScreen: len(screen),
		ViewP99ms: pct(views, 0.99), ViewsPerSec: float64(len(views)) / wall, KeyP50ms: pct(keys, 0.5), KeyP99ms: pct(keys, 0.99), KeyMaxms: pct(keys, 1),
		CPUSeconds: cpu, WallSeconds: wall, CPUPercent: 100 * cpu / wall, MaxRSSMiB: float64(ru.Maxrss) / 1024,
		TickMs: 50, KeysMeasured: len(keys)}
	// The client latency by 5 s window of arrival, to tell a start-up
	// transient from a steady state.
	if len(arrivals) > 0 {
		t0 := arrivals[0]
		win := map[int][]float64{}
		last := 0
		for i, at := range arrivals {
			w := int(at.Sub(t0) / (5 * time.Second))
			win[w] = append(win[w], lats[i])
			last = max(last, w)
		}
		for w := 0; w <= last; w++ {
			fmt.Printf("window %2d-%2ds: %6d incidents, client p50 %7.1f ms p99 %7.1f ms\n", 5*w, 5*w+5, len(win[w]), pct(win[w], 0.5), pct(win[w], 0.99))
		}
	}
	b, _ := json.Marshal(r)
	fmt.Printf("SCALE %s\n", b)
}

func devNull(t *testing.T) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

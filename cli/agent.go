package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/agent"
	"github.com/procwatch/procwatch/metrics"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/safepath"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/service"
	"github.com/procwatch/procwatch/store"
)

// newEventSource loads the sensor; attached runs each time its programs
// are attached. Tests replace it with a fake source so the agent can run
// end to end without BPF.
var newEventSource = func(ringBytes int, attached func()) (pipeline.EventSource, func() error, error) {
	s, err := sensor.New(sensor.Config{RingBufferBytes: ringBytes, Attached: attached})
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

type agentFlags struct {
	output        string
	group         string
	readGroup     string
	maxConns      int
	maxConnsUID   int
	idleTimeout   time.Duration
	ringMiB       int
	metricsAddr   string
	metricsRemote bool
	fleet         fleetFlags // --nats, --replay and friends (fleet.go)
	// Retention flags; set only when given on the command line.
	retCount    int
	retAge      retentionAge
	setRetCount bool
	setRetAge   bool
}

// retentionAge is --retention-age: a Go duration (720h, 90m) or a number of
// days (30d).
type retentionAge time.Duration

func (a *retentionAge) String() string { return time.Duration(*a).String() }
func (a *retentionAge) Type() string   { return "duration" }

func (a *retentionAge) Set(v string) error {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return fmt.Errorf("want a duration such as 30d, 720h or 90m")
		}
		*a = retentionAge(n * float64(24*time.Hour))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 30d, 720h or 90m")
	}
	*a = retentionAge(d)
	return nil
}

// storeOptions turns the retention flags into store options for this
// process (a value of 0 or less means keep forever: the store's -1), and
// has the database checked for damage in the background at start.
func (f agentFlags) storeOptions(log *slog.Logger) store.Options {
	o := store.Options{Logger: log, CheckAtOpen: true}
	if f.setRetCount {
		o.RetentionCount = -1
		if f.retCount > 0 {
			o.RetentionCount = f.retCount
		}
	}
	if f.setRetAge {
		o.RetentionAge = -1
		if f.retAge > 0 {
			o.RetentionAge = time.Duration(f.retAge)
		}
	}
	return o
}

func newAgentCmd(opts *Options) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the pipeline headless: sensor, rules, store and the local socket",
		Long: `Run procwatch without a terminal UI until SIGINT or SIGTERM: the eBPF
sensor feeds the rules, incidents go to the database, and the API is served
on a unix socket (--socket; default /run/procwatch/procwatch.sock, mode
0600) so that "procwatch incidents", "skip", "monitor", "export" and the TUI
reach the running pipeline. Logs go to stderr.

Rules given with --rules are reloaded when the file changes or on SIGHUP; a
broken file keeps the previous rules and is reported in the log and in
"procwatch monitor status".

--output - (stdout) or --output FILE (appended, mode 0600) also writes every
incident, new ones and their updates, as one JSON object per line, for log
shippers such as Vector, Fluent Bit or Loki.

--retention-count N keeps at most N incidents: when more arrive, masked
ones go first, then acknowledged ones, then open ones of the lowest
severity, oldest first, so an open high or critical incident goes only when
nothing lower is left. --retention-age DURATION (30d, 720h) deletes
incidents raised and last seen longer ago. 0 or a negative value keeps
forever. Both are stored in the database and stay in force for later runs
until changed; "procwatch monitor status" shows them. Defaults: 1,000,000
incidents, 30 days.

--metrics-addr ADDR serves Prometheus metrics at http://ADDR/metrics (off by
default). A bare port (:9464) listens on 127.0.0.1 only; a host that is not
loopback (0.0.0.0, a LAN address) is refused unless --metrics-allow-remote
is given too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.setRetCount = cmd.Flags().Changed("retention-count")
			f.setRetAge = cmd.Flags().Changed("retention-age")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAgent(ctx, opts, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&f.output, "output", "", "also write every incident as NDJSON to FILE, or - for stdout")
	cmd.Flags().StringVar(&f.group, "socket-group", "", "let members of this group use the socket (directory 0750, socket 0660)")
	cmd.Flags().StringVar(&f.readGroup, "socket-read-group", "", "let members of this group query and subscribe, but change nothing (socket 0666, callers checked by their kernel credentials)")
	cmd.Flags().IntVar(&f.maxConns, "max-connections", agent.DefaultMaxConnections, "serve at most this many socket connections of non-root callers at once; more are told the agent is busy")
	cmd.Flags().IntVar(&f.maxConnsUID, "max-connections-per-uid", agent.DefaultMaxConnectionsPerUID, "at most this many of them from one uid (root is never limited)")
	cmd.Flags().DurationVar(&f.idleTimeout, "idle-timeout", agent.DefaultIdleTimeout, "close a socket connection that sends nothing and has nothing running for this long")
	cmd.Flags().IntVar(&f.ringMiB, "ring-buffer-mib", sensor.DefaultRingBufferBytes>>20, "BPF ring buffer size in MiB (a power of two)")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics; a bare :PORT means 127.0.0.1:PORT (default off)")
	cmd.Flags().BoolVar(&f.metricsRemote, "metrics-allow-remote", false, "let --metrics-addr name a host that is not loopback, such as 0.0.0.0")
	f.fleet.register(cmd)
	cmd.Flags().IntVar(&f.retCount, "retention-count", 0, "keep at most N incidents, evicting masked, acknowledged, then the lowest severities first; 0 or less keeps all (stored; default 1000000)")
	cmd.Flags().Var(&f.retAge, "retention-age", "delete incidents older than DURATION (30d, 720h); 0 or less keeps them forever (stored; default 30d)")
	return cmd
}

// agentMemoryLimit is the agent's soft memory limit (the Go runtime's
// GOMEMLIMIT) unless the environment sets one: the collector works harder
// as the heap nears it, which keeps the daemon's footprint small under a
// burst of connections or requests (see "Memory" in the README).
const agentMemoryLimit = 96 << 20

func runAgent(ctx context.Context, opts *Options, f agentFlags, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(agentMemoryLimit))
	}
	access := agent.NoGroups
	var err error
	if access.FullGID, err = lookupGroup("--socket-group", f.group); err != nil {
		return err
	}
	if access.ReadGID, err = lookupGroup("--socket-read-group", f.readGroup); err != nil {
		return err
	}
	if f.maxConns <= 0 {
		return usageError("--max-connections %d: want 1 or more", f.maxConns)
	}
	if f.maxConnsUID <= 0 {
		return usageError("--max-connections-per-uid %d: want 1 or more", f.maxConnsUID)
	}
	if f.idleTimeout <= 0 {
		return usageError("--idle-timeout %v: want a positive duration such as 5m", f.idleTimeout)
	}
	if f.metricsAddr != "" {
		if err := checkMetricsAddr(f.metricsAddr, f.metricsRemote); err != nil {
			return err
		}
	}
	fl, err := f.fleet.open(opts, log)
	if err != nil {
		return err
	}
	defer fl.close()
	if opts.RulesPath != "" {
		// The rules decide what is detected: a file someone else can
		// rewrite would let them switch detection off.
		if err := safepath.CheckFile(opts.RulesPath); err != nil {
			return fmt.Errorf("--rules: %w", err)
		}
	}
	sock := socketPath(opts)
	ln, err := agent.Listen(sock, access)
	if err != nil {
		return err
	}
	defer ln.Close()
	var metricsLn net.Listener
	if f.metricsAddr != "" {
		if metricsLn, err = metrics.Listen(f.metricsAddr, f.metricsRemote); err != nil {
			return fmt.Errorf("%w; choose another --metrics-addr", err)
		}
		defer metricsLn.Close()
	}

	var out *incidentOutput
	if f.output != "" {
		if out, err = newIncidentOutput(f.output, stdout, log); err != nil {
			return err
		}
	}
	var (
		p   *runningPipeline
		mx  *metrics.Metrics
		obs pipeline.Observer
	)
	if metricsLn != nil {
		// Scrapes start only once p is set, below.
		mx, err = metrics.New(metrics.Sources{
			Status: func() (service.Status, error) { return p.local.Snapshot() },
			Store:  func() store.Stats { return p.store.Stats() },
			Logger: log,
		})
		if err != nil {
			out.close()
			return err
		}
		obs = mx
	}
	p, err = openPipelineObserved(opts, log, f.storeOptions(log), f.ringMiB<<20, true, fl.chain(out.put), obs)
	if err != nil {
		out.close()
		return err
	}
	if err := f.storeRetention(p.store); err != nil {
		out.close()
		p.close()
		return err
	}
	if err := fl.start(ctx, p.local); err != nil {
		out.close()
		p.close()
		return err
	}
	log.Info("agent started", "socket", sock, "db", p.store.Path(), "rules", rulesLabel(opts), "sensor", p.sensorMode())

	metricsDone := make(chan error, 1)
	metricsCtx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	if mx != nil {
		go func() { metricsDone <- mx.Serve(metricsCtx, metricsLn) }()
		log.Info("metrics served", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	} else {
		metricsDone <- nil
	}

	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() {
		srv := &agent.Server{Service: fl.serve(p.local), Logger: log, Access: access, MaxConnections: f.maxConns, MaxConnectionsPerUID: f.maxConnsUID, IdleTimeout: f.idleTimeout}
		srvDone <- srv.ServeListener(srvCtx, ln)
	}()
	runErr := p.local.Run(ctx)
	stopSrv()
	if err := <-srvDone; err != nil {
		log.Warn("socket server", "err", err)
	}
	stopMetrics()
	if err := <-metricsDone; err != nil {
		log.Warn("metrics server", "err", err)
	}
	out.close()
	fl.close()
	if err := p.close(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		log.Error("agent stopped", "err", runErr)
		return runErr
	}
	log.Info("agent stopped; database flushed")
	return nil
}

// lookupGroup resolves a group flag's name (or number) to its gid; an
// empty value gives -1.
func lookupGroup(flag, name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		if g, err = user.LookupGroupId(name); err != nil {
			return -1, usageError("%s %q: no such group", flag, name)
		}
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("group %s has a non-numeric id %q", name, g.Gid)
	}
	return gid, nil
}

// checkMetricsAddr turns a --metrics-addr that cannot or may not be served
// into a usage error, before the agent creates anything.
func checkMetricsAddr(addr string, allowRemote bool) error {
	_, err := metrics.ListenAddr(addr, allowRemote)
	switch {
	case errors.Is(err, metrics.ErrNotLoopback):
		return usageError("--metrics-addr %s is not a loopback address; add --metrics-allow-remote to serve metrics beyond this host, or give :PORT for 127.0.0.1", addr)
	case err != nil:
		return usageError("--metrics-addr: %v", err)
	}
	return nil
}

// runningPipeline is a pipeline.Local with what it owns.
type runningPipeline struct {
	local   *pipeline.Local
	store   *store.Store
	source  pipeline.EventSource
	closers []func() error
}

// openPipeline opens the store, the rules (watched for changes when they
// come from a file) and, with withSensor, the sensor; a sensor that does
// not load is an error. onIncident may be nil.
func openPipeline(opts *Options, log *slog.Logger, ringBytes int, withSensor bool, onIncident func(rules.Incident)) (*runningPipeline, error) {
	return openPipelineObserved(opts, log, store.Options{Logger: log}, ringBytes, withSensor, onIncident, nil)
}

// storeRetention stores the retention flags given, so later runs keep them.
func (f agentFlags) storeRetention(st *store.Store) error {
	o := f.storeOptions(nil)
	if f.setRetCount {
		if err := st.SetRetentionCount(o.RetentionCount); err != nil {
			return err
		}
	}
	if f.setRetAge {
		if err := st.SetRetentionAge(o.RetentionAge); err != nil {
			return err
		}
	}
	return nil
}

// openPipelineObserved is openPipeline with an observer (the agent's
// metrics) told what the pipeline does; obs may be nil.
func openPipelineObserved(opts *Options, log *slog.Logger, storeOpts store.Options, ringBytes int, withSensor bool, onIncident func(rules.Incident), obs pipeline.Observer) (*runningPipeline, error) {
	set, err := rules.Load(opts.RulesPath)
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", rulesLabel(opts), err)
	}
	st, err := store.Open(dbPath(opts), storeOpts)
	if err != nil {
		return nil, err
	}
	p := &runningPipeline{store: st}
	host, _ := os.Hostname()
	if opts.agentHost != "" {
		host = opts.agentHost
	}
	if withSensor && opts.agentSource != nil {
		p.source = opts.agentSource
	} else if withSensor {
		src, closeSrc, err := newEventSource(ringBytes, func() { log.Info("sensor attached: watching") })
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("start sensor: %w", err)
		}
		p.source = src
		p.closers = append(p.closers, closeSrc)
	}
	var namer pipeline.ContainerNamer
	if c := openContainers(opts, log, withSensor); c != nil {
		namer = c
		p.closers = append(p.closers, func() error { c.Close(); return nil })
	}
	p.local, err = pipeline.New(pipeline.Config{
		Host:       host,
		Store:      st,
		Source:     p.source,
		Rules:      rules.NewEngine(set, rules.EngineOptions{Host: host}),
		RulesPath:  rulesLabel(opts),
		OnIncident: onIncident,
		Observer:   obs,
		Logger:     log,
		Containers: namer,
	})
	if err != nil {
		p.close()
		return nil, err
	}
	if opts.RulesPath != "" {
		w, err := rules.NewWatcher(opts.RulesPath, p.local.ApplyRules)
		if err != nil {
			p.close()
			return nil, err
		}
		p.closers = append(p.closers, w.Close)
	} else {
		// SIGHUP would end the process by default; with built-in rules
		// there is nothing to reload, so say so instead.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-hup:
					log.Info("SIGHUP: the built-in rules are in use; nothing to reload (use --rules FILE)")
				case <-done:
					return
				}
			}
		}()
		p.closers = append(p.closers, func() error { signal.Stop(hup); close(done); return nil })
	}
	return p, nil
}

func (p *runningPipeline) sensorMode() string {
	if p.source == nil {
		return "none"
	}
	if m := p.source.Stats().Mode; m != "" {
		return m
	}
	return "loaded"
}

// close releases the watcher and sensor, then flushes and closes the store.
func (p *runningPipeline) close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	if err := p.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database %s: %w", p.store.Path(), err))
	}
	return errors.Join(errs...)
}

// incidentOutput writes incidents as NDJSON from its own goroutine, so a
// slow disk or a stalled pipe never holds up the sensor: the queue is
// bounded and what overflows is counted and logged.
type incidentOutput struct {
	ch      chan rules.Incident
	done    chan struct{}
	dropped atomic.Uint64
	once    sync.Once
	log     *slog.Logger
}

const outputQueue = 8192

func newIncidentOutput(path string, stdout io.Writer, log *slog.Logger) (*incidentOutput, error) {
	var (
		w      = stdout
		closer = func() error { return nil }
	)
	if path != "-" {
		f, err := safepath.CreateOutput(path)
		if err != nil {
			return nil, fmt.Errorf("--output: %w", err)
		}
		w, closer = f, f.Close
	}
	o := &incidentOutput{ch: make(chan rules.Incident, outputQueue), done: make(chan struct{}), log: log}
	go o.loop(w, closer)
	return o, nil
}

// put queues inc; it never blocks. A nil output ignores it.
func (o *incidentOutput) put(inc rules.Incident) {
	if o == nil {
		return
	}
	select {
	case o.ch <- inc:
	default:
		o.dropped.Add(1)
	}
}

func (o *incidentOutput) loop(w io.Writer, closer func() error) {
	defer close(o.done)
	bw := bufio.NewWriterSize(w, 64<<10)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var failed error
	var reported uint64
	// check gives up on the output at its first error: the incidents are
	// in the database anyway, and one log line says so.
	check := func(err error) {
		if err != nil && failed == nil {
			failed = err
			o.log.Error("--output failed; no more incidents will be written there", "err", err)
		}
	}
	reportDrops := func() {
		if n := o.dropped.Load(); n > reported {
			o.log.Warn("--output could not keep up; incidents left out (they are in the database)", "count", n-reported)
			reported = n
		}
	}
	for {
		select {
		case inc, ok := <-o.ch:
			if !ok {
				check(errors.Join(bw.Flush(), closer()))
				reportDrops()
				return
			}
			if failed == nil {
				b, err := json.Marshal(&inc)
				if err == nil {
					_, err = bw.Write(append(b, '\n'))
				}
				check(err)
			}
		case <-tick.C:
			if failed == nil {
				check(bw.Flush())
			}
			reportDrops()
		}
	}
}

// close flushes and closes the output; a nil output does nothing.
func (o *incidentOutput) close() {
	if o == nil {
		return
	}
	o.once.Do(func() {
		close(o.ch)
		<-o.done
	})
}

// Package daemon assembles what `procwatch agent` runs: the store, the
// rules and their watcher, the sensor (or a replayed capture), the
// pipeline, the socket server, the metrics server, the NDJSON output and
// the fleet link. It is the one place that knows how these parts fit
// together; cli/agent.go only parses flags and calls Run.
//
// Every long-running part is one goroutine of an errgroup: when one of
// them stops, for whatever reason, the others are stopped too, and Run
// returns the first failure, named after the part that failed.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/metrics"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/safepath"
	"github.com/procwatch/procwatch/store"
)

// Config is what the agent's flags decided. The caller validates flags
// (usage errors are its business); Run reports what fails at run time.
type Config struct {
	Logger *slog.Logger
	Stdout io.Writer // where Output "-" writes

	Pipeline PipelineConfig

	Socket               string          // the API socket's path
	Access               protocol.Access // who may use the socket
	MaxConnections       int             // non-root connections at once
	MaxConnectionsPerUID int             // of them from one uid
	IdleTimeout          time.Duration

	// MetricsAddr serves Prometheus metrics when not empty; the caller has
	// checked it with metrics.ListenAddr.
	MetricsAddr        string
	MetricsAllowRemote bool

	// Output also writes every incident as NDJSON: "-" for Stdout, else a
	// file (appended, mode 0600). Empty means none.
	Output string

	// StoreRetentionCount and StoreRetentionAge write Pipeline.Store's
	// retention into the database, so that later runs keep it.
	StoreRetentionCount, StoreRetentionAge bool

	// Fleet links the agent to the fleet; nil means a host on its own.
	Fleet Fleet
}

// Fleet is the agent's side of the fleet (built by cli/fleet.go from the
// --nats flags), seen as the daemon needs it.
type Fleet interface {
	// Chain returns put extended with the fleet's queue.
	Chain(put func(rules.Incident)) func(rules.Incident)
	// Start connects and starts publishing and serving control for local.
	Start(ctx context.Context, local *pipeline.Local) error
	// Serve wraps local so that changes made through the socket reach the fleet.
	Serve(local *pipeline.Local) api.Service
	// Close stops publishing; it may be called twice.
	Close()
}

// MemoryLimit is the agent's soft memory limit (the Go runtime's
// GOMEMLIMIT) unless the environment sets one: the collector works harder
// as the heap nears it, which keeps the daemon's footprint small under a
// burst of connections or requests (see "Memory" in the README).
const MemoryLimit = 96 << 20

// Run builds the daemon and runs it until ctx ends or one of its parts
// fails, then stops every part and flushes the database.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(MemoryLimit))
	}
	if cfg.Fleet != nil {
		defer cfg.Fleet.Close()
	}
	if path := cfg.Pipeline.RulesPath; path != "" {
		// The rules decide what is detected: a file someone else can
		// rewrite would let them switch detection off.
		if err := safepath.CheckFile(path); err != nil {
			return fmt.Errorf("--rules: %w", err)
		}
	}
	ln, err := protocol.Listen(cfg.Socket, cfg.Access)
	if err != nil {
		return err
	}
	defer ln.Close()
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = metrics.Listen(cfg.MetricsAddr, cfg.MetricsAllowRemote); err != nil {
			return fmt.Errorf("%w; choose another --metrics-addr", err)
		}
		defer metricsLn.Close()
	}
	out, err := openOutput(cfg.Output, cfg.Stdout, log)
	if err != nil {
		return err
	}
	defer out.close()
	p, mx, err := openObserved(ctx, cfg, metricsLn != nil, out.put)
	if err != nil {
		return err
	}
	runErr := serve(ctx, cfg, p, ln, metricsLn, mx)
	out.close()
	if cfg.Fleet != nil {
		cfg.Fleet.Close()
	}
	if err := p.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		log.Error("agent stopped", "err", runErr)
		return runErr
	}
	log.Info("agent stopped; database flushed")
	return nil
}

// openObserved opens the pipeline with the metrics (when wanted) watching
// it and the output and fleet told of every incident, stores the
// retention asked for and starts the fleet link.
func openObserved(ctx context.Context, cfg Config, withMetrics bool, put func(rules.Incident)) (*Pipeline, *metrics.Metrics, error) {
	var (
		p  *Pipeline
		mx *metrics.Metrics
	)
	pc := cfg.Pipeline
	pc.Logger = cfg.Logger
	pc.WithSensor = true
	pc.OnIncident = put
	if cfg.Fleet != nil {
		pc.OnIncident = cfg.Fleet.Chain(put)
	}
	if withMetrics {
		var err error
		// Scrapes start only once p is set: serve starts the server.
		mx, err = metrics.New(metrics.Sources{
			Status: func() (api.Status, error) { return p.Local.Snapshot() },
			Store:  func() store.Stats { return p.Store.Stats() },
			Logger: cfg.Logger,
		})
		if err != nil {
			return nil, nil, err
		}
		pc.Observer = mx
	}
	p, err := OpenPipeline(pc)
	if err != nil {
		return nil, nil, err
	}
	if err := storeRetention(cfg, p.Store); err != nil {
		p.Close()
		return nil, nil, err
	}
	if cfg.Fleet != nil {
		if err := cfg.Fleet.Start(ctx, p.Local); err != nil {
			p.Close()
			return nil, nil, err
		}
	}
	return p, mx, nil
}

// serve runs the pipeline, the socket server and the metrics server, one
// errgroup goroutine each. Any of them returning stops the others.
func serve(ctx context.Context, cfg Config, p *Pipeline, ln, metricsLn net.Listener, mx *metrics.Metrics) error {
	log := cfg.Logger
	log.Info("agent started", "socket", cfg.Socket, "db", p.Store.Path(), "rules", cfg.Pipeline.RulesLabel, "sensor", p.SensorMode())
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g, ctx := errgroup.WithContext(ctx)
	part := func(name string, run func(context.Context) error) {
		g.Go(func() error {
			defer stop()
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	part("pipeline", p.Local.Run)
	var svc api.Service = p.Local
	if cfg.Fleet != nil {
		svc = cfg.Fleet.Serve(p.Local)
	}
	srv := &protocol.Server{Service: svc, Logger: log, Access: cfg.Access, MaxConnections: cfg.MaxConnections,
		MaxConnectionsPerUID: cfg.MaxConnectionsPerUID, IdleTimeout: cfg.IdleTimeout}
	part("socket server", func(ctx context.Context) error { return srv.ServeListener(ctx, ln) })
	if mx != nil {
		log.Info("metrics served", "url", "http://"+metricsLn.Addr().String()+"/metrics")
		part("metrics server", func(ctx context.Context) error { return mx.Serve(ctx, metricsLn) })
	}
	return g.Wait()
}

// storeRetention writes the retention asked for into the database.
func storeRetention(cfg Config, st *store.Store) error {
	o := cfg.Pipeline.Store
	if cfg.StoreRetentionCount {
		if err := st.SetRetentionCount(o.RetentionCount); err != nil {
			return err
		}
	}
	if cfg.StoreRetentionAge {
		if err := st.SetRetentionAge(o.RetentionAge); err != nil {
			return err
		}
	}
	return nil
}

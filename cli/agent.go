package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/daemon"
	"github.com/procwatch/procwatch/metrics"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/store"
)

type agentFlags struct {
	output        string
	cpuProfile    string
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
	cmd.Flags().IntVar(&f.maxConns, "max-connections", protocol.DefaultMaxConnections, "serve at most this many socket connections of non-root callers at once; more are told the agent is busy")
	cmd.Flags().IntVar(&f.maxConnsUID, "max-connections-per-uid", protocol.DefaultMaxConnectionsPerUID, "at most this many of them from one uid (root is never limited)")
	cmd.Flags().DurationVar(&f.idleTimeout, "idle-timeout", protocol.DefaultIdleTimeout, "close a socket connection that sends nothing and has nothing running for this long")
	cmd.Flags().IntVar(&f.ringMiB, "ring-buffer-mib", sensor.DefaultRingBufferBytes>>20, "BPF ring buffer size in MiB (a power of two)")
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics; a bare :PORT means 127.0.0.1:PORT (default off)")
	cmd.Flags().BoolVar(&f.metricsRemote, "metrics-allow-remote", false, "let --metrics-addr name a host that is not loopback, such as 0.0.0.0")
	cmd.Flags().StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run to FILE (mode 0600), for go tool pprof")
	f.fleet.register(cmd)
	cmd.Flags().IntVar(&f.retCount, "retention-count", 0, "keep at most N incidents, evicting masked, acknowledged, then the lowest severities first; 0 or less keeps all (stored; default 1000000)")
	cmd.Flags().Var(&f.retAge, "retention-age", "delete incidents older than DURATION (30d, 720h); 0 or less keeps them forever (stored; default 30d)")
	return cmd
}

// runAgent checks the flags, then hands the daemon's assembly to the
// daemon package.
func runAgent(ctx context.Context, opts *Options, f agentFlags, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	access := protocol.NoGroups
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
	stopProfile, err := startCPUProfile("--cpuprofile", f.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	fl, err := f.fleet.open(opts, log)
	if err != nil {
		return err
	}
	cfg := daemon.Config{
		Logger:               log,
		Stdout:               stdout,
		Pipeline:             pipelineConfig(opts, log, f.storeOptions(log), f.ringMiB<<20, true),
		Socket:               socketPath(opts),
		Access:               access,
		MaxConnections:       f.maxConns,
		MaxConnectionsPerUID: f.maxConnsUID,
		IdleTimeout:          f.idleTimeout,
		MetricsAddr:          f.metricsAddr,
		MetricsAllowRemote:   f.metricsRemote,
		Output:               f.output,
		StoreRetentionCount:  f.setRetCount,
		StoreRetentionAge:    f.setRetAge,
	}
	if fl != nil {
		cfg.Fleet = fleetLink{fl}
	}
	return daemon.Run(ctx, cfg)
}

// fleetLink shows the agent's fleet side (fleet.go) to the daemon.
type fleetLink struct{ fa *fleetAgent }

func (l fleetLink) Chain(put func(rules.Incident)) func(rules.Incident) { return l.fa.chain(put) }
func (l fleetLink) Start(ctx context.Context, local *pipeline.Local) error {
	return l.fa.start(ctx, local)
}
func (l fleetLink) Serve(local *pipeline.Local) api.Service { return l.fa.serve(local) }
func (l fleetLink) Close()                                  { l.fa.close() }

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

package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/fleet"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/rules"
)

// natsFlags are the connection flags every fleet command takes.
type natsFlags struct {
	urls, creds, ca, cert, key string
}

func (f *natsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.urls, "nats", "", "NATS server URL(s), comma-separated: work on the fleet (docs/fleet.md)")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials file (user JWT and seed)")
	fs.StringVar(&f.ca, "nats-ca", "", "CA certificate that signed the NATS servers' certificates")
	fs.StringVar(&f.cert, "nats-cert", "", "client certificate for NATS mutual TLS (with --nats-key)")
	fs.StringVar(&f.key, "nats-key", "", "key of --nats-cert")
}

// check refuses --nats-* without --nats.
func (f *natsFlags) check() error {
	if f.urls == "" && (f.creds != "" || f.ca != "" || f.cert != "" || f.key != "") {
		return usageError("--nats-creds, --nats-ca, --nats-cert and --nats-key need --nats URL")
	}
	return nil
}

func (f *natsFlags) conn(name string, log *slog.Logger) fleet.ConnOptions {
	return fleet.ConnOptions{URLs: f.urls, Creds: f.creds, CA: f.ca, Cert: f.cert, Key: f.key, Name: name, Logger: log}
}

// connect dials NATS for a front end: it must be reachable now.
func (f *natsFlags) connect(name string) (*nats.Conn, error) {
	o := f.conn(name, slog.New(slog.DiscardHandler))
	o.FailFast = true
	o.InboxPrefix = fleet.InboxFor(fleet.Identity(o))
	return fleet.Connect(o)
}

// fleetFlags are the agent's --nats, --replay, --rate and --host-name.
type fleetFlags struct {
	natsFlags
	replay   string
	rate     float64
	hostName string
}

func (f *fleetFlags) register(cmd *cobra.Command) {
	f.natsFlags.register(cmd.Flags())
	cmd.Flags().StringVar(&f.replay, "replay", "", "run the pipeline on a recorded `CAPTURE` file (NDJSON from procwatch events --json) instead of the sensor; needs no root")
	cmd.Flags().Float64Var(&f.rate, "rate", 0, "with --replay: events per second (default: as fast as the pipeline takes them)")
	cmd.Flags().StringVar(&f.hostName, "host-name", "", "the host name incidents and the fleet carry (default: the hostname up to its first dot)")
}

// fleetAgent is the agent's fleet side; a nil one does nothing.
type fleetAgent struct {
	f     *fleetFlags
	agent *fleet.Agent
	nc    *nats.Conn
	log   *slog.Logger
}

// open checks the flags, loads a replay and opens the fleet outbox. It
// returns nil when the agent neither publishes nor replays.
func (f *fleetFlags) open(opts *Options, log *slog.Logger) (*fleetAgent, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if f.rate < 0 {
		return nil, usageError("--rate %g: want 0 or more events per second", f.rate)
	}
	if f.rate > 0 && f.replay == "" {
		return nil, usageError("--rate needs --replay CAPTURE")
	}
	host := f.hostName
	if host == "" && f.urls != "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("host name: %w; give --host-name", err)
		}
		host = fleet.DefaultHost(h)
	}
	if f.urls != "" || f.hostName != "" {
		if err := fleet.CheckHost(host); err != nil {
			return nil, usageError("%v", err)
		}
	}
	opts.agentHost = host
	if f.replay != "" {
		r, err := fleet.LoadReplay(f.replay, f.rate)
		if err != nil {
			return nil, err
		}
		opts.agentSource = r
		log.Info("replaying a capture instead of the sensor", "file", f.replay, "events", r.Len(), "rate", f.rate)
	}
	if f.urls == "" {
		return nil, nil
	}
	a, err := fleet.NewAgent(fleet.AgentConfig{Host: host, OutboxPath: dbPath(opts) + ".fleet-outbox",
		NoSync: f.replay != "", Version: Version, Logger: log})
	if err != nil {
		return nil, err
	}
	return &fleetAgent{f: f, agent: a, log: log}, nil
}

// chain returns put extended with the fleet's queue.
func (fa *fleetAgent) chain(put func(rules.Incident)) func(rules.Incident) {
	if fa == nil {
		return put
	}
	return func(inc rules.Incident) {
		put(inc)
		fa.agent.Put(inc)
	}
}

// start connects (retrying in the background if NATS is down) and starts
// publishing and serving control for local.
func (fa *fleetAgent) start(ctx context.Context, local *pipeline.Local) error {
	if fa == nil {
		return nil
	}
	o := fa.f.conn("procwatch agent "+fa.agent.Host(), fa.log)
	o.InboxPrefix = fleet.InboxFor(fa.agent.Host())
	nc, err := fleet.Connect(o)
	if err != nil {
		return err
	}
	fa.nc = nc
	fa.agent.SetService(local)
	if err := fa.agent.Start(ctx, nc); err != nil {
		nc.Close()
		return err
	}
	fa.log.Info("publishing to the fleet", "nats", fleetURLs(fa.f.urls), "host", fa.agent.Host(), "connected", nc.IsConnected())
	return nil
}

// serve returns the service the socket server should use: with a fleet,
// local wrapped so that changes made through the socket reach the fleet.
func (fa *fleetAgent) serve(local *pipeline.Local) api.Service {
	if fa == nil || fa.agent == nil {
		return local
	}
	return fa.agent.Service()
}

// close stops publishing (what is not acknowledged stays in the outbox)
// and closes the connection. It may be called twice.
func (fa *fleetAgent) close() {
	if fa == nil || fa.agent == nil {
		return
	}
	if err := fa.agent.Close(); err != nil {
		fa.log.Warn("fleet agent close", "err", err)
	}
	if fa.nc != nil {
		fa.nc.Drain()
	}
	fa.agent = nil
}

func fleetURLs(u string) string { return fleet.RedactURLs(u) }

var errNoFleetHosts = errors.New("no procwatch host on NATS: none sent a status and none has incidents in the stream")

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/queue"
	"github.com/procwatch/procwatch/rules"
)

// AgentConfig assembles an Agent.
type AgentConfig struct {
	Host    string      // the fleet host name: one subject token (CheckHost)
	Service api.Service // the local pipeline, which stays the host's source of truth
	// OutboxPath is the bbolt file queuing incidents until JetStream
	// acknowledges them.
	OutboxPath string
	// NoSync skips fsync on the outbox (replayed load tests); the local
	// database still holds every incident.
	NoSync  bool
	Version string // reported in status and by the micro service
	// StatusEvery is how often the status goes out; default 1s.
	StatusEvery time.Duration
	Logger      *slog.Logger
}

// Agent publishes one host to the fleet and serves its control service.
type Agent struct {
	cfg AgentConfig
	log *slog.Logger
	nc  *nats.Conn
	pub *publisher

	svc    micro.Service
	lease  *lease
	skips  *skipWatcher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewAgent opens the outbox. Put may be called from then on; nothing is
// sent before Start.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if err := CheckHost(cfg.Host); err != nil {
		return nil, err
	}
	if cfg.StatusEvery <= 0 {
		cfg.StatusEvery = time.Second
	}
	if cfg.Version == "" {
		cfg.Version = "0.0.0"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	box, err := openOutbox(cfg.OutboxPath, cfg.NoSync)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log}
	if cfg.Service != nil {
		a.cfg.Service = a.Publishing(cfg.Service)
	}
	a.pub = &publisher{host: cfg.Host, box: box, log: log,
		queue: queue.New[rules.Incident](queueLen), kick: make(chan struct{}, 1)}
	return a, nil
}

// SetService names the local pipeline when it is built after the agent
// (its incidents are queued from the start). Call it before Start.
func (a *Agent) SetService(s api.Service) { a.cfg.Service = a.Publishing(s) }

// Service is the pipeline the agent works on, wrapped so that status
// changes are published (see Publishing).
func (a *Agent) Service() api.Service { return a.cfg.Service }

// Host is the agent's fleet host name.
func (a *Agent) Host() string { return a.cfg.Host }

// Put queues an incident (new or updated) for the fleet. It never blocks:
// it is called on the sensor's goroutine.
func (a *Agent) Put(inc rules.Incident) { a.pub.put(inc) }

// Start publishes over nc until Close: the outbox, the status every
// second, the control service, live events under lease and the fleet's
// skips. The stream and the bucket need not exist yet (the outbox waits
// and the watcher retries).
func (a *Agent) Start(ctx context.Context, nc *nats.Conn) error {
	if a.cfg.Service == nil {
		return errors.New("fleet agent: no service")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	a.nc, a.pub.nc, a.pub.js = nc, nc, js
	ctx, a.cancel = context.WithCancel(ctx)
	a.lease = &lease{a: a}
	if err := a.startControl(); err != nil {
		a.cancel()
		return err
	}
	a.skips = &skipWatcher{host: a.cfg.Host, svc: a.cfg.Service, js: js, log: a.log}
	for _, run := range []func(context.Context){a.pub.fill, a.pub.send, a.statusLoop, a.lease.run, a.skips.run} {
		a.wg.Go(func() { run(ctx) })
	}
	return nil
}

// Close stops the loops and the control service and closes the outbox;
// what was not acknowledged stays queued for the next start.
func (a *Agent) Close() error {
	if a.cancel != nil {
		a.cancel()
	}
	var errs []error
	if a.svc != nil {
		errs = append(errs, a.svc.Stop())
	}
	a.wg.Wait()
	// What the sensor handed over but the writer had not stored yet goes
	// to the outbox now, so the next start publishes it.
	rest, _ := a.pub.queue.Take(nil)
	if len(rest) > 0 {
		if err := a.pub.box.add(rest); err != nil {
			errs = append(errs, fmt.Errorf("fleet outbox: %d incidents not queued: %w", len(rest), err))
		}
	}
	errs = append(errs, a.pub.box.close())
	return errors.Join(errs...)
}

// Stats reports the publisher's progress.
func (a *Agent) Stats() PublishStats { return a.pub.stats() }

// StatusMsg is what an agent publishes once a second on
// procwatch.v1.<host>.status.
type StatusMsg struct {
	api.Status
	FleetHost string       `json:"fleet_host"`
	Version   string       `json:"version"`
	Publish   PublishStats `json:"publish"`
	// Skips counts the fleet skips applied here, and says why one could not be.
	Skips SkipsState `json:"skips"`
	// Rates are events per second since the previous status.
	Rates Rates `json:"rates"`
}

// Rates are the sensor's events per second, by kind, and drops per second.
type Rates struct {
	Exec       float64 `json:"exec"`
	Escalation float64 `json:"escalation"`
	Exit       float64 `json:"exit"`
	Drops      float64 `json:"drops"`
}

func (a *Agent) statusLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.StatusEvery)
	defer t.Stop()
	var prev *api.Status
	for {
		prev = a.publishStatus(ctx, prev)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// publishStatus sends the status and returns it, for the next rates.
func (a *Agent) publishStatus(ctx context.Context, prev *api.Status) *api.Status {
	st, err := a.cfg.Service.Status(ctx)
	if err != nil {
		a.log.Warn("fleet status: read local status", "err", err)
		return prev
	}
	msg := StatusMsg{Status: st, FleetHost: a.cfg.Host, Version: a.cfg.Version, Publish: a.pub.stats(), Skips: a.skips.state()}
	if prev != nil {
		if d := st.Time.Sub(prev.Time).Seconds(); d > 0 {
			rate := func(now, was uint64) float64 {
				if now < was {
					return 0 // the sensor restarted its counters
				}
				return float64(now-was) / d
			}
			msg.Rates = Rates{Exec: rate(st.Sensor.Exec, prev.Sensor.Exec), Escalation: rate(st.Sensor.Escalation, prev.Sensor.Escalation),
				Exit: rate(st.Sensor.Exit, prev.Sensor.Exit), Drops: rate(st.Sensor.Drops, prev.Sensor.Drops)}
		}
	}
	b, err := json.Marshal(&msg)
	if err != nil {
		a.log.Warn("fleet status: encode", "err", err)
		return &st
	}
	if err := a.nc.Publish(StatusSubject(a.cfg.Host), b); err != nil && !errors.Is(err, nats.ErrConnectionReconnecting) {
		a.log.Debug("fleet status not sent", "err", err)
	}
	return &st
}

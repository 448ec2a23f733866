package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/procwatch/procwatch/containers"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/store"
)

// SourceLoader loads the event source; attached runs each time its
// programs are attached. It returns the source and what closes it.
type SourceLoader func(ringBytes int, attached func()) (pipeline.EventSource, func() error, error)

// LoadSensor is the SourceLoader of the eBPF sensor.
func LoadSensor(ringBytes int, attached func()) (pipeline.EventSource, func() error, error) {
	s, err := sensor.New(sensor.Config{RingBufferBytes: ringBytes, Attached: attached})
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// PipelineConfig says how to open a pipeline: the agent, the TUI without an
// agent and `procwatch serve` all open theirs through OpenPipeline.
type PipelineConfig struct {
	Logger     *slog.Logger
	RulesPath  string // rules file, watched for changes; empty means the built-in rules
	RulesLabel string // how Status and messages name the rules
	DBPath     string
	Store      store.Options
	Host       string // host name incidents carry; empty means os.Hostname

	// WithSensor feeds the pipeline events: from Source when set (a
	// replayed capture), else from NewSource (LoadSensor when nil). A
	// source that does not load is an error.
	WithSensor bool
	Source     pipeline.EventSource
	NewSource  SourceLoader
	RingBytes  int

	// ContainerSockets are the --container-socket flags (see OpenContainers).
	ContainerSockets []string

	OnIncident func(rules.Incident) // may be nil
	Observer   pipeline.Observer    // may be nil
}

// Pipeline is a pipeline.Local with what it owns.
type Pipeline struct {
	Local   *pipeline.Local
	Store   *store.Store
	Source  pipeline.EventSource // nil without a sensor
	closers []func() error
}

// OpenPipeline opens the store, the rules (watched for changes when they
// come from a file), the event source and the container names, and builds
// the pipeline on them. Close releases them all.
func OpenPipeline(c PipelineConfig) (*Pipeline, error) {
	log := c.Logger
	set, err := rules.Load(c.RulesPath)
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", c.RulesLabel, err)
	}
	st, err := store.Open(c.DBPath, c.Store)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Store: st}
	if err := p.openSource(c); err != nil {
		st.Close()
		return nil, err
	}
	host := c.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	var namer pipeline.ContainerNamer
	if c.WithSensor {
		if cache := OpenContainers(c.ContainerSockets, log); cache != nil {
			namer = cache
			p.closers = append(p.closers, func() error { cache.Close(); return nil })
		}
	}
	p.Local, err = pipeline.New(pipeline.Config{
		Host:       host,
		Store:      st,
		Source:     p.Source,
		Rules:      rules.NewEngine(set, rules.EngineOptions{Host: host}),
		RulesPath:  c.RulesLabel,
		OnIncident: c.OnIncident,
		Observer:   c.Observer,
		Logger:     log,
		Containers: namer,
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	if err := p.watchRules(c.RulesPath, log); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// openSource sets p.Source as c asks.
func (p *Pipeline) openSource(c PipelineConfig) error {
	switch {
	case !c.WithSensor:
		return nil
	case c.Source != nil:
		p.Source = c.Source
		return nil
	}
	load := c.NewSource
	if load == nil {
		load = LoadSensor
	}
	src, closeSrc, err := load(c.RingBytes, func() { c.Logger.Info("sensor attached: watching") })
	if err != nil {
		return fmt.Errorf("start sensor: %w", err)
	}
	p.Source = src
	p.closers = append(p.closers, closeSrc)
	return nil
}

// watchRules reloads the rules file when it changes or on SIGHUP. With the
// built-in rules, SIGHUP (which would end the process by default) is
// answered with a log line saying there is nothing to reload.
func (p *Pipeline) watchRules(path string, log *slog.Logger) error {
	if path != "" {
		w, err := rules.NewWatcher(path, p.Local.ApplyRules)
		if err != nil {
			return err
		}
		p.closers = append(p.closers, w.Close)
		return nil
	}
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
	return nil
}

// SensorMode names the event source for logs: none, loaded, or the
// sensor's own mode.
func (p *Pipeline) SensorMode() string {
	if p.Source == nil {
		return "none"
	}
	if m := p.Source.Stats().Mode; m != "" {
		return m
	}
	return "loaded"
}

// Close releases the watcher, container lookups and sensor, then flushes
// and closes the store.
func (p *Pipeline) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	if err := p.Store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database %s: %w", p.Store.Path(), err))
	}
	return errors.Join(errs...)
}

// OpenContainers builds the container-name cache the pipeline asks before
// the rules, or returns nil when lookups are off. Sockets named on the
// command line are trusted whoever owns them; the default ones only when
// owned by root (see docs/containers.md).
func OpenContainers(paths []string, log *slog.Logger) *containers.Cache {
	requireRoot := false
	for _, p := range paths {
		if p == "none" {
			log.Info("container lookups off (--container-socket none): events in containers carry their id only")
			return nil
		}
	}
	if len(paths) == 0 {
		paths, requireRoot = containers.DefaultSockets, true
	}
	c, err := containers.New(containers.Config{Sources: containers.Sources(paths, requireRoot), Logger: log})
	if err != nil {
		log.Warn("container lookups off", "err", err)
		return nil
	}
	log.Info("naming containers through their runtime's API", "sockets", c.Stats().Sources)
	return c
}

var _ pipeline.ContainerNamer = (*containers.Cache)(nil)

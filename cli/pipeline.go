package cli

import (
	"log/slog"

	"github.com/procwatch/procwatch/daemon"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// This file opens the pipeline the global flags describe, for the agent,
// the TUI without an agent and `procwatch serve`; package daemon does the
// assembly.

// newEventSource loads the sensor. Tests replace it with a fake source so
// the agent can run end to end without BPF.
var newEventSource daemon.SourceLoader = daemon.LoadSensor

// pipelineConfig is the pipeline the global flags describe; withSensor
// feeds it from the sensor, or from the capture --replay names.
func pipelineConfig(opts *Options, log *slog.Logger, storeOpts store.Options, ringBytes int, withSensor bool) daemon.PipelineConfig {
	return daemon.PipelineConfig{
		Logger:           log,
		RulesPath:        opts.RulesPath,
		RulesLabel:       rulesLabel(opts),
		DBPath:           dbPath(opts),
		Store:            storeOpts,
		Host:             opts.agentHost,
		WithSensor:       withSensor,
		Source:           opts.agentSource,
		NewSource:        newEventSource,
		RingBytes:        ringBytes,
		ContainerSockets: opts.ContainerSockets,
	}
}

// openPipeline opens the store, the rules (watched for changes when they
// come from a file) and, with withSensor, the sensor; a sensor that does
// not load is an error. onIncident may be nil.
func openPipeline(opts *Options, log *slog.Logger, ringBytes int, withSensor bool, onIncident func(rules.Incident)) (*daemon.Pipeline, error) {
	c := pipelineConfig(opts, log, store.Options{Logger: log}, ringBytes, withSensor)
	c.OnIncident = onIncident
	return daemon.OpenPipeline(c)
}

//go:build !linux

package sensor

import (
	"context"
	"errors"

	"github.com/procwatch/procwatch/event"
)

// errNotLinux is what every sensor entry point says off Linux: the sensor
// is eBPF, a Linux kernel feature. The rest of procwatch (the multi-host
// UI, the CLI talking to remote agents) builds and runs anywhere.
var errNotLinux = errors.New("the sensor needs Linux: run procwatch agent on a Linux host and connect to it with --host")

// Sensor is the Linux sensor's stand-in on other systems; New never
// returns one.
type Sensor struct{}

// New reports that the sensor needs Linux.
func New(cfg Config) (*Sensor, error) { return nil, errNotLinux }

// Close does nothing: no sensor was loaded.
func (s *Sensor) Close() error { return nil }

// Mode is empty: no hook set is loaded.
func (s *Sensor) Mode() string { return "" }

// Run reports that the sensor needs Linux.
func (s *Sensor) Run(ctx context.Context, handle func(*event.Event)) error { return errNotLinux }

// Running is always false off Linux.
func (s *Sensor) Running() bool { return false }

// Stats is empty off Linux.
func (s *Sensor) Stats() event.Stats { return event.Stats{} }

package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/procwatch/procwatch/event"
)

// TestSensorStateWithoutSource: a pipeline without a sensor says so, and
// says "failed" with the reason when a sensor was wanted but did not start.
func TestSensorStateWithoutSource(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Source = nil })
	st, err := h.local.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Sensor.State != event.SensorOff || st.Sensor.Error != "" {
		t.Errorf("no sensor wanted: state %q error %q, want off", st.Sensor.State, st.Sensor.Error)
	}
	h.local.SetSourceError(errors.New("load BPF programs: permission denied: run procwatch as root"))
	st, err = h.local.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Sensor.State != event.SensorFailed || st.Sensor.Error != "load BPF programs: permission denied: run procwatch as root" {
		t.Errorf("sensor failed: state %q error %q", st.Sensor.State, st.Sensor.Error)
	}
}

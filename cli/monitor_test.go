package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/event"
)

// TestMonitorStatusSensorState checks that `monitor status` reports what
// the sensor really does, as text and as the JSON sensor object, and exits
// 1 when monitoring is wanted but nothing monitors.
func TestMonitorStatusSensorState(t *testing.T) {
	const reason = "load BPF programs: permission denied: run procwatch as root"
	for _, tc := range []struct {
		name       string
		failed     string
		monitoring bool
		offline    bool
		state      string
		text       string
		exit1      bool
	}{
		{"attached", "", true, false, event.SensorAttached, "sensor:      attached (tp_btf+tracepoint)", false},
		{"failed", reason, true, false, event.SensorFailed, "sensor:      FAILED: " + reason, true},
		{"off by choice", "", false, false, event.SensorOff, "sensor:      off", false},
		{"no agent", "", true, true, event.SensorOff, "sensor:      off: no agent is running (nothing answers on /run/x.sock)", true},
		{"no agent, monitoring off", "", false, true, event.SensorOff, "sensor:      off: no agent is running", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := servicetest.New("web-01", func() time.Time { return time.Unix(0, 0) })
			f.SetSensorFailed(tc.failed)
			f.SetMonitoring(context.Background(), tc.monitoring)
			var text, js bytes.Buffer
			errText := runMonitorStatus(t.Context(), f, &text, false, tc.offline, "/run/x.sock")
			errJSON := runMonitorStatus(t.Context(), f, &js, true, tc.offline, "/run/x.sock")
			if !strings.Contains(text.String(), tc.text) {
				t.Errorf("text:\n%s\nwant %q", text.String(), tc.text)
			}
			var st struct {
				Sensor struct {
					State string `json:"state"`
					Error string `json:"error"`
				} `json:"sensor"`
			}
			if err := json.Unmarshal(js.Bytes(), &st); err != nil {
				t.Fatalf("json: %v\n%s", err, js.String())
			}
			if st.Sensor.State != tc.state {
				t.Errorf("sensor.state = %q, want %q", st.Sensor.State, tc.state)
			}
			if tc.failed != "" && st.Sensor.Error != tc.failed {
				t.Errorf("sensor.error = %q", st.Sensor.Error)
			}
			for _, err := range []error{errText, errJSON} {
				var ee *ExitError
				switch {
				case tc.exit1 && (!errors.As(err, &ee) || ee.Code != 1):
					t.Errorf("want exit 1, got %v", err)
				case !tc.exit1 && err != nil:
					t.Errorf("want success, got %v", err)
				}
			}
		})
	}
}

// TestMonitorStatusNoAgentExits1 runs the command with no agent on the
// socket: nothing monitors although monitoring is on, so it exits 1 and
// says why.
func TestMonitorStatusNoAgentExits1(t *testing.T) {
	e := newTestEnv(t)
	out, errOut, code := runCLI(t, "", e.args("monitor", "status", "--json")...)
	if code != 1 || !strings.Contains(errOut, "monitoring is on but nothing monitors: no agent is running") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, `"state": "off"`) {
		t.Errorf("stdout:\n%s", out)
	}
}

// TestMonitorStatusShowsQueueDrops: drops of the agent's queues get their
// own line, absent while there are none.
func TestMonitorStatusShowsQueueDrops(t *testing.T) {
	for _, n := range []uint64{0, 12345} {
		var b bytes.Buffer
		writeStatusText(&b, api.Status{Host: "h", QueueDropped: n})
		want := "queues:      12,345 events and incidents dropped for front ends that read too slowly"
		if got := strings.Contains(b.String(), want); got != (n > 0) {
			t.Errorf("QueueDropped %d:\n%s\nwant the queues line: %v", n, b.String(), n > 0)
		}
	}
}

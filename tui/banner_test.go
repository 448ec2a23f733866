package tui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
)

// tracefsErr is the reason a sensor gives when tracefs is missing and it
// cannot mount it, as sensor.ensureTracefs words it.
const tracefsErr = "sensor: tracefs is not mounted and mounting it at /sys/kernel/tracing failed: operation not permitted; mount it with: mount -t tracefs tracefs /sys/kernel/tracing"

// TestNotMonitoringBanner checks that a sensor that failed is never shown
// as monitoring: the header says NOT MONITORING and the banner gives the
// whole reason, wrapped, at 80×24 and 160×48.
func TestNotMonitoringBanner(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			f.SetSensorFailed(tracefsErr)
			opts := testOptions()
			opts.OwnPipeline, opts.OwnSocket = true, "/run/procwatch/procwatch.sock"
			h := start(t, f, sz.w, sz.h, opts)
			s := h.waitFor("5 shown", "✖ NOT MONITORING", "✖ not monitoring: sensor: tracefs")
			if strings.Contains(s, "● monitoring") {
				t.Errorf("a failed sensor is shown as monitoring:\n%s", s)
			}
			// The whole reason is on screen, over as many lines as it takes.
			flat := strings.Join(strings.Fields(s), " ")
			if !strings.Contains(flat, strings.Join(strings.Fields(tracefsErr), " ")) {
				t.Errorf("banner does not hold the whole reason:\n%s", s)
			}
			for i, l := range strings.Split(s, "\n") {
				if w := ansi.StringWidth(l); w > sz.w {
					t.Errorf("line %d is %d wide: %q", i, w, l)
				}
			}
			if sz.w >= 140 && !strings.Contains(s, "own pipeline, serving /run/procwatch/procwatch.sock") {
				t.Errorf("header does not say the UI runs its own pipeline:\n%s", s)
			}
			h.golden(s)

			// The sensor comes back: the banner goes, the header says so.
			f.SetSensorFailed("")
			h.with(func(m *Model) { m.Update(m.loadStatus(0, false)()) })
			s = h.waitFor("● monitoring")
			if strings.Contains(s, "not monitoring") {
				t.Errorf("banner stayed after the sensor attached:\n%s", s)
			}
		})
	}
}

func TestHeaderSaysAgent(t *testing.T) {
	opts := testOptions()
	opts.Agent = "/run/procwatch/procwatch.sock"
	h := start(t, newFake(), 160, 48, opts)
	h.waitFor("agent /run/procwatch/procwatch.sock")
	// On 80 columns the socket gives way before the sensor state.
	h2 := start(t, newFake(), 80, 24, opts)
	s := h2.waitFor("● monitoring")
	if first := strings.Split(s, "\n")[0]; strings.Contains(first, "…") {
		t.Errorf("header line cut: %q", first)
	}
}

// TestSensorStates checks what line 1 says for every state a status can
// report, including an agent too old to report a state.
func TestSensorStates(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   api.Status
		want string
	}{
		{"attached", api.Status{Monitoring: true, Sensor: sensorStats("attached", "", "tp_btf+tracepoint")}, "● monitoring"},
		{"off", api.Status{Monitoring: false, Sensor: sensorStats("off", "", "")}, "○ monitoring OFF"},
		{"failed", api.Status{Monitoring: true, Sensor: sensorStats("failed", "load BPF programs: permission denied", "")}, "✖ NOT MONITORING"},
		{"on without a sensor", api.Status{Monitoring: true, Sensor: sensorStats("off", "", "")}, "✖ NOT MONITORING"},
		{"old agent", api.Status{Monitoring: true, Sensor: sensorStats("", "", "tracepoint")}, "● monitoring"},
		{"loaded, attaching", api.Status{Monitoring: true, Sensor: sensorStats("off", "", "tp_btf")}, "◌ attaching the sensor…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h header
			tc.st.Time = t0
			h.observe(tc.st)
			out := ansi.Strip(h.View(newTheme(true), 80, screenIncidents, 7, 4))
			if !strings.Contains(out, tc.want) {
				t.Errorf("header:\n%s\nwant %q", out, tc.want)
			}
		})
	}
}

func sensorStats(state, err, mode string) (s event.Stats) {
	s.State, s.Error, s.Mode = state, err, mode
	return s
}

// TestHostsBannerPerHost: with several hosts, each host whose sensor
// failed gets its own banner line naming it, with its reason.
func TestHostsBannerPerHost(t *testing.T) {
	fakes := threeHosts()
	fakes[0].SetSensorFailed("load BPF programs: the kernel's verifier refused them")
	h := startHosts(t, fakes, 80, 24, testOptions())
	s := h.waitFor("7 shown", "✖ web-01 not monitoring: load BPF programs: the kernel's verifier refused them", "✖ mon 0/3")
	h.typeKeys("8")
	s = h.waitFor("3 hosts ·")
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "[ ] web-01") && !strings.Contains(l, "FAIL") {
			t.Errorf("hosts row does not say the sensor failed: %q", l)
		}
	}
}

// TestRulesErrorShowsAtOnce: a rules file that fails to reload reaches
// the UI in the next update's status and shows at once, over an open
// detail pane too, in full.
func TestRulesErrorShowsAtOnce(t *testing.T) {
	f := newFake()
	h := start(t, f, 80, 24, testOptions())
	h.waitFor("5 shown")
	h.press(tea.KeyEnter)
	h.waitFor("Incident ")
	st, _ := f.Status(t.Context())
	st.RulesError = `/etc/procwatch/rules.yaml:12:3: unknown field "sevrity"`
	st.Time = st.Time.Add(time.Second)
	f.Publish(api.Update{Status: &st})
	s := h.waitFor(`✖ rules error: /etc/procwatch/rules.yaml:12:3: unknown field "sevrity" (the previous rules stay active)`, "Incident ")
	if strings.Contains(s, "rules ok") {
		t.Errorf("header still says rules ok:\n%s", s)
	}
}

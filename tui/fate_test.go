package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// The detail pane of an escalation says how its process ended (or that it
// has not been seen to end), and a flood incident lists its count, scope
// and sample, escaping the names a process chose.
func TestDetailShowsFateAndFlood(t *testing.T) {
	in := servicetest.HostileIncidents(hostileHost, t0)[0]
	in.Type, in.Rule = rules.TypeRootEscalation, "root-escalation"
	s := incidentDetail(&in, nil, newUserCache(nil), time.UTC)
	if !strings.Contains(s, "Ended       not yet seen") {
		t.Errorf("escalation without a fate:\n%s", s)
	}
	in.Fate = &event.Fate{Time: t0.Add(time.Second), ExitCode: event.Int(1), DurationNS: int64(1500 * time.Millisecond)}
	in.Process.Script = "/tmp/x\x1b[2J.sh"
	s = incidentDetail(&in, nil, newUserCache(nil), time.UTC)
	checkNoHazards(t, "detail", s)
	for _, want := range []string{"Ended       exit 1 at ", ", ran 1.5s", `Script      /tmp/x\x1b[2J.sh`} {
		if !strings.Contains(s, want) {
			t.Errorf("detail lacks %q:\n%s", want, s)
		}
	}

	fl := servicetest.HostileIncidents(hostileHost, t0)[0]
	fl.Distinct, fl.Scope, fl.Sample = 2984, "/tmp", []event.Text{"/tmp/a", "/tmp/\x1b[31mred"}
	s = incidentDetail(&fl, nil, newUserCache(nil), time.UTC)
	checkNoHazards(t, "detail", s)
	for _, want := range []string{"Flood       2,984 different binaries, scope /tmp", "[0] /tmp/a", `[1] /tmp/\x1b[31mred`} {
		if !strings.Contains(s, want) {
			t.Errorf("flood detail lacks %q:\n%s", want, s)
		}
	}
}

package tui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// TestTriageRoundTrip acknowledges an incident from its open detail pane,
// sees the pane and the list change at once with who did it, re-opens it,
// and masks it.
func TestTriageRoundTrip(t *testing.T) {
	f := newFake()
	h := start(t, f, 100, 40, testOptions())
	h.waitFor("5 shown")
	h.press(tea.KeyEnter) // the crash, newest
	h.waitFor("Incident ", "History     no triage yet")
	h.typeKeys("a")
	s := h.waitFor("Acknowledged 1 incident(s)", "ack")
	s = h.waitFor("open → ack by alice (uid 1000, pid 4242) via socket")
	if !strings.Contains(s, "HIGH") && !strings.Contains(s, "LOW  ack") {
		t.Errorf("detail header does not show the new status:\n%s", s)
	}
	h.typeKeys("R")
	h.waitFor("Re-opened 1 incident(s)", "ack → open by alice")
	h.typeKeys("R")
	h.waitFor("is already open")
	h.typeKeys("x")
	h.waitFor("Masked 1 incident(s)", "open → mask by alice")
	h.typeKeys("q") // closes the pane
	h.waitFor("mask  crash")
	got, _ := f.Incidents(t.Context(), api.Query{})
	for _, in := range got {
		if in.Rule == "crash" && (in.Status != rules.StatusMasked || len(in.History) != 3) {
			t.Errorf("stored crash incident: %s, history %+v", in.Status, in.History)
		}
	}
}

// TestAckAllShown acknowledges every incident the filter shows, after a
// confirmation that names the count, and leaves the others.
func TestAckAllShown(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("/became")
			h.press(tea.KeyEnter)
			h.waitFor("2 shown") // the two escalations (pkexec's and sudo's)
			h.typeKeys("x")      // mask one first: it must not be counted again
			h.waitFor("Masked 1 incident(s)")
			h.typeKeys("X")
			// "high 1": the status reloaded after the first mask came back
			// (it races the confirmation otherwise).
			s := h.waitFor(`Mask all 1 incident(s) shown by the filter "became"?`, "1 more shown are masked already and stay so.", "high 1 medium")
			h.golden(s)
			if n := countCalls(f, "SetStatus masked"); n != 1 {
				t.Fatalf("SetStatus before confirmation: %d calls", n)
			}
			h.typeKeys("y")
			h.waitFor("Masked 1 incident(s)")
			h.typeKeys("A")
			h.waitFor(`Acknowledge all 2 incident(s) shown by the filter "became"?`)
			h.typeKeys("n")
			h.waitFor("cancelled")
			got, _ := f.Incidents(t.Context(), api.Query{})
			for _, in := range got {
				want := rules.StatusOpen
				if in.Type == rules.TypeRootEscalation {
					want = rules.StatusMasked
				}
				if in.Status != want {
					t.Errorf("%s: %s, want %s", in.Rule, in.Status, want)
				}
			}
		})
	}
}

// TestRowsDifferingInArgs: two incidents that differ only in their
// arguments look different in the list even at 80 columns.
func TestRowsDifferingInArgs(t *testing.T) {
	f := servicetest.New(testHost, func() time.Time { return t0.Add(10 * time.Minute) })
	f.SetRules(servicetest.SampleRules())
	for i, arg := range []string{"systemctl restart nginx", "-i"} {
		at := t0.Add(time.Duration(i) * time.Second)
		ev := servicetest.EscalationEvent(at, uint32(100+i), 1000, "/usr/bin/sudo", strings.Fields(arg)...)
		f.Raise(servicetest.IncidentFor(rules.ID(at.UnixNano()), testHost, "root-escalation", rules.TypeRootEscalation, rules.SeverityHigh, ev,
			"uid 1000 ran set-uid /usr/bin/sudo, gaining euid 0 (the process's own choice of what to run follows)"))
	}
	h := start(t, f, 80, 24, testOptions())
	s := h.waitFor("2 shown")
	var rows []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "root-escala") {
			rows = append(rows, strings.TrimSpace(l[9:])) // without the time
		}
	}
	if len(rows) != 2 || rows[0] == rows[1] {
		t.Fatalf("rows look the same:\n%s", s)
	}
	if !strings.Contains(rows[0], "-i") || !strings.Contains(rows[1], "systemctl") {
		t.Errorf("arguments not shown:\n%s", strings.Join(rows, "\n"))
	}
}

// TestDetailShowsFateArgvCwdTTY: the detail pane of an escalation shows
// argv, cwd and tty, and its fate once the process ended, updated while the
// pane is open.
func TestDetailShowsFateArgvCwdTTY(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("jjj") // pkexec
			h.press(tea.KeyEnter)
			h.waitFor("Command     /usr/bin/pkexec /bin/sh", "Where       cwd /home/alice  tty pts/0", "Ended       not yet seen")
			// The process ends: the pipeline updates the incident.
			in := servicetest.SampleIncidents(testHost, t0)[1]
			in.Fate = &event.Fate{Time: t0.Add(100 * time.Second), ExitCode: event.Int(0), DurationNS: int64(30 * time.Second)}
			f.Publish(api.Update{Incidents: []rules.Incident{in}})
			s := h.waitFor("Ended       exit 0 at 2026-11-29 04:01:40.000 UTC, ran 30.0s")
			h.golden(s)
			var raw string
			h.with(func(m *Model) { raw = m.detail.raw })
			for _, want := range []string{"Args        [0] /usr/bin/pkexec", "            [1] /bin/sh", "Cwd         /home/alice", "TTY         pts/0"} {
				if !strings.Contains(raw, want) {
					t.Errorf("detail lacks %q", want)
				}
			}
		})
	}
}

// TestDetailWrapsAligned: a long value wraps by words, its continuation
// lines starting under the value, not under the label.
func TestDetailWrapsAligned(t *testing.T) {
	long := "Why         " + strings.Repeat("word ", 30)
	got := strings.Split(wrapDetail(long, 40), "\n")
	if len(got) < 4 {
		t.Fatalf("not wrapped: %q", got)
	}
	for i, l := range got {
		if len(l) > 40 {
			t.Errorf("line %d too wide: %q", i, l)
		}
		if i > 0 && !strings.HasPrefix(l, strings.Repeat(" ", 12)+"word") {
			t.Errorf("continuation %d not aligned: %q", i, l)
		}
	}
	tree := "      └─ /usr/lib/very/long/path/to/some/binary/that/does/not/fit (4242)"
	got = strings.Split(wrapDetail(tree, 40), "\n")
	for i, l := range got[1:] {
		if !strings.HasPrefix(l, strings.Repeat(" ", 9)) {
			t.Errorf("tree continuation %d not under the node: %q", i+1, l)
		}
	}
}

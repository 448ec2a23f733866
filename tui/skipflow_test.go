package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// TestSkipEscalationIsPathSkip: on a root-escalation incident, s and p
// both offer its exact binary for its rule, never a command name or a
// directory; S and P say why a skip for every rule would not silence it
// instead of offering one.
func TestSkipEscalationIsPathSkip(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("jjjj") // sudo
			h.typeKeys("s")
			s := h.waitFor(`Skip path "/usr/bin/sudo" for rule root-escalation? It masks 1 open incident(s)`,
				"Covers a root escalation is skipped by its binary, never by a command name: only /usr/bin/sudo, a system binary, for rule root-escalation.")
			h.golden(s)
			h.typeKeys("n")
			h.waitFor("cancelled")
			h.typeKeys("p")
			h.waitFor(`Skip path "/usr/bin/sudo" for rule root-escalation?`)
			h.typeKeys("q") // cancels, does not quit
			h.waitFor("cancelled")
			for _, k := range []string{"S", "P"} {
				h.typeKeys(k)
				h.waitFor("a skip for every rule does not silence root escalations: p skips this binary for rule root-escalation")
				h.with(func(m *Model) {
					if m.confirm != nil {
						t.Errorf("%s offered a skip for every rule on an escalation: %q", k, m.confirm.prompt)
					}
				})
			}
			h.typeKeys("s")
			h.waitFor("[y/n]")
			h.typeKeys("y")
			h.waitFor(`Skipped path "/usr/bin/sudo" for rule root-escalation: masked 1 incident(s)`)
			added := findAdded(mustSkips(t, f))
			if added == nil || added.Kind != rules.SkipPath || added.Value != "/usr/bin/sudo" || added.Rule != "root-escalation" || added.Pin != "" {
				t.Fatalf("stored skip = %+v", added)
			}
		})
	}
}

// TestSkipPinnedByDefault: p on a binary in a writable place offers the
// exact file pinned to its SHA-256; editing the path (widening) drops the
// pin and warns that a whole directory, then the whole rule, is covered.
func TestSkipPinnedByDefault(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("j") // tmp-exec, /tmp/build/run.sh
			h.typeKeys("p")
			pin := servicetest.SampleSHA256[:12]
			s := h.waitFor(`Skip path "/tmp/build/run.sh" pinned to SHA-256 `+pin+`… for rule tmp-exec? It masks 1 open incident(s)`,
				"Covers only this exact file (/tmp/build/run.sh, SHA-256 "+pin+"…), for rule tmp-exec.")
			if strings.Contains(s, "⚠") {
				t.Errorf("the narrowest skip carries a warning:\n%s", s)
			}
			h.golden(s)

			// Widen it: e opens the path, pre-filled with the exact file.
			h.typeKeys("e")
			h.waitFor("skip path > /tmp/build/run.sh")
			for range len("/run.sh") {
				h.press(tea.KeyBackspace)
			}
			h.press(tea.KeyEnter)
			s = h.waitFor(`Skip path "/tmp/build" for rule tmp-exec?`, "⚠ covers every binary under /tmp/build, not one file")
			if strings.Contains(s, "pinned") {
				t.Errorf("an edited path kept the pin:\n%s", s)
			}
			h.goldenAs("widened", s)
			// Wider still: all the rule watches.
			h.typeKeys("e")
			h.waitFor("skip path > /tmp/build")
			for range len("/build") {
				h.press(tea.KeyBackspace)
			}
			h.press(tea.KeyEnter)
			h.waitFor(`Skip path "/tmp" for rule tmp-exec?`, "⚠ covers every binary under /tmp, not one file")
			// Back to the exact file: the pin comes back.
			h.typeKeys("e")
			h.typeKeys("/build/run.sh")
			h.press(tea.KeyEnter)
			h.waitFor(`pinned to SHA-256 ` + pin)
			h.typeKeys("y")
			h.waitFor(`Skipped path "/tmp/build/run.sh" pinned to SHA-256 ` + pin)
			added := findAdded(mustSkips(t, f))
			if added == nil || added.Value != "/tmp/build/run.sh" || added.Pin != servicetest.SampleSHA256 || added.Rule != "tmp-exec" {
				t.Fatalf("stored skip = %+v", added)
			}
		})
	}
}

// TestSkipWarnsRuleScopeAndMany: a skip that covers all a rule watches,
// and one that masks more than 100 open incidents, say so in words.
func TestSkipWarnsRuleScopeAndMany(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			var many []rules.Incident
			for i := range 150 {
				at := t0.Add(time.Duration(300+i) * time.Second)
				ev := servicetest.ExecEvent(at, uint32(9000+i), 1000, fmt.Sprintf("/dev/shm/job%d", i))
				many = append(many, servicetest.IncidentFor(rules.ID(at.UnixNano()), testHost, "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium, ev, "job ran from /dev/shm"))
			}
			f.Raise(many...)
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("155 shown")
			h.typeKeys("/run.sh")
			h.waitFor("1 shown")
			h.press(tea.KeyEnter)
			h.typeKeys("p")
			h.waitFor("pinned to SHA-256")
			h.typeKeys("e")
			h.waitFor("skip path > /tmp/build/run.sh")
			for range len("/tmp/build/run.sh") {
				h.press(tea.KeyBackspace)
			}
			h.typeKeys("/")
			h.press(tea.KeyEnter)
			s := h.waitFor(`Skip path "/" for rule tmp-exec? It masks 151 open incident(s)`,
				"⚠ covers every binary under /, not one file",
				"⚠ covers all that rule tmp-exec watches: it will raise nothing",
				"⚠ masks 151 open incidents (more than 100)")
			h.golden(s)
		})
	}
}

// TestStreamSkipOffersExactBinary: p on a stream row that raised an
// incident offers that binary for that rule, like on the incident.
func TestStreamSkipOffersExactBinary(t *testing.T) {
	f := newFake()
	h := start(t, f, 120, 30, testOptions())
	h.waitFor("5 shown")
	publishExec(f, t0.Add(time.Hour), 100, 1, "/opt/tool/bin/run")
	h.typeKeys("2")
	h.waitFor("/opt/tool/bin/run")
	h.typeKeys("p")
	h.waitFor("this event raised no incident, so it has no rule: S or P skip it for every rule")
	h.typeKeys("P")
	h.waitFor(`Skip path "/opt/tool/bin/run" for every rule?`, "⚠ for every rule but root escalations")
}

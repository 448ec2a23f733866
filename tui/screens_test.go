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

func TestIncidentList(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := start(t, newFake(), sz.w, sz.h, testOptions())
			s := h.waitFor("5 shown", "web-01")
			// Newest first: the crash (raised last) is on top, sudo last.
			if strings.Index(s, "SIGSEGV") > strings.Index(s, "/usr/bin/sudo") {
				t.Errorf("incidents not newest first:\n%s", s)
			}
			h.golden(s)
		})
	}
}

func TestSortBySeverity(t *testing.T) {
	h := start(t, newFake(), 120, 30, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("o")
	s := h.waitFor("by severity")
	crit := strings.Index(s, "critical open")
	low := strings.Index(s, "low      open")
	if crit < 0 || low < 0 || crit > low {
		t.Fatalf("critical should come before low:\n%s", s)
	}
}

func TestDetailWithAncestry(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := start(t, newFake(), sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("jjjj") // the sudo incident, oldest
			h.press(tea.KeyEnter)
			s := h.waitFor("Incident 18")
			var content string
			h.with(func(m *Model) { content = m.detail.raw })
			for _, want := range []string{
				"Rule        root-escalation (root-escalation), outcome success",
				"Why         uid 1000 became root through set-user-ID /usr/bin/sudo",
				"Users       uid alice(1000)  euid root(0)  auid alice(1000)",
				"Seen        12 times",
				"[1] -i",
				"Cwd         /home/alice",
				"/usr/lib/systemd/systemd (1)",
				"└─ /usr/sbin/sshd (812)",
				"   └─ /usr/sbin/sshd (4100)",
				"      └─ /usr/bin/bash (4242)",
				"         └─ /usr/bin/sudo (5001)  ◀ this process",
			} {
				if !strings.Contains(content, want) {
					t.Errorf("detail lacks %q", want)
				}
			}
			h.golden(s)
			h.press(tea.KeyEscape)
			h.waitFor("5 shown")
		})
	}
}

func TestFilter(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := start(t, newFake(), sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("/pkex")
			s := h.waitFor("1 shown", "filter: pkex")
			if strings.Contains(s, "/usr/bin/sudo") {
				t.Errorf("filtered list still shows sudo:\n%s", s)
			}
			h.golden(s)
			h.press(tea.KeyEnter) // keep the filter, leave the input
			h.waitFor("1 shown")
			h.press(tea.KeyEscape) // clears it
			s = h.waitFor("5 shown")
			if strings.Contains(s, "filter:") {
				t.Errorf("esc did not clear the filter:\n%s", s)
			}
		})
	}
}

func TestFilterMatchesArgsAndUsers(t *testing.T) {
	h := start(t, newFake(), 120, 30, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("/--fast") // an argument, not in any column
	h.waitFor("1 shown", "/tmp/build/run.sh")
	h.press(tea.KeyEscape)
	h.typeKeys("/NOBODY") // user names, case-insensitive
	h.waitFor("1 shown", "root-escalation          nobody")
}

func TestSkipConfirmAndUndo(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("jj") // shell-in-container: a command skip
			h.typeKeys("s")
			s := h.waitFor(`Skip command "bash" for rule shell-in-container? It masks 1 open incident(s)`,
				"⚠ a command name is chosen by the process: any program named bash")
			h.golden(s)
			if n := countCalls(f, "AddSkip"); n != 0 {
				t.Fatalf("skip added before confirmation")
			}
			h.typeKeys("y")
			h.waitFor(`Skipped command "bash" for rule shell-in-container: masked 1 incident(s)`, "mask  shell-in")
			skips, _ := f.Skips(t.Context())
			added := findAdded(skips)
			if added == nil || added.Kind != rules.SkipCommand || added.Value != "bash" || added.Rule != "shell-in-container" {
				t.Fatalf("stored skips = %+v", skips)
			}
			h.typeKeys("u")
			h.waitFor(`Undid skip command "bash" for rule shell-in-container: unmasked 1 incident(s)`)
			skips, _ = f.Skips(t.Context())
			if findAdded(skips) != nil {
				t.Errorf("undo left the skip: %+v", skips)
			}
			h.waitGone("mask  shell-in")
		})
	}
}

func TestSkipCancel(t *testing.T) {
	f := newFake()
	h := start(t, f, 100, 30, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("S") // for all rules
	h.waitFor(`Skip command "worker" for every rule?`)
	h.typeKeys("n")
	h.waitFor("cancelled")
	if n := countCalls(f, "AddSkip"); n != 0 {
		t.Errorf("AddSkip called %d times after cancel", n)
	}
}

func TestAckAndMask(t *testing.T) {
	f := newFake()
	h := start(t, f, 100, 30, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("a")
	h.waitFor("Acknowledged 1 incident(s)", "ack   crash")
	h.typeKeys("jx")
	h.waitFor("Masked 1 incident(s)", "mask  tmp-exec")
	got, _ := f.Incidents(t.Context(), api.Query{})
	st := map[string]rules.Status{}
	for _, in := range got {
		st[in.Rule] = in.Status
	}
	if st["crash"] != rules.StatusAcknowledged || st["tmp-exec"] != rules.StatusMasked {
		t.Errorf("stored statuses = %v", st)
	}
}

func TestNoiseScreen(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := newFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			h.waitFor("5 shown")
			h.typeKeys("5")
			s := h.waitFor("last hour", "path /usr/bin/sudo", "path /tmp/build/run.sh (pinned)", "path /usr/local/bin/worker")
			// Most incidents first: sudo repeated 12 times.
			if strings.Index(s, "/usr/bin/sudo") > strings.Index(s, "/usr/bin/pkexec") {
				t.Errorf("suggestions not ordered by count:\n%s", s)
			}
			h.golden(s)
			h.press(tea.KeyEnter) // the top talker, one key and the confirmation
			h.waitFor(`Skip path "/usr/bin/sudo" for rule root-escalation? It masks 1 open incident(s)`)
			h.typeKeys("y")
			h.waitFor(`Skipped path "/usr/bin/sudo"`)
			h.waitGone("path /usr/bin/sudo ")
			// S on an escalation says why instead of offering it.
			h.typeKeys("/pkexec")
			h.press(tea.KeyEnter)
			h.typeKeys("S")
			h.waitFor("a skip for every rule does not silence root escalations")
			h.typeKeys("t")
			h.waitFor("last day")
		})
	}
}

func TestSkipsScreenDelete(t *testing.T) {
	f := newFake()
	added, _, err := f.AddSkip(t.Context(), rules.Skip{Kind: rules.SkipPath, Value: "/opt/ci", Rule: "tmp-exec", Note: "CI runners"})
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, f, 120, 30, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("6")
	h.waitFor("rules.yaml", "/opt/ci", "CI runners")
	// The first row comes from rules.yaml and cannot be deleted here.
	h.typeKeys("d")
	h.waitFor("this skip is written in rules.yaml")
	h.typeKeys("jd")
	h.waitFor(`Delete skip path "/opt/ci" for rule tmp-exec? The incidents it masked reopen.`)
	h.typeKeys("y")
	h.waitFor(`Removed skip path "/opt/ci"`)
	h.waitGone("CI runners")
	for _, s := range mustSkips(t, f) {
		if s.ID == added.ID {
			t.Errorf("skip %s still stored", s.ID)
		}
	}
}

func TestRulesScreenMonitoring(t *testing.T) {
	f := newFake()
	h := start(t, f, 120, 30, testOptions())
	h.waitFor("● monitoring")
	h.typeKeys("7")
	h.waitFor("shell-in-container", "commands=bash,sh container=true")
	h.typeKeys("m")
	h.waitFor("Switch monitoring off?")
	h.typeKeys("y")
	h.waitFor("○ monitoring OFF", "Monitoring off: the sensor is being detached")
	h.typeKeys("m")
	h.waitFor("● monitoring", "Monitoring on")
	calls := strings.Join(f.Calls(), "\n")
	if !strings.Contains(calls, "SetMonitoring false") || !strings.Contains(calls, "SetMonitoring true") {
		t.Errorf("calls:\n%s", calls)
	}
}

func TestHintAlwaysVisible(t *testing.T) {
	h := start(t, newFake(), 80, 24, testOptions())
	h.waitFor("5 shown")
	for _, k := range []string{"1", "2", "3", "4", "5", "6", "7"} {
		h.typeKeys(k)
		lines := strings.Split(h.screen(), "\n")
		if last := lines[len(lines)-1]; !strings.Contains(last, "?") && !strings.Contains(last, "q quit") {
			t.Errorf("screen %s: no key hint on the last line: %q", k, last)
		}
		if len(lines) != 24 {
			t.Errorf("screen %s: %d lines, want 24", k, len(lines))
		}
	}
}

func countCalls(f *servicetest.Fake, prefix string) int {
	n := 0
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func findAdded(list []rules.Skip) *rules.Skip {
	for i := range list {
		if list[i].Source == rules.SourceAdded {
			return &list[i]
		}
	}
	return nil
}

func mustSkips(t *testing.T, f *servicetest.Fake) []rules.Skip {
	t.Helper()
	s, err := f.Skips(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publishExec sends n exec events of exe at one time.
func publishExec(f *servicetest.Fake, at time.Time, base uint32, n int, exe string) {
	u := api.Update{}
	for i := range n {
		u.Events = append(u.Events, api.Envelope{Event: servicetest.ExecEvent(at, base+uint32(i), 1000, exe)})
	}
	f.Publish(u)
}

var _ = event.TypeExec

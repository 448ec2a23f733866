package tui

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

const hostileHost = "evil\x1b]0;owned\x07host\u202e"

// rawHazards are byte sequences that must never reach the terminal from
// process data: a carriage return, escape-introduced sequences planted by
// a process, C1 CSI, bidi overrides and isolates, zero-width characters,
// BEL and invalid UTF-8.
var rawHazards = []string{"\r", "\x1b[2K", "\x1b]8;;http", "\x1b]0;pwned", "\x1b]0;owned", "\x1b[31m", "\x1b[1mbold",
	"\u009b", "\u202e", "\u2066", "\u200b", "\x07", "\xff"}

func checkNoHazards(t *testing.T, where, s string) {
	t.Helper()
	for _, hz := range rawHazards {
		if strings.Contains(s, hz) {
			t.Errorf("%s contains raw %q", where, hz)
		}
	}
}

func hostileFake() *servicetest.Fake {
	f := servicetest.New(hostileHost, func() time.Time { return t0.Add(10 * time.Minute) })
	f.SetRules(servicetest.SampleRules())
	f.Raise(servicetest.HostileIncidents(hostileHost, t0)...)
	return f
}

func TestHostileNames(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			f := hostileFake()
			h := start(t, f, sz.w, sz.h, testOptions())
			s := h.waitFor("7 shown")
			for _, want := range []string{
				`/tmp/evil\r\x1b[2Kuser=root`,
				`/tmp/\u{202e}gnp.exe`,
				`/tmp/bad\xff\xfeutf8`,
			} {
				if sz.w >= 160 && !strings.Contains(s, want) {
					t.Errorf("screen lacks escaped %q", want)
				}
			}
			h.golden(s)
			var view tea.View
			h.with(func(m *Model) { view = m.View() })
			if !utf8.ValidString(view.Content) {
				t.Error("view is not valid UTF-8")
			}
			checkNoHazards(t, "view", view.Content)
			checkNoHazards(t, "window title", view.WindowTitle)
			if !strings.Contains(view.WindowTitle, `evil\x1b]0;owned\x07host\u{202e}`) {
				t.Errorf("window title %q does not show the escaped host", view.WindowTitle)
			}

			// Every incident's detail pane, and the exec stream.
			for range 7 {
				h.press(tea.KeyEnter)
				h.waitFor("Ancestry")
				var content string
				h.with(func(m *Model) { content = m.detail.vp.GetContent() + m.View().Content })
				checkNoHazards(t, "detail", content)
				h.press(tea.KeyEscape)
				h.typeKeys("j")
			}
			h.typeKeys("j")
			h.press(tea.KeyEnter)
			h.waitFor("Ancestry")
			var content string
			h.with(func(m *Model) { content = m.detail.vp.GetContent() })
			for _, want := range []string{`[1] --arg\x1b[31m`, `[2] \u{202e}evil`, `Cwd         /home/\x1b[1mbold`} {
				if !strings.Contains(content, want) {
					t.Errorf("detail lacks %q", want)
				}
			}
		})
	}
}

func TestHostileOutputStream(t *testing.T) {
	f := hostileFake()
	h := start(t, f, 160, 48, testOptions())
	h.waitFor("7 shown")
	h.press(tea.KeyEnter)
	h.waitFor("Ancestry")
	h.tm.Quit()
	out, err := io.ReadAll(h.tm.FinalOutput(t, teatest.WithFinalTimeout(5*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	// The terminal stream holds the renderer's own sequences, but none of
	// the ones the process names carry.
	for _, hz := range []string{"\x1b]8;;http://attacker", "\x1b]0;pwned", "\x1b]0;owned", "\u202e", "\u2066", "\u200b", "\u009b", "\xff\xfe", "\x1b[2Kuser"} {
		if strings.Contains(string(out), hz) {
			t.Errorf("terminal output contains %q", hz)
		}
	}
}

func TestExportShownIncidents(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions()
	opts.ExportDir = dir
	f := newFake()
	h := start(t, f, 120, 30, opts)
	h.waitFor("5 shown")
	h.typeKeys("/root-esc")
	h.waitFor("2 shown")
	h.press(tea.KeyEnter)
	h.typeKeys("e")
	s := h.waitFor("Exported 2 incident(s) to ")
	name := filepath.Join(dir, exportFileName(testHost, t0.Add(10*time.Minute)))
	if !strings.Contains(s, filepath.Base(name)) {
		t.Errorf("message does not name %s:\n%s", name, s)
	}
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v, want 0600", st.Mode().Perm())
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var got []rules.Incident
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("export is not a JSON array of incidents: %v", err)
	}
	if len(got) != 2 || got[0].Rule != "root-escalation" || got[1].Rule != "root-escalation" || got[0].ID < got[1].ID {
		t.Errorf("exported %d incidents: %+v", len(got), got)
	}
	// A second export in the same second must not overwrite the first.
	h.typeKeys("e")
	h.waitFor("export: create export file")
}

func TestExportFileName(t *testing.T) {
	at := time.Date(2026, 11, 29, 4, 5, 6, 0, time.UTC)
	for _, tc := range []struct{ host, want string }{
		{"web-01", "procwatch-incidents-web-01-20261129T040506Z.json"},
		{"../../etc/passwd", "procwatch-incidents-_.._etc_passwd-20261129T040506Z.json"},
		{hostileHost, "procwatch-incidents-evil_x1b_0_owned_x07host_u_202e_-20261129T040506Z.json"},
		{"", "procwatch-incidents-host-20261129T040506Z.json"},
	} {
		if got := exportFileName(tc.host, at); got != tc.want {
			t.Errorf("exportFileName(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

// The client decodes any event type an agent sends, so a hostile one must be
// escaped in the detail pane like every other process string.
func TestDetailEscapesEventType(t *testing.T) {
	in := servicetest.HostileIncidents(hostileHost, t0)[0]
	in.Process.Type = "exec\x1b]0;pwned\x07"
	s := incidentDetail(&in, nil, newUserCache(nil), time.UTC)
	checkNoHazards(t, "detail", s)
	if !strings.Contains(s, `exec\x1b]0;pwned\x07 at`) {
		t.Errorf("detail does not show the escaped type:\n%s", s)
	}
}

// A skip listed by a hostile agent is described, for the delete
// confirmation, with every field escaped.
func TestDescribeSkipEscapes(t *testing.T) {
	s := describeSkip(rules.Skip{Kind: "command\x1b[31m", Value: "sudo\u202e", Rule: "r\x07"})
	checkNoHazards(t, "skip description", s)
	if want := `command\x1b[31m "sudo\u{202e}" for rule r\x07`; s != want {
		t.Errorf("describeSkip = %q, want %q", s, want)
	}
}

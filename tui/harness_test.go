package tui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// t0 is the fixed time every test scene starts at.
var t0 = time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)

const testHost = "web-01"

var testUsers = map[uint32]string{0: "root", 1000: "alice", 65534: "nobody"}

// newFake returns a fake service loaded with the sample rules and incidents.
func newFake() *servicetest.Fake {
	f := servicetest.New(testHost, func() time.Time { return t0.Add(10 * time.Minute) })
	f.SetRules(servicetest.SampleRules())
	f.Raise(servicetest.SampleIncidents(testHost, t0)...)
	f.AddRulesFileSkip(rules.Skip{Kind: rules.SkipCommand, Value: "sudo", Rule: "root-escalation"})
	return f
}

func testOptions() Options {
	return Options{
		Location:     time.UTC,
		Now:          func() time.Time { return t0.Add(10 * time.Minute) },
		LookupUser:   func(uid uint32) (string, bool) { n, ok := testUsers[uid]; return n, ok },
		NoStatusPoll: true,
		Tick:         10 * time.Millisecond,
	}
}

// inspect runs fn on the model inside the program's loop, so a test reads
// exactly what Update produced without racing it.
type inspect struct {
	fn   func(*Model)
	done chan struct{}
}

// probe wraps the model to answer inspect messages.
type probe struct{ m *Model }

func (p probe) Init() tea.Cmd { return p.m.Init() }

func (p probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if q, ok := msg.(inspect); ok {
		q.fn(p.m)
		close(q.done)
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p probe) View() tea.View { return p.m.View() }

// harness runs the UI in a teatest program against a fake service.
type harness struct {
	t    *testing.T
	tm   *teatest.TestModel
	fake *servicetest.Fake
	w, h int
}

func start(t *testing.T, fake *servicetest.Fake, w, h int, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := New(ctx, fake, opts)
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	hs := &harness{t: t, tm: tm, fake: fake, w: w, h: h}
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})
	return hs
}

// with runs fn on the model inside the program loop and waits for it.
func (h *harness) with(fn func(*Model)) {
	h.t.Helper()
	q := inspect{fn: fn, done: make(chan struct{})}
	h.tm.Send(q)
	select {
	case <-q.done:
	case <-time.After(5 * time.Second):
		h.t.Fatal("the program did not answer an inspect message")
	}
}

// screen returns the current screen as plain text.
func (h *harness) screen() string {
	h.t.Helper()
	var s string
	h.with(func(m *Model) { s = ansi.Strip(m.View().Content) })
	return s
}

// waitFor polls the screen until it contains every want string.
func (h *harness) waitFor(want ...string) string {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var s string
	for time.Now().Before(deadline) {
		s = h.screen()
		ok := true
		fs := flat(s)
		for _, w := range want {
			if !strings.Contains(s, w) && !strings.Contains(fs, flat(w)) {
				ok = false
				break
			}
		}
		if ok {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("screen never showed %q; last screen:\n%s", want, s)
	return ""
}

// flat joins a screen's words with single spaces, dropping the dialog's
// borders, so that text wrapped over several lines of a box still reads
// as one line.
func flat(s string) string {
	s = strings.NewReplacer("│", " ", "╭", " ", "╮", " ", "╰", " ", "╯", " ").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// waitGone polls until the screen no longer contains s.
func (h *harness) waitGone(s string) string {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var scr string
	for time.Now().Before(deadline) {
		scr = h.screen()
		if !strings.Contains(scr, s) {
			return scr
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("screen still shows %q:\n%s", s, scr)
	return ""
}

func (h *harness) typeKeys(s string) { h.tm.Type(s) }

func (h *harness) press(code rune) { h.tm.Send(tea.KeyPressMsg{Code: code}) }

// golden compares the screen with testdata/<test name>.golden.
func (h *harness) golden(screen string) {
	h.t.Helper()
	lines := strings.Split(screen, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	golden.RequireEqual(h.t, strings.Join(lines, "\n")+"\n")
}

// goldenAs compares the screen with testdata/<test name>/<name>.golden, for
// a test that checks several screens.
func (h *harness) goldenAs(name, screen string) {
	h.t.Helper()
	h.t.Run(name, func(t *testing.T) {
		t.Helper()
		lines := strings.Split(screen, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRight(l, " ")
		}
		golden.RequireEqual(t, strings.Join(lines, "\n")+"\n")
	})
}

// sizes are the terminal sizes every golden test runs at.
var sizes = []struct {
	name string
	w, h int
}{{"80x24", 80, 24}, {"160x48", 160, 48}}

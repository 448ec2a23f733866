package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/procwatch/procwatch/tui"
)

// screenProbe wraps the UI so the test reads its screen inside the
// program's loop.
type screenProbe struct{ m *tui.Model }

type screenMsg chan string

func (p screenProbe) Init() tea.Cmd { return p.m.Init() }

func (p screenProbe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if ch, ok := msg.(screenMsg); ok {
		ch <- ansi.Strip(p.m.View().Content)
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p screenProbe) View() tea.View { return p.m.View() }

// TestFleetUI runs the real UI on two replayed fleet hosts: the Hosts
// screen lists them from their status, the incidents of both are merged
// with a HOST column, and monitoring off on both selected hosts goes
// through the control service, with the result per host.
func TestFleetUI(t *testing.T) {
	c := startCluster(t, 1)
	urls := c.urls()
	setupStreams(t, urls, 1)
	v := newViewer(t, urls)
	a := startReplayAgent(t, "alpha", urls, capture("alpha", 10), 0)
	b := startReplayAgent(t, "beta", urls, capture("beta", 10), 0)
	waitFor(t, 20*time.Second, "both agents settled and up", func() bool {
		return a.settled() && b.settled() && len(v.Incidents("")) == 16 &&
			v.Host("alpha", false).Conn().State.String() == "connected" && v.Host("beta", false).Conn().State.String() == "connected"
	})
	var list []tui.Host
	for _, h := range v.Hosts() {
		fh := v.Host(h.Name, false)
		list = append(list, tui.Host{Name: h.Name, Service: fh, Conn: fh.Conn})
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tm, wait, _ := runUI(t, tui.NewHosts(ctx, list, tui.Options{Location: time.UTC, Tick: 20 * time.Millisecond}))
	wait("HOST", "alpha", "beta", "16 shown")
	tm.Type("8")
	wait("2 hosts", "connected")
	tm.Type("*")
	tm.Type("d")
	wait("[y/n]")
	tm.Type("y")
	s := wait("monitoring off: ok")
	if strings.Count(s, "monitoring off: ok") != 2 {
		t.Errorf("want a result on each host:\n%s", s)
	}
	for _, ra := range []*replayAgent{a, b} {
		if st, err := ra.local.Status(ctx); err != nil || st.Monitoring {
			t.Errorf("%s still monitoring (%v)", ra.host, err)
		}
	}
}

// runUI runs m in a test program on a 160x48 terminal; wait waits until
// the screen shows every string, until until the screen satisfies ok.
func runUI(t *testing.T, m *tui.Model) (tm *teatest.TestModel, wait func(want ...string) string, until func(what string, ok func(string) bool) string) {
	t.Helper()
	tm = teatest.NewTestModel(t, screenProbe{m}, teatest.WithInitialTermSize(160, 48),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})
	screen := func() string {
		ch := make(screenMsg, 1)
		tm.Send(ch)
		select {
		case s := <-ch:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("the UI did not answer")
			return ""
		}
	}
	until = func(what string, ok func(string) bool) string {
		t.Helper()
		var s string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if s = screen(); ok(s) {
				return s
			}
		}
		t.Fatalf("the screen never showed %s:\n%s", what, s)
		return ""
	}
	wait = func(want ...string) string {
		t.Helper()
		return until(fmt.Sprintf("%q", want), func(s string) bool {
			for _, w := range want {
				if !strings.Contains(s, w) {
					return false
				}
			}
			return true
		})
	}
	return tm, wait, until
}

// TestFleetUIHostsComeAndGo: the Hosts screen is built from status
// messages as they come. A host whose agent starts after the UI did
// appears, with its incidents, without a restart; a host whose agent stops
// is marked stale once its status stops.
func TestFleetUIHostsComeAndGo(t *testing.T) {
	c := startCluster(t, 1)
	urls := c.urls()
	setupStreams(t, urls, 1)
	v := newViewer(t, urls)
	a := startReplayAgent(t, "alpha", urls, capture("alpha", 10), 0)
	waitFor(t, 20*time.Second, "alpha up", func() bool {
		return a.settled() && v.Host("alpha", false).Conn().State.String() == "connected"
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fa := v.Host("alpha", false)
	more := make(chan tui.Host)
	go func() {
		for name := range v.NewHosts(ctx, []string{"alpha"}) {
			fh := v.Host(name, false)
			select {
			case more <- tui.Host{Name: name, Service: fh, Conn: fh.Conn}:
			case <-ctx.Done():
				return
			}
		}
	}()
	m := tui.NewHosts(ctx, []tui.Host{{Name: "alpha", Service: fa, Conn: fa.Conn}},
		tui.Options{Location: time.UTC, Tick: 20 * time.Millisecond, MoreHosts: more})
	tm, wait, until := runUI(t, m)
	wait("HOST", "alpha", "8 shown")
	tm.Type("8")
	wait("1 hosts", "alpha", "connected")

	// beta starts publishing after the UI started.
	b := startReplayAgent(t, "beta", urls, capture("beta", 10), 0)
	until("2 hosts, both connected", func(s string) bool {
		return strings.Contains(s, "2 hosts") && strings.Contains(s, "beta") && strings.Count(s, "connected") >= 2
	})
	waitFor(t, 20*time.Second, "beta settled", b.settled)
	tm.Type("1")
	wait("16 shown", "beta")

	// alpha stops: its status stops, and after StaleAfter it is stale.
	a.stop()
	tm.Type("8")
	s := wait("alpha unreachable: stale: last status")
	if !strings.Contains(s, "2 hosts, 1 down") {
		t.Errorf("the header does not count the stale host as down:\n%s", s)
	}
}

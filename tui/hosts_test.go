package tui

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/rules"
)

// hostFake is one host of a multi-host test: a servicetest.Fake that can be
// taken down (calls fail as on a hosts.Host without a connection) and whose
// subscriptions can be dropped, as when a transport dies.
type hostFake struct {
	*servicetest.Fake
	name string

	mu      sync.Mutex
	down    string
	cancels []context.CancelFunc
}

func newHostFake(name string, incidents []rules.Incident) *hostFake {
	f := servicetest.New(name, func() time.Time { return t0.Add(10 * time.Minute) })
	f.SetRules(servicetest.SampleRules())
	f.Raise(incidents...)
	return &hostFake{Fake: f, name: name}
}

func (h *hostFake) unreachable() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down == "" {
		return nil
	}
	return &hosts.UnreachableError{Host: h.name, State: hosts.Unreachable, Reason: h.down}
}

// setDown takes the host down with a reason ("" brings it back) and ends
// its subscriptions.
func (h *hostFake) setDown(reason string) {
	h.mu.Lock()
	h.down = reason
	cancels := h.cancels
	h.cancels = nil
	h.mu.Unlock()
	if reason != "" {
		for _, c := range cancels {
			c()
		}
	}
}

func (h *hostFake) conn() hosts.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down != "" {
		return hosts.Conn{State: hosts.Unreachable, Reason: h.down}
	}
	return hosts.Conn{State: hosts.Connected}
}

func (h *hostFake) Subscribe(ctx context.Context, after rules.ID) (<-chan api.Update, error) {
	if err := h.unreachable(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	h.mu.Lock()
	h.cancels = append(h.cancels, cancel)
	h.mu.Unlock()
	return h.Fake.Subscribe(ctx, after)
}

func (h *hostFake) Status(ctx context.Context) (api.Status, error) {
	if err := h.unreachable(); err != nil {
		return api.Status{}, err
	}
	return h.Fake.Status(ctx)
}

func (h *hostFake) SetMonitoring(ctx context.Context, on bool) error {
	if err := h.unreachable(); err != nil {
		return err
	}
	return h.Fake.SetMonitoring(ctx, on)
}

func (h *hostFake) Incidents(ctx context.Context, q api.Query) ([]rules.Incident, error) {
	if err := h.unreachable(); err != nil {
		return nil, err
	}
	return h.Fake.Incidents(ctx, q)
}

// threeHosts returns web-01 and web-02 with the sample incidents (the same
// ids on both, as two agents on one machine raise) and db-01 unreachable.
func threeHosts() []*hostFake {
	web1 := newHostFake("web-01", servicetest.SampleIncidents("web-01", t0))
	web2 := newHostFake("web-02", servicetest.SampleIncidents("web-02", t0)[:2])
	web2.SetStats(event.Stats{Exec: 10, Drops: 3}, t0.Add(10*time.Minute))
	web2.SetMonitoring(context.Background(), false)
	db := newHostFake("db-01", nil)
	db.setDown("transport exit status 255: ssh: connect to host db-01 port 22: Connection refused")
	return []*hostFake{web1, web2, db}
}

func startHosts(t *testing.T, fakes []*hostFake, w, h int, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	list := make([]Host, len(fakes))
	for i, f := range fakes {
		list[i] = Host{Name: f.name, Service: f, Conn: f.conn}
	}
	m := NewHosts(ctx, list, opts)
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	hs := &harness{t: t, tm: tm, w: w, h: h}
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})
	return hs
}

func callsOf(f *hostFake, prefix string) []string {
	var out []string
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func TestHostsScreen(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			h := startHosts(t, threeHosts(), sz.w, sz.h, testOptions())
			h.waitFor("7 shown")
			h.typeKeys("8")
			s := h.waitFor("3 hosts · 0 selected", "web-01", "connected", "unreachable", "Connection refused")
			lines := strings.Split(s, "\n")
			row := func(name string) string {
				i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, name) && strings.Contains(l, "[") })
				if i < 0 {
					t.Fatalf("no row for %s:\n%s", name, s)
				}
				return lines[i]
			}
			for _, tc := range []struct{ host, want string }{
				{"web-01", "connected   on"},
				{"web-02", "connected   off"},
				{"db-01", "unreachable ?"},
			} {
				if r := row(tc.host); !strings.Contains(r, tc.want) {
					t.Errorf("%s row %q lacks %q", tc.host, r, tc.want)
				}
			}
			if sz.w >= 140 {
				if r := row("web-01"); !strings.Contains(r, "1/2/1/1/0") {
					t.Errorf("web-01 open by severity: %q", r)
				}
				if r := row("web-02"); !strings.Contains(r, "0/2/0/0/0") || !strings.Contains(r, " 3 ") {
					t.Errorf("web-02 open/drops: %q", r)
				}
			}
			merged := "3 hosts, 1 down │ ○ mon 1/3 │ open critical 1 high 4 medium 1 low 1 info 0"
			if sz.w < 100 {
				merged = "3 hosts, 1 down │ ○ mon 1/3 │ open 7 c1 h4 m1 l1"
			}
			if !strings.Contains(s, merged) || !strings.Contains(s, "○ monitoring is off on web-02") {
				t.Errorf("header does not merge the hosts:\n%s", s)
			}
			h.golden(s)
		})
	}
}

func TestMergedIncidentsWithHostColumn(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			fakes := threeHosts()
			h := startHosts(t, fakes, sz.w, sz.h, testOptions())
			s := h.waitFor("7 shown", "all hosts", "HOST")
			// Same ids on two hosts are two rows, each naming its host.
			n1, n2 := 0, 0
			for _, l := range strings.Split(s, "\n") {
				if strings.Contains(l, "pkexec") || strings.Contains(l, "uid 65534") {
					switch {
					case strings.Contains(l, "web-01"):
						n1++
					case strings.Contains(l, "web-02"):
						n2++
					}
				}
			}
			if n1 != 1 || n2 != 1 {
				t.Errorf("pkexec incident rows: web-01 %d, web-02 %d; want one each:\n%s", n1, n2, s)
			}
			h.golden(s)

			// H shows one host at a time, then all again.
			h.typeKeys("H")
			s = h.waitFor("5 shown", "host web-01")
			if body := s[strings.Index(s, "Incidents ·"):]; strings.Contains(body, "web-02") {
				t.Errorf("filtered to web-01 but shows web-02:\n%s", s)
			}
			h.typeKeys("H")
			h.waitFor("2 shown", "host web-02")
			// The host shown becomes the focus, so its rules are loaded.
			for deadline := time.Now().Add(5 * time.Second); countCalls(fakes[1].Fake, "Rules") == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("showing web-02 did not load its rules")
				}
			}
			h.typeKeys("H")
			h.waitFor("0 shown", "host db-01")
			h.typeKeys("H")
			h.waitFor("7 shown", "all hosts")
		})
	}
}

// selectIncident moves the cursor to the row containing all of want.
func (h *harness) selectIncident(want ...string) {
	h.t.Helper()
	h.typeKeys("g")
	for range 50 {
		var r *row[*rules.Incident]
		h.with(func(m *Model) { r = m.inc.list.Selected() })
		line := strings.Join(r.cells, " ")
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return
		}
		h.typeKeys("j")
	}
	h.t.Fatalf("no row with %q", want)
}

func TestActionsGoToTheIncidentsHost(t *testing.T) {
	fakes := threeHosts()
	web1, web2 := fakes[0], fakes[1]
	h := startHosts(t, fakes, 160, 48, testOptions())
	h.waitFor("7 shown")

	h.selectIncident("web-02", "pkexec")
	h.typeKeys("a")
	h.waitFor("Acknowledged 1 incident(s) on web-02")
	if got := callsOf(web2, "SetStatus"); len(got) != 1 || got[0] != "SetStatus acknowledged 1" {
		t.Errorf("web-02 SetStatus calls = %q", got)
	}
	if got := callsOf(web1, "SetStatus"); len(got) != 0 {
		t.Errorf("web-01 got %q for an incident of web-02", got)
	}
	list, _ := web2.Incidents(t.Context(), api.Query{Rule: "root-escalation"})
	acked := 0
	for _, in := range list {
		if in.Status == rules.StatusAcknowledged {
			acked++
		}
	}
	if acked != 1 {
		t.Errorf("web-02 acknowledged incidents = %d, want 1", acked)
	}

	h.selectIncident("web-01", "sudo")
	h.typeKeys("s")
	h.waitFor(`Skip path "/usr/bin/sudo" for rule root-escalation on web-01? It masks 1 open incident(s)`)
	h.typeKeys("y")
	h.waitFor(`Skipped path "/usr/bin/sudo" for rule root-escalation on web-01: masked 1 incident(s)`)
	if got := callsOf(web1, "AddSkip"); len(got) != 1 {
		t.Errorf("web-01 AddSkip calls = %q", got)
	}
	if got := callsOf(web2, "AddSkip"); len(got) != 0 {
		t.Errorf("web-02 got %q for an incident of web-01", got)
	}
	h.typeKeys("u")
	h.waitFor(`Undid skip path "/usr/bin/sudo" for rule root-escalation on web-01: unmasked 1 incident(s)`)
}

func TestFanOutToSelectedHosts(t *testing.T) {
	fakes := threeHosts()
	web1, web2 := fakes[0], fakes[1]
	h := startHosts(t, fakes, 160, 48, testOptions())
	h.waitFor("7 shown")
	h.typeKeys("8")
	h.waitFor("0 selected")
	h.typeKeys("gj ") // select web-02
	h.waitFor("1 selected", "[x] web-02")
	h.typeKeys("1F")
	h.waitFor("actions → selected hosts", "Actions go to the incident's host and the selected hosts: web-02")

	// A skip on a web-01 incident goes to web-01 and web-02.
	h.selectIncident("web-01", "sudo")
	h.typeKeys("s")
	h.waitFor(`Skip path "/usr/bin/sudo" for rule root-escalation on web-01, web-02? It masks 2 open incident(s)`)
	h.typeKeys("y")
	h.waitFor(`Skipped path "/usr/bin/sudo" for rule root-escalation on web-01, web-02: masked 2 incident(s)`)
	for _, f := range []*hostFake{web1, web2} {
		if got := callsOf(f, "AddSkip"); len(got) != 1 || got[0] != "AddSkip path=/usr/bin/sudo rule=root-escalation" {
			t.Errorf("%s AddSkip calls = %q", f.name, got)
		}
	}
	// One undo removes it from both.
	h.typeKeys("u")
	h.waitFor(`Undid skip path "/usr/bin/sudo" for rule root-escalation on web-01, web-02: unmasked 2 incident(s)`)
	for _, f := range []*hostFake{web1, web2} {
		if got := callsOf(f, "RemoveSkip"); len(got) != 1 {
			t.Errorf("%s RemoveSkip calls = %q", f.name, got)
		}
	}

	// Masking the pkexec escalation masks the same finding on web-02 and
	// nothing else.
	h.selectIncident("web-01", "pkexec")
	h.typeKeys("x")
	h.waitFor("Masked 2 incident(s) on web-01, web-02")
	for _, f := range []*hostFake{web1, web2} {
		list, _ := f.Incidents(t.Context(), api.Query{Status: rules.StatusMasked})
		if len(list) != 1 || !strings.Contains(string(list[0].Process.Exe), "pkexec") {
			t.Errorf("%s masked = %+v", f.name, list)
		}
	}

	// Off again: actions go to the incident's host only.
	h.typeKeys("F")
	h.waitGone("actions → selected hosts")
}

func TestActivateDeactivateSelectedHosts(t *testing.T) {
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			fakes := threeHosts()
			web1, web2, db := fakes[0], fakes[1], fakes[2]
			h := startHosts(t, fakes, sz.w, sz.h, testOptions())
			h.waitFor("7 shown")
			h.typeKeys("8")
			h.waitFor("0 selected", "connected")
			h.typeKeys("*") // all three
			h.waitFor("3 selected")
			h.typeKeys("a")
			s := h.waitFor("Monitoring on: done on 2 of 3 host(s) · failed on db-01: host db-01 is unreach", "monitoring on: ok", "monitoring on: fa", "db-01 monitoring on failed: host db-01 is unreachable")
			for _, f := range []*hostFake{web1, web2} {
				if got := callsOf(f, "SetMonitoring"); !slices.Contains(got, "SetMonitoring true") {
					t.Errorf("%s: calls %q", f.name, got)
				}
			}
			if got := callsOf(db, "SetMonitoring"); len(got) != 0 {
				t.Errorf("db-01 is down but recorded %q", got)
			}
			h.golden(s)

			// Deactivate web-01 and web-02 only, after confirming.
			h.typeKeys("*")     // none
			h.typeKeys("g j k") // web-01 and web-02 selected
			h.waitFor("2 selected")
			h.typeKeys("d")
			h.waitFor("Switch monitoring off on web-01, web-02?")
			if got := callsOf(web1, "SetMonitoring false"); len(got) != 0 {
				t.Fatal("switched off before confirmation")
			}
			h.typeKeys("y")
			h.waitFor("Monitoring off on web-01, web-02", "monitoring off: ok")
			for _, f := range []*hostFake{web1, web2} {
				st, _ := f.Status(t.Context())
				if st.Monitoring {
					t.Errorf("%s still monitoring", f.name)
				}
			}
			h.waitFor("mon 0/3")
		})
	}
}

func TestHostReconnectResumesFromLastIncident(t *testing.T) {
	fakes := threeHosts()
	web2 := fakes[1]
	h := startHosts(t, fakes, 120, 30, testOptions())
	h.waitFor("7 shown")
	var last rules.ID
	h.with(func(m *Model) { last = m.hosts[1].lastID })
	if want := servicetest.SampleIncidents("web-02", t0)[1].ID; last != want {
		t.Fatalf("web-02 last id = %s, want %s", last, want)
	}

	web2.setDown("connection lost: transport exit status 1")
	h.typeKeys("8")
	h.waitFor("web-02", "unreachable", "connection lost")
	// Raised while the UI could not see it.
	missed := servicetest.IncidentFor(last+1000, "web-02", "tmp-exec", rules.TypeBinExecution, rules.SeverityMedium,
		servicetest.ExecEvent(t0.Add(time.Hour), 9000, 1000, "/tmp/missed-while-down"), "/tmp/missed-while-down ran from a world-writable directory")
	web2.Raise(missed)
	web2.setDown("")
	h.typeKeys("1")
	h.waitFor("8 shown", "missed-while-down")
	resumed := false
	for _, c := range callsOf(web2, "Subscribe") {
		resumed = resumed || c == "Subscribe "+last.String()
	}
	if !resumed {
		t.Errorf("web-02 subscriptions %q: none resumed after %s", callsOf(web2, "Subscribe"), last)
	}
}

func TestSingleHostHasNoHostsScreen(t *testing.T) {
	h := start(t, newFake(), 160, 48, testOptions())
	s := h.waitFor("5 shown")
	if strings.Contains(s, "8 Hosts") || strings.Contains(s, "HOST ") {
		t.Errorf("single-host UI shows host features:\n%s", s)
	}
	h.typeKeys("8")
	h.typeKeys("?")
	s = h.waitFor("Keys")
	if strings.Contains(s, "select host") || strings.Contains(s, "Hosts") {
		t.Errorf("single-host help lists host keys:\n%s", s)
	}
}

// TestOneHostIsTheSingleHostUI: one configured host (a remote one, with
// a connection of its own) runs through the same code as a single
// pipeline: the same screen, no HOST column or Hosts screen, and its
// connection trouble in the header's banner, gone when it is back.
func TestOneHostIsTheSingleHostUI(t *testing.T) {
	single := start(t, newFake(), 160, 48, testOptions())
	want := single.waitFor("5 shown")
	web := newHostFake(testHost, servicetest.SampleIncidents(testHost, t0))
	h := startHosts(t, []*hostFake{web}, 160, 48, testOptions())
	got := h.waitFor("5 shown")
	if got != want {
		t.Errorf("one configured host differs from the single-host UI:\n%s\nwant:\n%s", got, want)
	}
	web.setDown("ssh: connect to host web-01 port 22: Connection refused")
	h.typeKeys("7") // the Rules screen refreshes the status
	h.typeKeys("r")
	s := h.waitFor("✖ disconnected: ssh: connect to host web-01 port 22: Connection refused")
	if strings.Contains(s, "8 Hosts") || strings.Contains(s, "1 hosts") {
		t.Errorf("one host shows the several-hosts header or tabs:\n%s", s)
	}
	web.setDown("")
	h.typeKeys("r")
	h.waitGone("disconnected")
}

func TestHostileHostNamesAndReasons(t *testing.T) {
	evil := newHostFake("evil\x1b[2J\x1b]0;pwned\x07", nil)
	evil.setDown("ssh: \x1b[31mred\r\x1b[2Kfake=ok \u202eesrever")
	good := newHostFake("web-01", servicetest.SampleIncidents("web-01", t0)[:1])
	h := startHosts(t, []*hostFake{good, evil}, 120, 30, testOptions())
	h.waitFor("1 shown")
	h.typeKeys("8")
	h.waitFor(`evil\x1b[2J\x1b]0;pwned\x07`, `ssh: \x1b[31mred\r\x1b[2Kfake=ok \u{202e}esrever`)
	var raw string
	h.with(func(m *Model) { raw = m.View().Content })
	if !strings.Contains(raw, "esrever") {
		t.Fatal("the reason is not on screen")
	}
	for _, bad := range []string{"\x1b[2J", "\x1b]0;", "\x07", "\r", "\u202e", "\x1b[31m"} {
		if strings.Contains(raw, bad) {
			t.Errorf("the Hosts screen carries %q from a host name or reason", bad)
		}
	}
	var title string
	h.with(func(m *Model) { title = m.View().WindowTitle })
	if strings.ContainsAny(title, "\x1b\x07") {
		t.Errorf("window title %q", title)
	}
}

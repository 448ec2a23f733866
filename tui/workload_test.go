package tui

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/suggest"
)

// adminDay is an ordinary admin's day as the sensor reports it, under the
// default rules: package installs (apt's gpg script in /tmp), a
// configure-and-make build in /tmp and one in /root, go build and go test,
// sudo and su, daemon restarts; and one intrusion, a payload run from
// /dev/shm by the web server's user.
func adminDay(t0 time.Time) []event.Event {
	var evs []event.Event
	at := t0
	sum := func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	add := func(typ event.EventType, uid uint32, exe, script string, args ...string) {
		at = at.Add(7 * time.Second)
		ev := event.Event{Type: typ, Time: at, PID: 2000 + uint32(len(evs)), PPID: 1, UID: uid, EUID: uid,
			Exe: event.Text(exe), Filename: event.Text(exe), Comm: event.Text(exe[strings.LastIndexByte(exe, '/')+1:]),
			Outcome: event.Success, ExeOwner: event.Uint32(0), ExeSHA256: sum(exe + script), Script: event.Text(script)}
		if typ == event.TypeEscalation {
			ev.EUID, ev.Method = 0, event.MethodSuidExec
			ev.OldUID, ev.NewUID, ev.OldEUID, ev.NewEUID = event.Uint32(uid), event.Uint32(uid), event.Uint32(uid), event.Uint32(0)
		}
		if script != "" {
			ev.Filename = event.Text(script)
		}
		for _, a := range append([]string{exe}, args...) {
			ev.Args = append(ev.Args, event.Text(a))
		}
		evs = append(evs, ev)
	}
	const src = "/tmp/build/hello-2.12/"
	add(event.TypeEscalation, 1000, "/usr/bin/sudo", "", "apt-get", "install", "-y", "nginx")
	add(event.TypeExec, 0, "/usr/bin/apt-get", "", "install", "-y", "nginx")
	add(event.TypeExec, 0, "/usr/bin/dash", "/tmp/apt-key-gpghome.Xa1/gpg.1.sh", "--list-keys")
	add(event.TypeExec, 0, "/usr/bin/systemctl", "", "restart", "nginx")
	add(event.TypeEscalation, 1000, "/usr/bin/sudo", "", "systemctl", "restart", "nginx")
	add(event.TypeEscalation, 1000, "/usr/bin/su", "", "-")
	add(event.TypeExec, 0, "/usr/bin/dash", src+"configure", "--prefix=/usr/local")
	for i := range 6 {
		add(event.TypeExec, 0, src+"conftest", "", fmt.Sprint(i))
	}
	add(event.TypeExec, 0, "/usr/bin/make", "", "check")
	for _, name := range []string{"test-greeting", "test-traditional", "test-version"} {
		add(event.TypeExec, 0, src+"tests/"+name, "")
	}
	add(event.TypeExec, 0, src+"hello", "", "--version")
	add(event.TypeExec, 0, "/usr/bin/dash", src+"build-aux/install-sh", "-c", "hello", "/usr/local/bin")
	add(event.TypeExec, 0, "/root/src/hello-2.12/hello", "", "--version")
	add(event.TypeExec, 0, "/tmp/go-build2861/b001/exe/hello", "")
	add(event.TypeExec, 0, "/tmp/go-build2862/b001/hello.test", "", "-test.v")
	add(event.TypeEscalation, 1000, "/usr/bin/sudo", "", "-i")
	add(event.TypeEscalation, 1000, "/usr/bin/sudo", "", "journalctl", "-u", "nginx")
	add(event.TypeExec, 33, "/dev/shm/.x/kworker", "", "-c", "203.0.113.9:443")
	return evs
}

// TestKeysToSilenceAdminNoise drives the real UI, keys and all, over the
// incidents the default rules raise for adminDay: it opens the Noise
// screen and, like an operator, applies the topmost suggestion that covers
// only noise (moving down past any that would also cover the intrusion,
// one key per row, then enter and y), until only the intrusion is open.
// It counts every key pressed.
func TestKeysToSilenceAdminNoise(t *testing.T) {
	set, err := rules.LoadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	e := rules.NewEngine(set, rules.EngineOptions{Host: testHost, Mounts: rules.HostMounts{MntNS: 1, RootDev: 1}})
	f := servicetest.New(testHost, func() time.Time { return day.Add(10 * time.Minute) })
	f.SetRules(set.Rules)
	byID := map[rules.ID]rules.Incident{}
	for _, ev := range adminDay(day) {
		for _, in := range e.Evaluate(&ev) {
			byID[in.ID] = in
		}
	}
	intrusion := func(in *rules.Incident) bool { return strings.HasPrefix(string(in.Process.Exe), "/dev/shm/") }
	noise := 0
	for _, in := range byID {
		f.Raise(in)
		if !intrusion(&in) {
			noise++
		}
	}
	if noise < 10 || noise == len(byID) {
		t.Fatalf("%d incidents, %d noise: the fixture no longer matches the default rules", len(byID), noise)
	}
	opts := testOptions()
	opts.Now = func() time.Time { return day.Add(10 * time.Minute) }
	h := start(t, f, 160, 48, opts)
	h.waitFor(fmt.Sprintf("%d shown", len(byID)))
	keys := 0
	press := func(k string) {
		keys++
		switch k {
		case "enter":
			h.press(tea.KeyEnter)
		case "down":
			h.press(tea.KeyDown)
		default:
			h.typeKeys(k)
		}
	}
	press("5")
	h.waitFor("suggested skips", "exec-from-writable-dir")
	for applied := 0; ; applied++ {
		open, _ := f.Incidents(t.Context(), api.Query{Status: rules.StatusOpen})
		var rows []suggest.Suggestion
		sel := 0
		h.with(func(m *Model) {
			for _, r := range m.noise.all {
				rows = append(rows, *r.item)
			}
			sel = m.noise.idx
		})
		pick := -1
		for i, sg := range rows {
			covers, onlyNoise, any := sg.Skip.Coverer(), true, false
			for j := range open {
				if covers(&open[j]) {
					any, onlyNoise = true, onlyNoise && !intrusion(&open[j])
				}
			}
			if any && onlyNoise {
				pick = i
				break
			}
		}
		if pick < 0 {
			for _, sg := range rows {
				t.Logf("left: %s %s pin=%v rule=%s count=%d", sg.Skip.Kind, sg.Skip.Value, sg.Skip.Pin != "", sg.Skip.Rule, sg.Count)
			}
			break
		}
		for ; sel < pick; sel++ {
			press("down")
		}
		for ; sel > pick; sel-- {
			press("k")
		}
		press("enter")
		h.waitFor("[y/n]")
		press("y")
		h.waitFor("Skipped ")
		// Wait for the suggestions computed after the skip.
		want := len(rows)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			n := 0
			h.with(func(m *Model) { n = len(m.noise.all) })
			if n < want {
				break
			}
		}
		if applied > noise {
			t.Fatal("more skips than noise incidents: the suggestions do not converge")
		}
	}
	open, _ := f.Incidents(t.Context(), api.Query{Status: rules.StatusOpen})
	if len(open) == 0 || !intrusion(&open[0]) || len(open) != len(byID)-noise {
		for _, in := range open {
			t.Logf("still open: %s", in.Summary)
		}
		t.Fatalf("%d open after silencing, want only the intrusion", len(open))
	}
	t.Logf("admin day: %d incidents (%d noise, %d intrusion) silenced in the UI with %d keypresses", len(byID), noise, len(byID)-noise, keys)
	if keys > 3*noise {
		t.Errorf("%d keys for %d noise incidents", keys, noise)
	}
}

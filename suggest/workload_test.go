package suggest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// adminWorkload is the ordinary admin day as the sensor reports
// it: package installs (apt's temporary gpg script in /tmp), a
// configure-and-make build in /tmp (a configure script, conftest programs
// rebuilt for every check, test programs, the built program) and one in
// /root, go build and go test, sudo and su by the admin alice, daemon
// restarts. Among them, one real intrusion: a payload run from /dev/shm
// by the web server's user. Each step is one exec or escalation event.
func adminWorkload(t0 time.Time) []event.Event {
	var evs []event.Event
	at := t0
	next := func() time.Time { at = at.Add(7 * time.Second); return at }
	sha := func(s string) string { return fmt.Sprintf("%064x", []byte(s)) }
	exec := func(uid uint32, exe, script, hash string, args ...string) {
		ev := event.Event{Type: event.TypeExec, Time: next(), PID: 1000 + uint32(len(evs)), PPID: 1, UID: uid, EUID: uid,
			Exe: event.Text(exe), Filename: event.Text(exe), Comm: event.Text(baseOf(exe)), Outcome: event.Success,
			ExeOwner: event.Uint32(0), ExeSHA256: hash, Script: event.Text(script)}
		if script != "" {
			ev.Filename, ev.Comm = event.Text(script), event.Text(baseOf(script))
		}
		for _, a := range append([]string{exe}, args...) {
			ev.Args = append(ev.Args, event.Text(a))
		}
		evs = append(evs, ev)
	}
	escalate := func(exe string, args ...string) {
		ev := event.Event{Type: event.TypeEscalation, Time: next(), PID: 1000 + uint32(len(evs)), PPID: 1, UID: 1000, EUID: 0,
			Exe: event.Text(exe), Comm: event.Text(baseOf(exe)), Outcome: event.Success, Method: event.MethodSuidExec,
			OldUID: event.Uint32(1000), OldEUID: event.Uint32(1000), NewUID: event.Uint32(1000), NewEUID: event.Uint32(0),
			ExeOwner: event.Uint32(0), ExeSHA256: sha(exe)}
		for _, a := range append([]string{exe}, args...) {
			ev.Args = append(ev.Args, event.Text(a))
		}
		evs = append(evs, ev)
	}
	const src = "/tmp/build/hello-2.12/"
	// Package installs and daemon restarts.
	escalate("/usr/bin/sudo", "apt-get", "install", "-y", "nginx")
	exec(0, "/usr/bin/apt-get", "", sha("apt-get"), "install", "-y", "nginx")
	exec(0, "/usr/bin/dash", "/tmp/apt-key-gpghome.Xa1/gpg.1.sh", sha("dash"), "--list-keys")
	exec(0, "/usr/bin/dash", "/var/lib/dpkg/info/nginx-common.postinst", sha("dash"), "configure")
	exec(0, "/usr/bin/systemctl", "", sha("systemctl"), "restart", "nginx")
	escalate("/usr/bin/sudo", "systemctl", "restart", "nginx")
	exec(0, "/usr/bin/systemctl", "", sha("systemctl"), "restart", "ssh")
	// A build in /tmp, as root after su.
	escalate("/usr/bin/su", "-")
	exec(0, "/usr/bin/dash", src+"configure", sha("dash"), "--prefix=/usr/local")
	for i := range 6 {
		exec(0, src+"conftest", "", sha(fmt.Sprintf("conftest %d", i)))
	}
	exec(0, "/usr/bin/make", "", sha("make"), "check")
	for _, t := range []string{"test-greeting", "test-traditional", "test-version"} {
		exec(0, src+"tests/"+t, "", sha(t))
	}
	exec(0, src+"hello", "", sha("hello"), "--version")
	exec(0, src+"hello", "", sha("hello"), "--greeting=hi")
	exec(0, "/usr/bin/dash", src+"build-aux/install-sh", sha("dash"), "-c", "hello", "/usr/local/bin")
	// The same build in /root: not a writable place, nothing to see.
	exec(0, "/root/src/hello-2.12/conftest", "", sha("root conftest"))
	exec(0, "/root/src/hello-2.12/hello", "", sha("root hello"), "--version")
	// go build and go test, as root.
	exec(0, "/tmp/go-build2861/b001/exe/hello", "", sha("go run"))
	exec(0, "/tmp/go-build2862/b001/hello.test", "", sha("go test"), "-test.v")
	// More sudo.
	escalate("/usr/bin/sudo", "-i")
	escalate("/usr/bin/sudo", "journalctl", "-u", "nginx")
	escalate("/usr/bin/sudo", "systemctl", "restart", "nginx")
	// The intrusion.
	exec(33, "/dev/shm/.x/kworker", "", sha("payload"), "-c", "203.0.113.9:443")
	return evs
}

func baseOf(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// TestSilenceAdminNoise measures the Noise screen's suggestions on the
// admin workload with the default rules: an operator opens the screen,
// applies the top suggestion that covers only noise (one key, then one to
// confirm), moves past one that would cover the intrusion, and repeats
// until only the intrusion is open. It counts the keys.
func TestSilenceAdminNoise(t *testing.T) {
	set, err := rules.LoadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := rules.NewEngine(set, rules.EngineOptions{Host: "h", Mounts: rules.HostMounts{MntNS: 1, RootDev: 1}})
	byID := map[rules.ID]rules.Incident{}
	var order []rules.ID
	for _, ev := range adminWorkload(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)) {
		for _, inc := range e.Evaluate(&ev) {
			if _, seen := byID[inc.ID]; !seen {
				order = append(order, inc.ID)
			}
			byID[inc.ID] = inc
		}
	}
	real := func(inc *rules.Incident) bool { return strings.HasPrefix(string(inc.Process.Exe), "/dev/shm/") }
	noise, intrusions := 0, 0
	for _, id := range order {
		inc := byID[id]
		if real(&inc) {
			intrusions++
		} else {
			noise++
		}
		t.Logf("incident %-22s %s", inc.Rule, inc.Summary)
	}
	if intrusions == 0 || noise < 10 {
		t.Fatalf("the workload raised %d noise incidents and %d intrusions; the fixture no longer matches the default rules", noise, intrusions)
	}

	keys, applied := 1, 0 // one key opens the Noise screen
	for {
		var open []rules.Incident
		for _, id := range order {
			if byID[id].Status == rules.StatusOpen {
				open = append(open, byID[id])
			}
		}
		pick := -1
		for i, sg := range FromIncidents(open, 0) {
			covers, onlyNoise, any := sg.Skip.Coverer(), true, false
			for j := range open {
				if covers(&open[j]) {
					any = true
					onlyNoise = onlyNoise && !real(&open[j])
				}
			}
			if any && onlyNoise {
				pick = i
				keys += i + 2 // move down past the rows left alone, apply, confirm
				covers := sg.Skip.Coverer()
				for _, id := range order {
					if inc := byID[id]; inc.Status == rules.StatusOpen && covers(&inc) {
						inc.Status = rules.StatusMasked
						byID[id] = inc
					}
				}
				applied++
				t.Logf("apply %s %s%s (%d incidents) %v", sg.Skip.Kind, sg.Skip.Value, forRule(sg.Skip.Rule), sg.Count, sg.Warnings)
				break
			}
		}
		if pick < 0 {
			break
		}
	}
	for _, id := range order {
		inc := byID[id]
		if real(&inc) != (inc.Status == rules.StatusOpen) {
			t.Errorf("after the suggestions: %s is %s", inc.Summary, inc.Status)
		}
	}
	t.Logf("admin workload: %d incidents (%d noise, %d intrusion); silenced with %d suggestions in %d keypresses",
		noise+intrusions, noise, intrusions, applied, keys)
	if applied >= noise || keys > 2*noise {
		t.Errorf("%d keys for %d noise incidents: suggestions should save keys, not cost them", keys, noise)
	}
}

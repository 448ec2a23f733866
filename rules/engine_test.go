package rules

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

// doc builds a rules file from a global skip block and rule entries.
func doc(globalSkip, rules string) string {
	s := "version: 1\n"
	if globalSkip != "" {
		s += "skip: " + globalSkip + "\n"
	}
	return s + "rules:\n" + rules
}

const (
	execTmp = `
  - name: exec-tmp
    type: bin-execution
    match: {paths: ["/tmp/**"]}
    severity: {success: high, failure: medium}
`
	escalation = `
  - name: root
    type: root-escalation
    severity: {success: high, failure: critical}
`
	execOpt = `
  - name: opt
    type: bin-execution
    match: {paths: ["/opt/**"]}
    severity: {success: high, failure: medium}
`
	crashes = `
  - name: crash
    type: termination-failure
    severity: {failure: medium}
`
)

func with(ev *event.Event, f func(*event.Event)) *event.Event { f(ev); return ev }

// verdict renders what Judge decided as "rule:severity ... skipped=N".
func verdict(v Verdict) string {
	var parts []string
	for _, inc := range v.Incidents {
		parts = append(parts, inc.Rule+":"+inc.Severity.String())
	}
	parts = append(parts, fmt.Sprintf("skipped=%d", v.Skipped))
	return strings.Join(parts, " ")
}

func TestJudge(t *testing.T) {
	testUsers(t)
	failedExec := func(ev *event.Event) {
		ev.Outcome, ev.Errno = event.Failure, "EACCES"
		ev.Exe, ev.Comm = "/usr/bin/bash", "bash"
	}
	tests := []struct {
		name  string
		rules string
		ev    *event.Event
		want  string
	}{
		// Types and outcomes.
		{"exec success", doc("", execTmp), execEvent("/tmp/x", 1000), "exec-tmp:high skipped=0"},
		{"exec failure judged on the requested file", doc("", execTmp),
			with(execEvent("/tmp/x", 1000), failedExec), "exec-tmp:medium skipped=0"},
		{"failed exec path is cleaned", doc("", execTmp),
			with(execEvent("/usr/bin/../../tmp/x", 1000), failedExec), "exec-tmp:medium skipped=0"},
		{"exec outside selector", doc("", execTmp), execEvent("/usr/bin/ls", 1000), "skipped=0"},
		{"exec rule ignores exits", doc("", execTmp), exitEvent("/tmp/x", 1, ""), "skipped=0"},
		{"escalation success", doc("", escalation), escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "root:high skipped=0"},
		{"escalation failure", doc("", escalation), escalationEvent("/tmp/x", 65534, event.MethodSetuid, event.Failure), "root:critical skipped=0"},
		{"escalation rule ignores execs", doc("", escalation), execEvent("/usr/bin/sudo", 1000), "skipped=0"},
		{"exit code 0 is success, none by default", doc("", crashes), exitEvent("/usr/bin/true", 0, ""), "skipped=0"},
		{"non-zero exit is failure", doc("", crashes), exitEvent("/usr/bin/false", 1, ""), "crash:medium skipped=0"},
		{"signal death is failure", doc("", crashes), exitEvent("/usr/bin/x", 0, "SIGKILL"), "crash:medium skipped=0"},
		{"success severity audits clean exits", doc("", `
  - name: audit
    type: termination-failure
    match: {paths: [/usr/bin/true]}
    severity: {success: info, failure: low}
`), exitEvent("/usr/bin/true", 0, ""), "audit:info skipped=0"},
		{"outcome derived when the capture has none", doc("", crashes),
			with(exitEvent("/usr/bin/x", 0, "SIGSEGV"), func(ev *event.Event) { ev.Outcome = "" }), "crash:medium skipped=0"},
		{"both outcomes none raise nothing", doc("", `
  - name: off
    type: bin-execution
    severity: {success: none, failure: none}
`), execEvent("/tmp/x", 1000), "skipped=0"},

		// Termination selectors: exit_codes and signals together describe how
		// the process ended.
		{"signal selected", doc("", `
  - name: sig
    type: termination-failure
    match: {signals: [SIGSEGV, SIGABRT], exit_codes: [3]}
    severity: {failure: high}
`), exitEvent("/usr/bin/x", 0, "SIGSEGV"), "sig:high skipped=0"},
		{"signal not selected", doc("", `
  - name: sig
    type: termination-failure
    match: {signals: [SIGSEGV], exit_codes: [3]}
    severity: {failure: high}
`), exitEvent("/usr/bin/x", 0, "SIGTERM"), "skipped=0"},
		{"exit code selected", doc("", `
  - name: code
    type: termination-failure
    match: {signals: [SIGSEGV], exit_codes: [3]}
    severity: {failure: high}
`), exitEvent("/usr/bin/x", 3, ""), "code:high skipped=0"},
		{"exit code not selected", doc("", `
  - name: code
    type: termination-failure
    match: {exit_codes: [3]}
    severity: {failure: high}
`), exitEvent("/usr/bin/x", 4, ""), "skipped=0"},

		// Selectors.
		{"plain path selector covers its tree", doc("", `
  - name: p
    type: bin-execution
    match: {paths: [/opt/app]}
    severity: {success: low}
`), execEvent("/opt/app/bin/x", 1000), "p:low skipped=0"},
		{"plain path selector stops at directory boundary", doc("", `
  - name: p
    type: bin-execution
    match: {paths: [/opt/app]}
    severity: {success: low}
`), execEvent("/opt/app2/x", 1000), "skipped=0"},
		{"single star stays in one directory", doc("", `
  - name: p
    type: bin-execution
    match: {paths: ["/opt/*/x"]}
    severity: {success: low}
`), execEvent("/opt/a/b/x", 1000), "skipped=0"},
		{"memfd glob", doc("", `
  - name: p
    type: bin-execution
    match: {paths: ["/memfd:*"]}
    severity: {success: low}
`), execEvent("/memfd:payload (deleted)", 1000), "p:low skipped=0"},
		{"command by exe base name", doc("", `
  - name: c
    type: bin-execution
    match: {commands: [dash]}
    severity: {success: low}
`), with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) { ev.Comm = "sh" }), "c:low skipped=0"},
		{"command by comm", doc("", `
  - name: c
    type: bin-execution
    match: {commands: [sh]}
    severity: {success: low}
`), with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) { ev.Comm = "sh" }), "c:low skipped=0"},
		{"command is exact, not a prefix", doc("", `
  - name: c
    type: bin-execution
    match: {commands: [sh]}
    severity: {success: low}
`), execEvent("/usr/bin/ssh", 1000), "skipped=0"},
		{"user by name", doc("", `
  - name: u
    type: bin-execution
    match: {users: [alice]}
    severity: {success: low}
`), execEvent("/usr/bin/id", 1000), "u:low skipped=0"},
		{"user by uid", doc("", `
  - name: u
    type: bin-execution
    match: {users: ["1001"]}
    severity: {success: low}
`), execEvent("/usr/bin/id", 1001), "u:low skipped=0"},
		{"other user", doc("", `
  - name: u
    type: bin-execution
    match: {users: [alice, 0]}
    severity: {success: low}
`), execEvent("/usr/bin/id", 1001), "skipped=0"},
		{"escalation user is the one before", doc("", `
  - name: u
    type: root-escalation
    match: {users: [nobody]}
    severity: {failure: critical}
`), escalationEvent("/tmp/x", 65534, event.MethodSetuid, event.Failure), "u:critical skipped=0"},
		{"parent command from parent_exe", doc("", `
  - name: web-shell
    type: bin-execution
    match: {commands: [sh], parent_commands: [nginx]}
    severity: {success: high}
`), with(execEvent("/usr/bin/dash", 33), func(ev *event.Event) { ev.Comm = "sh"; ev.ParentExe = "/usr/sbin/nginx" }), "web-shell:high skipped=0"},
		{"parent command from ancestors", doc("", `
  - name: web-shell
    type: bin-execution
    match: {parent_commands: [nginx]}
    severity: {success: high}
`), with(execEvent("/usr/bin/dash", 33), func(ev *event.Event) {
			ev.Ancestors = []event.Ancestor{{PID: 10, Exe: "/usr/sbin/nginx"}, {PID: 1, Exe: "/sbin/init"}}
		}), "web-shell:high skipped=0"},
		{"other parent", doc("", `
  - name: web-shell
    type: bin-execution
    match: {parent_commands: [nginx]}
    severity: {success: high}
`), with(execEvent("/usr/bin/dash", 33), func(ev *event.Event) { ev.ParentExe = "/usr/sbin/sshd" }), "skipped=0"},
		{"in a container", doc("", `
  - name: ctr
    type: bin-execution
    match: {container: true}
    severity: {success: low}
`), with(execEvent("/usr/bin/x", 0), func(ev *event.Event) { ev.ContainerID = "0123abcd" }), "ctr:low skipped=0"},
		{"not in a container", doc("", `
  - name: ctr
    type: bin-execution
    match: {container: true}
    severity: {success: low}
`), execEvent("/usr/bin/x", 0), "skipped=0"},
		{"host only", doc("", `
  - name: host
    type: bin-execution
    match: {container: false}
    severity: {success: low}
`), execEvent("/usr/bin/x", 0), "host:low skipped=0"},
		{"image glob matches", doc("", `
  - name: img
    type: bin-execution
    match: {images: ["**/nginx:*"]}
    severity: {success: low}
`), with(execEvent("/usr/bin/x", 0), func(ev *event.Event) {
			ev.ContainerID, ev.ContainerImage = "0123abcd", "docker.io/library/nginx:1.27"
		}), "img:low skipped=0"},
		{"other image", doc("", `
  - name: img
    type: bin-execution
    match: {images: ["**/nginx:*"]}
    severity: {success: low}
`), with(execEvent("/usr/bin/x", 0), func(ev *event.Event) {
			ev.ContainerID, ev.ContainerImage = "0123abcd", "docker.io/library/redis:7"
		}), "skipped=0"},
		{"image not known yet is in scope", doc("", `
  - name: img
    type: bin-execution
    match: {images: ["**/nginx:*"]}
    severity: {success: low}
`), with(execEvent("/usr/bin/x", 0), func(ev *event.Event) { ev.ContainerID = "0123abcd" }), "img:low skipped=0"},
		{"images never match the host", doc("", `
  - name: img
    type: bin-execution
    match: {images: ["**"]}
    severity: {success: low}
`), execEvent("/usr/bin/x", 0), "skipped=0"},
		{"every selector must match", doc("", `
  - name: all
    type: bin-execution
    match: {paths: ["/tmp/**"], users: [bob]}
    severity: {success: low}
`), execEvent("/tmp/x", 1000), "skipped=0"},

		// Skips.
		{"global skip command", doc("{commands: [x]}", execOpt), execEvent("/opt/x", 1000), "skipped=1"},
		{"skip command is judged on the exe, never the comm", doc("{commands: [nice]}", execOpt),
			with(execEvent("/opt/x", 1000), func(ev *event.Event) { ev.Comm = "nice" }), "opt:high skipped=0"},
		{"skip command longer than comm does not match a cut comm", doc("{commands: [unattended-upgrade-helper]}", execOpt),
			with(execEvent("/opt/bin/python3.12", 1000), func(ev *event.Event) { ev.Comm = "unattended-upgr" }), "opt:high skipped=0"},
		{"skip command longer than comm matches the exe in full", doc("{commands: [unattended-upgrade-helper]}", execOpt),
			execEvent("/opt/unattended-upgrade-helper", 1000), "skipped=1"},
		{"cut comm does not match a short exe name", doc("{commands: [unattended-upgrade-helper]}", execOpt),
			with(execEvent("/opt/unattended-upgr", 1000), func(ev *event.Event) { ev.Comm = "other" }), "opt:high skipped=0"},
		{"skip command never silences a binary in /tmp", doc("{commands: [x]}", execTmp), execEvent("/tmp/x", 1000), "exec-tmp:high skipped=0"},
		{"skip command never silences a memfd", doc("{commands: [x]}", doc("", `
  - name: mem
    type: bin-execution
    match: {paths: ["/memfd:*"]}
    severity: {success: high}
`)[len("version: 1\nrules:\n"):]), execEvent("/memfd:x (deleted)", 1000), "mem:high skipped=0"},
		{"skip command never silences a binary on tmpfs", doc("{commands: [x]}", execOpt),
			with(execEvent("/opt/x", 1000), func(ev *event.Event) { ev.ExeFS = "tmpfs" }), "opt:high skipped=0"},
		{"skip command on a script judges the script", doc("{commands: [run.sh]}", execOpt),
			with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) { ev.Script = "/opt/app/run.sh" }), "skipped=1"},
		{"skip command on a script ignores the interpreter", doc("{commands: [dash]}", execOpt),
			with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) { ev.Script = "/opt/app/run.sh" }), "opt:high skipped=0"},
		{"global skip path prefix", doc("{paths: [/tmp/build]}", execTmp), execEvent("/tmp/build/cc1", 1000), "skipped=1"},
		{"global skip path with trailing slash", doc("{paths: [/tmp/build/]}", execTmp), execEvent("/tmp/build/cc1", 1000), "skipped=1"},
		{"skip path exact file", doc("{paths: [/tmp/build/cc1]}", execTmp), execEvent("/tmp/build/cc1", 1000), "skipped=1"},
		{"skip path prefix boundary", doc("{paths: [/tmp/build]}", execTmp), execEvent("/tmp/build2/cc1", 1000), "exec-tmp:high skipped=0"},
		{"skip path glob", doc(`{paths: ["/tmp/go-build*/**"]}`, execTmp), execEvent("/tmp/go-build123/b001/x.test", 1000), "skipped=1"},
		{"skip path glob miss", doc(`{paths: ["/tmp/go-build*/*.test"]}`, execTmp), execEvent("/tmp/go-build123/b001/x.test", 1000), "exec-tmp:high skipped=0"},
		{"skip user by name", doc("{users: [alice]}", execTmp), execEvent("/tmp/x", 1000), "skipped=1"},
		{"skip user by uid", doc(`{users: ["1000"]}`, execTmp), execEvent("/tmp/x", 1000), "skipped=1"},
		{"skip other user", doc(`{users: [bob, "0"]}`, execTmp), execEvent("/tmp/x", 1000), "exec-tmp:high skipped=0"},
		{"rule skip", doc("", execTmp+"    skip: {paths: [/tmp/ok]}\n"), execEvent("/tmp/ok/x", 1000), "skipped=1"},
		{"rule skip only on its rule", doc("", execTmp+"    skip: {paths: [/tmp/ok]}\n"+strings.ReplaceAll(execTmp, "exec-tmp", "exec-tmp2")),
			execEvent("/tmp/ok/x", 1000), "exec-tmp2:high skipped=1"},
		{"global skip applies to exits", doc("{commands: [x]}", crashes), exitEvent("/usr/bin/x", 0, "SIGSEGV"), "skipped=1"},

		// A truncated path (deeper than the sensor walks) is judged in scope
		// of path selectors and is never skipped by a path.
		{"truncated exe is in scope", doc("", execTmp), execEvent("…/a/a/a/evil", 1000), "exec-tmp:high skipped=0"},
		{"truncated exe is not skipped by path", doc(`{paths: ["/", "**/evil"]}`, execTmp), execEvent("…/a/a/a/evil", 1000), "exec-tmp:high skipped=0"},
		{"truncated exe is not skipped by command either", doc("{commands: [evil]}", execTmp), execEvent("…/a/a/a/evil", 1000), "exec-tmp:high skipped=0"},

		// A global skip never hides a root escalation; a skip on the
		// escalation rule does.
		{"global skip path does not hide sudo escalation", doc("{paths: [/usr/bin]}", escalation),
			escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "root:high skipped=0"},
		{"global skip command does not hide sudo escalation", doc("{commands: [sudo]}", escalation),
			escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "root:high skipped=0"},
		{"global skip user does not hide escalation", doc("{users: [alice]}", escalation),
			escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "root:high skipped=0"},
		{"skip on the escalation rule hides sudo", doc("", escalation+"    skip: {paths: [/usr/bin/sudo]}\n"),
			escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "skipped=1"},
		{"skip on the escalation rule is exact about the path", doc("", escalation+"    skip: {paths: [/usr/bin/sudo]}\n"),
			escalationEvent("/usr/bin/sudoedit", 1000, event.MethodSuidExec, event.Success), "root:high skipped=0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(mustParse(t, tc.rules), EngineOptions{Host: "h"})
			if got := verdict(e.Judge(tc.ev)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAddedSkips(t *testing.T) {
	testUsers(t)
	set := mustParse(t, doc("", execTmp+escalation))
	sudo := escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success)
	tmp := execEvent("/tmp/x", 1000)
	tests := []struct {
		name     string
		skips    []Skip
		sudo     string
		tmp      string
		wantErr  bool
		numSkips int
	}{
		{"none", nil, "root:high skipped=0", "exec-tmp:high skipped=0", false, 0},
		{"global path", []Skip{{Kind: SkipPath, Value: "/tmp", Source: SourceAdded}, {Kind: SkipPath, Value: "/usr/bin", Source: SourceAdded}},
			"root:high skipped=0", "skipped=1", false, 2},
		{"for the escalation rule", []Skip{{Kind: SkipCommand, Value: "sudo", Rule: "root", Source: SourceAdded}},
			"skipped=1", "exec-tmp:high skipped=0", false, 1},
		{"for another rule", []Skip{{Kind: SkipUser, Value: "alice", Rule: "exec-tmp", Source: SourceAdded}},
			"root:high skipped=0", "skipped=1", false, 1},
		{"for a rule that does not exist", []Skip{{Kind: SkipUser, Value: "alice", Rule: "nope", Source: SourceAdded}},
			"root:high skipped=0", "exec-tmp:high skipped=0", false, 1},
		{"invalid ones are left out", []Skip{{Kind: "pid", Value: "1"}, {Kind: SkipPath, Value: "tmp"}, {Kind: SkipUser, Value: "alice", Rule: "exec-tmp"}},
			"root:high skipped=0", "skipped=1", true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(set, EngineOptions{Host: "h", DedupWindow: -1})
			err := e.SetAddedSkips(tc.skips)
			if (err != nil) != tc.wantErr {
				t.Fatalf("SetAddedSkips error = %v, want error %v", err, tc.wantErr)
			}
			if got := verdict(e.Judge(sudo)); got != tc.sudo {
				t.Errorf("sudo: got %q, want %q", got, tc.sudo)
			}
			if got := verdict(e.Judge(tmp)); got != tc.tmp {
				t.Errorf("tmp: got %q, want %q", got, tc.tmp)
			}
			added := 0
			for _, s := range e.Skips() {
				if s.Source == SourceAdded {
					added++
				}
			}
			if added != tc.numSkips {
				t.Errorf("Skips lists %d added skips, want %d", added, tc.numSkips)
			}
		})
	}
}

func TestSkipsListSources(t *testing.T) {
	set := mustParse(t, doc("{commands: [nice], paths: [/usr/lib/apt], users: [backup]}", execTmp+"    skip: {paths: [/tmp/ok]}\n"))
	e := NewEngine(set, EngineOptions{Host: "h"})
	if err := e.SetAddedSkips([]Skip{{ID: "7", Kind: SkipCommand, Value: "make", Source: SourceAdded, Note: "build noise"}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range e.Skips() {
		got = append(got, fmt.Sprintf("%s %s=%s rule=%q", s.Source, s.Kind, s.Value, s.Rule))
	}
	want := []string{
		`rules.yaml command=nice rule=""`,
		`rules.yaml path=/usr/lib/apt rule=""`,
		`rules.yaml user=backup rule=""`,
		`rules.yaml path=/tmp/ok rule="exec-tmp"`,
		`added command=make rule=""`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Skips:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSkipCovers(t *testing.T) {
	testUsers(t)
	e := NewEngine(mustParse(t, doc("", execTmp+escalation)), EngineOptions{Host: "h"})
	tmpInc := e.Evaluate(execEvent("/tmp/x", 1000))[0]
	sudoInc := e.Evaluate(escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success))[0]
	tests := []struct {
		skip      Skip
		tmp, sudo bool
	}{
		{Skip{Kind: SkipPath, Value: "/tmp"}, true, false},
		{Skip{Kind: SkipPath, Value: "/usr/bin"}, false, false},
		{Skip{Kind: SkipPath, Value: "/usr/bin", Rule: "root"}, false, true},
		{Skip{Kind: SkipCommand, Value: "sudo", Rule: "exec-tmp"}, false, false},
		{Skip{Kind: SkipUser, Value: "alice"}, true, false},
		{Skip{Kind: SkipUser, Value: "1000", Rule: "root"}, false, true},
		{Skip{Kind: SkipPath, Value: "/tm"}, false, false},
		{Skip{Kind: "bogus", Value: "/tmp"}, false, false},
	}
	for _, tc := range tests {
		if got := tc.skip.Covers(&tmpInc); got != tc.tmp {
			t.Errorf("%+v covers /tmp/x incident = %v, want %v", tc.skip, got, tc.tmp)
		}
		if got := tc.skip.Covers(&sudoInc); got != tc.sudo {
			t.Errorf("%+v covers sudo incident = %v, want %v", tc.skip, got, tc.sudo)
		}
	}
}

func TestIncidentFields(t *testing.T) {
	testUsers(t)
	e := NewEngine(mustParse(t, doc("", escalation)), EngineOptions{Host: "web1"})
	ev := escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success)
	incs := e.Evaluate(ev)
	if len(incs) != 1 {
		t.Fatalf("got %d incidents, want 1", len(incs))
	}
	inc := incs[0]
	if inc.Host != "web1" || inc.Rule != "root" || inc.Type != TypeRootEscalation || inc.Outcome != event.Success ||
		inc.Severity != SeverityHigh || inc.Status != StatusOpen || inc.Count != 1 ||
		!inc.Time.Equal(t0) || !inc.FirstSeen.Equal(t0) || !inc.LastSeen.Equal(t0) || inc.ID == 0 {
		t.Errorf("unexpected incident %+v", inc)
	}
	if inc.Summary != "uid 1000 (alice) ran set-uid /usr/bin/sudo, gaining uid 0 and euid 0" {
		t.Errorf("summary %q", inc.Summary)
	}
	// The incident owns its copy of the event.
	*ev.OldUID = 5
	if *inc.Process.OldUID != 1000 {
		t.Error("incident shares OldUID with the event")
	}
	// An event without a time gets the engine clock.
	now := t0.Add(time.Hour)
	e2 := NewEngine(mustParse(t, doc("", execTmp)), EngineOptions{Host: "h", Now: func() time.Time { return now }})
	ev2 := execEvent("/tmp/x", 1000)
	ev2.Time = time.Time{}
	if inc := e2.Evaluate(ev2)[0]; !inc.Time.Equal(now) {
		t.Errorf("time %v, want %v", inc.Time, now)
	}
}

func TestSummaries(t *testing.T) {
	testUsers(t)
	set := mustParse(t, `version: 1
rules:
  - {name: x, type: bin-execution, severity: {success: low, failure: low}}
  - {name: r, type: root-escalation, severity: {success: low, failure: low}}
  - {name: t, type: termination-failure, severity: {success: low, failure: low}}
`)
	failedExec := with(execEvent("/tmp/x", 1000), func(ev *event.Event) { ev.Outcome, ev.Errno = event.Failure, "EACCES" })
	tests := []struct {
		ev   *event.Event
		want string
	}{
		{execEvent("/dev/shm/x", 1000), "/dev/shm/x executed by uid 1000 (alice)"},
		{execEvent("/dev/shm/x", 4242), "/dev/shm/x executed by uid 4242"},
		{failedExec, "uid 1000 (alice) failed to execute /tmp/x (EACCES)"},
		{escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "uid 1000 (alice) ran set-uid /usr/bin/sudo, gaining uid 0 and euid 0"},
		{with(escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), func(ev *event.Event) {
			ev.UID, ev.NewUID, ev.Args = 1000, event.Uint32(1000), []event.Text{"sudo", "-n", "true"}
		}), "uid 1000 (alice) ran set-uid /usr/bin/sudo, gaining euid 0: sudo -n true"},
		{with(escalationEvent("/usr/bin/passwd", 1000, event.MethodSuidExec, event.Success), func(ev *event.Event) {
			ev.Args = []event.Text{"passwd", event.Text(strings.Repeat("a", 200))}
		}), "uid 1000 (alice) ran set-uid /usr/bin/passwd, gaining uid 0 and euid 0: passwd " + strings.Repeat("a", 153) + "…"},
		{escalationEvent("/tmp/x", 65534, event.MethodSetuid, event.Failure), "uid 65534 (nobody) was refused root via setuid (EPERM) in /tmp/x"},
		{escalationEvent("/tmp/x", 1000, event.MethodUnexplained, event.Success), "uid 1000 (alice) gained uid 0 and euid 0 without a known cause in /tmp/x"},
		{with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) { ev.Script = "/tmp/x.sh" }), "/usr/bin/dash ran script /tmp/x.sh executed by uid 1000 (alice)"},
		{with(exitEvent("/usr/bin/make", 2, ""), func(ev *event.Event) { ev.Args = []event.Text{"make", "-j2"} }), "/usr/bin/make exited with code 2: make -j2"},
		{with(exitEvent("/tmp/evil", 0, "SIGSEGV"), func(ev *event.Event) { ev.CoreDumped = true }), "/tmp/evil exited on SIGSEGV (core dumped)"},
		{exitEvent("/usr/bin/false", 1, ""), "/usr/bin/false exited with code 1"},
		{exitEvent("/usr/bin/true", 0, ""), "/usr/bin/true exited normally"},
	}
	for _, tc := range tests {
		e := NewEngine(set, EngineOptions{Host: "h"})
		incs := e.Evaluate(tc.ev)
		if len(incs) != 1 {
			t.Fatalf("%s: %d incidents", tc.want, len(incs))
		}
		if string(incs[0].Summary) != tc.want {
			t.Errorf("summary %q, want %q", incs[0].Summary, tc.want)
		}
	}
}

// anyExec selects by user, not by location: its incidents are keyed on
// the exe and its arguments.
const anyExec = `
  - name: alice-exec
    type: bin-execution
    match: {users: [alice, bob]}
    severity: {success: high, failure: medium}
`

func TestDedup(t *testing.T) {
	testUsers(t)
	set := mustParse(t, doc("", anyExec))
	at := func(ev *event.Event, d time.Duration) *event.Event { ev.Time = t0.Add(d); return ev }
	e := NewEngine(set, EngineOptions{Host: "h", DedupWindow: time.Minute})

	first := e.Evaluate(at(execEvent("/tmp/x", 1000), 0))[0]
	again := e.Evaluate(at(execEvent("/tmp/x", 1000), 10*time.Second))[0]
	if again.ID != first.ID || again.Count != 2 || !again.FirstSeen.Equal(t0) || !again.LastSeen.Equal(t0.Add(10*time.Second)) {
		t.Errorf("repeat: got id %v count %d first %v last %v; want id %v count 2", again.ID, again.Count, again.FirstSeen, again.LastSeen, first.ID)
	}
	if !again.Time.Equal(first.Time) {
		t.Errorf("repeat moved the incident time")
	}
	if again.Distinct != 0 || again.Sample != nil || again.Scope != "" {
		t.Errorf("a rule without paths does not aggregate: %+v", again)
	}

	// Each part of the key separates incidents.
	distinct := []*event.Event{
		with(execEvent("/tmp/x", 1000), func(ev *event.Event) { ev.Args = append(ev.Args, "-v") }),
		execEvent("/tmp/x", 1001),
		execEvent("/tmp/y", 1000),
		with(execEvent("/tmp/x", 1000), func(ev *event.Event) { ev.Outcome = event.Failure; ev.Filename = "/tmp/x" }),
		with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) { ev.Script = "/tmp/x" }),
	}
	for i, ev := range distinct {
		inc := e.Evaluate(at(ev, 20*time.Second))[0]
		if inc.ID == first.ID || inc.Count != 1 {
			t.Errorf("distinct event %d aggregated into %v (count %d)", i, inc.ID, inc.Count)
		}
	}

	// The window runs from the first sighting: past it, a new incident.
	later := e.Evaluate(at(execEvent("/tmp/x", 1000), 61*time.Second))[0]
	if later.ID == first.ID || later.Count != 1 {
		t.Errorf("after the window: id %v count %d, want a new incident", later.ID, later.Count)
	}
	if later.ID <= first.ID {
		t.Errorf("ids not time-ordered: %v then %v", first.ID, later.ID)
	}

	// Another rule never aggregates with this one.
	two := NewEngine(mustParse(t, doc("", anyExec+strings.ReplaceAll(anyExec, "alice-exec", "other"))), EngineOptions{Host: "h"})
	incs := two.Evaluate(at(execEvent("/tmp/x", 1000), 0))
	if len(incs) != 2 || incs[0].ID == incs[1].ID {
		t.Errorf("two rules: %+v", incs)
	}

	// Disabled dedup raises every time.
	off := NewEngine(set, EngineOptions{Host: "h", DedupWindow: -1})
	a := off.Evaluate(at(execEvent("/tmp/x", 1000), 0))[0]
	b := off.Evaluate(at(execEvent("/tmp/x", 1000), time.Second))[0]
	if a.ID == b.ID || b.Count != 1 {
		t.Errorf("dedup off: ids %v %v count %d", a.ID, b.ID, b.Count)
	}
}

func TestDedupSweep(t *testing.T) {
	testUsers(t)
	e := NewEngine(mustParse(t, doc("", anyExec)), EngineOptions{Host: "h", DedupWindow: time.Minute})
	for i := range 100 {
		ev := execEvent(fmt.Sprintf("/tmp/x%d", i), 1000)
		e.Evaluate(ev)
	}
	if len(e.dedup) != 100 {
		t.Fatalf("dedup holds %d, want 100", len(e.dedup))
	}
	ev := execEvent("/tmp/late", 1000)
	ev.Time = t0.Add(2 * time.Minute)
	e.Evaluate(ev)
	if len(e.dedup) != 1 {
		t.Errorf("after the window the dedup table holds %d entries, want 1", len(e.dedup))
	}
}

func TestSetRulesKeepsDedup(t *testing.T) {
	testUsers(t)
	e := NewEngine(mustParse(t, doc("", execTmp)), EngineOptions{Host: "h"})
	first := e.Evaluate(execEvent("/tmp/x", 1000))[0]
	e.SetRules(mustParse(t, doc("", execTmp+escalation)))
	again := e.Evaluate(execEvent("/tmp/x", 1000))[0]
	if again.ID != first.ID || again.Count != 2 {
		t.Errorf("reload re-raised: %v count %d", again.ID, again.Count)
	}
	if n := len(e.Rules()); n != 2 {
		t.Errorf("Rules() has %d rules after reload, want 2", n)
	}
}

// TestSwapWhileEvaluating exercises the contract that skips and rules may
// be replaced from another goroutine while Evaluate runs (run with -race).
func TestSwapWhileEvaluating(t *testing.T) {
	testUsers(t)
	a := mustParse(t, doc("", execTmp))
	b := mustParse(t, doc("", execTmp+escalation))
	e := NewEngine(a, EngineOptions{Host: "h", DedupWindow: -1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if i%2 == 0 {
				e.SetRules(b)
				_ = e.SetAddedSkips([]Skip{{Kind: SkipPath, Value: "/tmp"}})
			} else {
				e.SetRules(a)
				_ = e.SetAddedSkips(nil)
			}
			_ = e.Skips()
		}
	}()
	for range 2000 {
		v := e.Judge(execEvent("/tmp/x", 1000))
		if len(v.Incidents)+v.Skipped != 1 {
			t.Fatalf("verdict %s: the event must be raised or skipped exactly once", verdict(v))
		}
	}
	<-done
}

func TestNewIDBefore1970DoesNotWrap(t *testing.T) {
	// Other tests may have handed out ids from a clock in the future, so only
	// the wrap itself is checked: negative nanoseconds as uint64 are >= 2^63.
	early := NewID(time.Unix(-5, 0))
	later := NewID(time.Now())
	if uint64(early) >= 1<<63 || later <= early {
		t.Fatalf("ids %d then %d", early, later)
	}
}

// TestSummaryKeepsExactBytes: the summary quotes process strings, so an
// exe that is not valid UTF-8 reaches JSON as \udcXX escapes, like the
// event itself, never as U+FFFD.
func TestSummaryKeepsExactBytes(t *testing.T) {
	testUsers(t)
	set := mustParse(t, `version: 1
rules:
  - name: tmp
    type: bin-execution
    match: {paths: ["/tmp/**"]}
    severity: {success: high, failure: medium}
`)
	e := NewEngine(set, EngineOptions{Host: "h"})
	incs := e.Evaluate(execEvent("/tmp/\xffevil", 1000))
	if len(incs) != 1 || !strings.Contains(string(incs[0].Summary), "/tmp/\xffevil") {
		t.Fatalf("incidents = %+v", incs)
	}
	b, err := json.Marshal(incs[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\ufffd") || strings.Contains(string(b), `\ufffd`) ||
		strings.Count(string(b), `/tmp/\udcffevil`) < 2 {
		t.Fatalf("incident JSON lost bytes: %s", b)
	}
	var back Incident
	if err := json.Unmarshal(b, &back); err != nil || back.Summary != incs[0].Summary {
		t.Fatalf("summary round trip: %q, %v", back.Summary, err)
	}
}

// TestJudgeNamesTheSkip: the verdict names the first suppressed rule and
// the kind of skip that suppressed it, which the pipeline passes on with
// the event (api.Envelope.Skip).
func TestJudgeNamesTheSkip(t *testing.T) {
	set := mustParse(t, doc("{paths: [/tmp/global]}", execTmp+"    skip: {paths: [/tmp/ok]}\n"))
	e := NewEngine(set, EngineOptions{Host: "h"})
	if err := e.SetAddedSkips([]Skip{{ID: "7", Kind: SkipPath, Value: "/tmp/added", Source: SourceAdded}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		exe  string
		want SkipHit
	}{
		{"/tmp/ok/x", SkipHit{Rule: "exec-tmp", By: SkipByRule}},
		{"/tmp/added/x", SkipHit{Rule: "exec-tmp", By: SkipByAdded}},
		{"/tmp/global/x", SkipHit{Rule: "exec-tmp", By: SkipByGlobal}},
		{"/tmp/other/x", SkipHit{}},
	}
	for _, tc := range tests {
		t.Run(tc.exe, func(t *testing.T) {
			v := e.Judge(execEvent(tc.exe, 1000))
			if v.Skip != tc.want || (v.Skipped > 0) != (tc.want != SkipHit{}) {
				t.Errorf("skip %+v (skipped %d), want %+v", v.Skip, v.Skipped, tc.want)
			}
		})
	}
}

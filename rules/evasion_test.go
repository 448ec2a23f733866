package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

// testHost is the mount identity the tests' engines compare against: the
// host's mount namespace and root device (stat encoding of 254:0).
var testHost = HostMounts{MntNS: 4026531840, RootDev: 0xfe00}

const privateNS = 4026532999

// onRoot gives ev the identity of a file on the host's root filesystem,
// seen from the host's mount namespace: what the sensor reports for an
// ordinary binary.
func onRoot(ev *event.Event) {
	ev.ExeOrigin, ev.ExeDev, ev.ExeFS, ev.MntNS, ev.ExeIno = ev.Exe, testHost.RootDev, "ext4", testHost.MntNS, 1234
	ev.ExeOwner = event.Uint32(0)
}

func engineFor(t testing.TB, src string) *Engine {
	t.Helper()
	return NewEngine(mustParse(t, src), EngineOptions{Host: "h", Mounts: testHost})
}

// TestDefaultRulesEvasions runs the tricks of issue 9 against the default
// rules: each must raise the incident it names (or none, for what is not
// an attack), at the severity the defaults promise.
func TestDefaultRulesEvasions(t *testing.T) {
	testUsers(t)
	set := defaultSet(t)
	loader := "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	loaderRun := func(cwd string, args ...event.Text) *event.Event {
		return with(execEvent(loader, 1000), func(ev *event.Event) {
			onRoot(ev)
			ev.Args, ev.Cwd = append([]event.Text{"/lib64/ld-linux-x86-64.so.2"}, args...), event.Text(cwd)
		})
	}
	tests := []struct {
		name string
		ev   *event.Event
		want string
	}{
		{"script run directly from /tmp", with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) {
			onRoot(ev)
			ev.Script, ev.Args = "/tmp/x.sh", []event.Text{"/tmp/x.sh"}
		}), "exec-from-writable-dir:medium skipped=0"},
		{"script given to an interpreter is not an exec of it", with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) {
			onRoot(ev)
			ev.Args = []event.Text{"sh", "/tmp/x.sh"}
		}), "skipped=0"},
		{"loader running a /var/tmp program", loaderRun("/home/alice", "/var/tmp/prog"), "exec-via-dynamic-loader:high skipped=0"},
		{"loader running ./prog from /tmp", loaderRun("/tmp", "./prog"), "exec-via-dynamic-loader:high skipped=0"},
		{"loader running ../../tmp/prog", loaderRun("/home/alice", "../../tmp/prog"), "exec-via-dynamic-loader:high skipped=0"},
		{"loader running /usr/../tmp/prog", loaderRun("/", "/usr/../tmp/prog"), "exec-via-dynamic-loader:high skipped=0"},
		{"loader running a memfd", loaderRun("/", "/proc/self/fd/3"), "exec-via-dynamic-loader:high skipped=0"},
		{"loader behind options", loaderRun("/", "--library-path", "/opt/lib", "/dev/shm/p"), "exec-via-dynamic-loader:high skipped=0"},
		{"loader listing a system binary (ldd)", loaderRun("/", "--list", "/usr/bin/ls"), "skipped=0"},
		{"ldd run from a /tmp directory: options are not files", loaderRun("/tmp/build", "--list", "/usr/bin/ls"), "skipped=0"},
		{"loader running ./-x from /tmp", loaderRun("/tmp", "./-x"), "exec-via-dynamic-loader:high skipped=0"},
		{"bind mount of a /tmp file over /usr/bin/true", with(execEvent("/usr/bin/true", 1000), func(ev *event.Event) {
			onRoot(ev)
			ev.ExeOrigin, ev.MntNS, ev.ExeOwner = "/tmp/evil", privateNS, event.Uint32(1000)
		}), "exec-from-writable-dir:medium skipped=0"},
		{"binary on a tmpfs of the user's making", with(execEvent("/usr/bin/true", 1000), func(ev *event.Event) {
			onRoot(ev)
			ev.ExeOrigin, ev.ExeFS, ev.ExeDev, ev.MntNS = "/usr/bin/true", "tmpfs", 0x2d, privateNS
		}), "exec-from-writable-dir:medium skipped=0"},
		{"chroot into a /tmp tree", with(execEvent("/usr/bin/true", 1000), func(ev *event.Event) {
			onRoot(ev)
			ev.ExeOrigin = "/tmp/root/usr/bin/true"
		}), "exec-from-writable-dir:medium skipped=0"},
		{"go-build skip does not cover a bind-mounted copy", with(execEvent("/tmp/go-build1/b001/exe/x", 1000), func(ev *event.Event) {
			onRoot(ev)
			ev.ExeOrigin, ev.MntNS = "/home/alice/x", privateNS
		}), "exec-from-writable-dir:medium skipped=0"},
		{"go-build skip covers root's own build", with(execEvent("/tmp/go-build1/b001/exe/x", 0), onRoot), "skipped=1"},
		{"ordinary binary", with(execEvent("/usr/bin/true", 1000), onRoot), "skipped=0"},
		{"escalation outranks every exec", escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "root-escalation:high skipped=0"},
	}
	for _, tc := range tests {
		e := NewEngine(set, EngineOptions{Host: "h", Mounts: testHost})
		if got := verdict(e.Judge(tc.ev)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	// Severity ranks: escalations above every exec rule's success.
	esc := set.Rule("root-escalation").Severity
	for _, name := range []string{"exec-from-writable-dir"} {
		if s := set.Rule(name).Severity; s.Success >= esc.Success || s.Failure >= esc.Success {
			t.Errorf("%s severity %v does not rank below root-escalation %v", name, s, esc)
		}
	}
}

// TestSkipsTrustOnlyUnforgeableNames checks path and command skips against
// bind mounts, chroots, private namespaces, filesystems a user can mount,
// scripts and memfds.
func TestSkipsTrustOnlyUnforgeableNames(t *testing.T) {
	testUsers(t)
	src := doc(`{paths: [/usr/bin/true, /home/alice/bin, /opt/app, "/memfd:*"], commands: [true, tool]}`, `
  - name: any
    type: bin-execution
    severity: {success: low}
`)
	ev := func(exe string, f func(*event.Event)) *event.Event {
		e := execEvent(exe, 1000)
		onRoot(e)
		f(e)
		return e
	}
	tests := []struct {
		name string
		ev   *event.Event
		skip bool
	}{
		{"file on the root filesystem", ev("/usr/bin/true", func(*event.Event) {}), true},
		{"same from a service's private namespace", ev("/usr/bin/true", func(e *event.Event) { e.MntNS = privateNS }), true},
		{"device number in the kernel's encoding", ev("/usr/bin/true", func(e *event.Event) { e.ExeDev = 254 << 20 }), true},
		{"bind mount over the skipped path", ev("/usr/bin/true", func(e *event.Event) { e.ExeOrigin, e.MntNS = "/tmp/evil", privateNS }), false},
		{"bind mount of a renamed copy in the host namespace", ev("/usr/bin/true", func(e *event.Event) { e.ExeOrigin = "/home/alice/true" }), false},
		{"chroot", ev("/usr/bin/true", func(e *event.Event) { e.ExeOrigin = "/home/alice/r/usr/bin/true" }), false},
		{"chroot to the top of another filesystem", ev("/usr/bin/true", func(e *event.Event) { e.ExeDev = 0x801 }), false},
		{"overlay of the user's making", ev("/usr/bin/true", func(e *event.Event) { e.ExeFS, e.ExeDev, e.MntNS = "overlay", 0x35, privateNS }), false},
		{"separate filesystem mounted by root", ev("/home/alice/bin/tool", func(e *event.Event) { e.ExeOrigin, e.ExeDev = "/alice/bin/tool", 0x801 }), true},
		{"separate filesystem seen from a private namespace", ev("/home/alice/bin/tool", func(e *event.Event) {
			e.ExeOrigin, e.ExeDev, e.MntNS = "/alice/bin/tool", 0x801, privateNS
		}), false},
		{"root filesystem mounted again below a skipped path", ev("/opt/app/tmp/x", func(e *event.Event) { e.ExeOrigin, e.MntNS = "/tmp/x", privateNS }), false},
		{"no identity from the sensor (old capture)", execEvent("/usr/bin/true", 1000), true},
		{"deleted binary under an exact file skip", ev("/usr/bin/true (deleted)", func(e *event.Event) { e.ExeOrigin = e.Exe }), false},
		{"script in a skipped directory", ev("/usr/bin/dash", func(e *event.Event) { e.Script = "/opt/app/run.sh" }), true},
		{"script from a private namespace", ev("/usr/bin/dash", func(e *event.Event) { e.Script, e.MntNS = "/opt/app/run.sh", privateNS }), false},
		{"interpreter skipped, script not", ev("/usr/bin/true", func(e *event.Event) { e.Script = "/home/bob/x" }), false},
		{"memfd under an explicit memfd skip", ev("/memfd:true (deleted)", func(e *event.Event) {
			e.ExeOrigin, e.ExeFS, e.ExeDev = "/memfd:true (deleted)", "tmpfs", 0x1
		}), false},
		{"renamed with prctl", ev("/usr/bin/x", func(e *event.Event) { e.Comm = "true" }), false},
		{"command name in /tmp", ev("/tmp/true", func(*event.Event) {}), false},
		{"command name in a home directory", ev("/home/bob/bin/tool", func(e *event.Event) { e.ExeOrigin = e.Exe }), true},
	}
	for _, tc := range tests {
		e := engineFor(t, src)
		want := "any:low skipped=0"
		if tc.skip {
			want = "skipped=1"
		}
		if got := verdict(e.Judge(tc.ev)); got != want {
			t.Errorf("%s: got %q, want %q", tc.name, got, want)
		}
	}
}

// TestFailedExecJudgedByTarget: a refused exec is judged by the file it
// asked for, never the caller's comm or exe.
func TestFailedExecJudgedByTarget(t *testing.T) {
	testUsers(t)
	e := engineFor(t, doc("{commands: [bash, make]}", execTmp))
	ev := execEvent("/usr/bin/make", 1000)
	ev.Outcome, ev.Errno, ev.Filename, ev.Comm = event.Failure, "EACCES", "make", "make"
	ev.Exe = "/tmp/d/make" // the sensor's resolution of the relative name
	if got := verdict(e.Judge(ev)); got != "exec-tmp:medium skipped=0" {
		t.Errorf("failed exec of /tmp/d/make by make: %q", got)
	}
}

func TestOwners(t *testing.T) {
	testUsers(t)
	sel := engineFor(t, doc("", `
  - name: root-files
    type: bin-execution
    match: {owners: [root, "1001"]}
    severity: {success: low}
`))
	for _, tc := range []struct {
		owner *uint32
		want  string
	}{{event.Uint32(0), "root-files:low skipped=0"}, {event.Uint32(1001), "root-files:low skipped=0"}, {event.Uint32(1000), "skipped=0"}, {nil, "skipped=0"}} {
		ev := execEvent("/opt/x", 1000)
		ev.ExeOwner = tc.owner
		if got := verdict(sel.Judge(ev)); got != tc.want {
			t.Errorf("owner %v: got %q, want %q", tc.owner, got, tc.want)
		}
	}
	// A script's owner is not the interpreter's.
	script := with(execEvent("/usr/bin/dash", 1000), func(ev *event.Event) { ev.ExeOwner, ev.Script = event.Uint32(0), "/opt/x.sh" })
	if got := verdict(sel.Judge(script)); got != "skipped=0" {
		t.Errorf("script judged by its interpreter's owner: %q", got)
	}

	if _, err := Parse("r.yaml", []byte(doc("{owners: [root]}", execTmp))); err == nil ||
		!strings.Contains(err.Error(), "owners narrows the other skips") {
		t.Errorf("owners alone in a skip list: %v", err)
	}
	set := mustParse(t, doc("", execTmp+"    skip: {owners: [root], paths: [/tmp/build]}\n"))
	skips := set.Skips()
	if len(skips) != 1 || len(skips[0].Owners) != 1 || skips[0].Owners[0] != "root" {
		t.Errorf("listed skips lose their owners: %+v", skips)
	}
	added := Skip{Kind: SkipPath, Value: "/tmp/build", Owners: []string{"root"}}
	e := engineFor(t, doc("", execTmp))
	if err := e.SetAddedSkips([]Skip{added}); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []uint32{0, 1000} {
		ev := execEvent("/tmp/build/cc1", 1000)
		ev.ExeOwner = event.Uint32(owner)
		want := owner == 0
		if got := e.Judge(ev).Skipped == 1; got != want {
			t.Errorf("added skip with owners, file owned by %d: skipped %v, want %v", owner, got, want)
		}
		inc := Incident{Rule: "exec-tmp", Type: TypeBinExecution, Process: *ev}
		if got := added.Covers(&inc); got != want {
			t.Errorf("Covers with owners, file owned by %d: %v, want %v", owner, got, want)
		}
	}
}

func TestArgsSelector(t *testing.T) {
	set := newArgSet([]string{"/tmp/**", "--evil", "/proc/*/fd/*"})
	tests := []struct {
		cwd  string
		args []event.Text
		want bool
	}{
		{"/", []event.Text{"ld.so", "/tmp/x"}, true},
		{"/", []event.Text{"ld.so", "--evil"}, true},
		{"/", []event.Text{"ld.so", "/proc/self/fd/3"}, true},
		{"/tmp", []event.Text{"ld.so", "x"}, true},
		{"/tmp/a", []event.Text{"ld.so", "../b/x"}, true},
		{"/home", []event.Text{"ld.so", "../tmp/x"}, true},
		{"/home", []event.Text{"ld.so", "x"}, false},
		{"", []event.Text{"ld.so", "x"}, false},
		{"/", []event.Text{"ld.so", "/usr/../tmp/x"}, true},
		{"/", []event.Text{"ld.so", "/usr/bin/x"}, false},
		{"/", nil, false},
	}
	var buf []byte
	for _, tc := range tests {
		var got bool
		got, buf = set.match(tc.args, tc.cwd, buf)
		if got != tc.want {
			t.Errorf("args %q in %s: %v, want %v", tc.args, tc.cwd, got, tc.want)
		}
	}
	args := []event.Text{"ld.so", "x"}
	if n := testing.AllocsPerRun(100, func() { _, buf = set.match(args, "/home/alice", buf) }); n != 0 {
		t.Errorf("relative argument: %.1f allocations, want 0", n)
	}
	if _, err := Parse("r.yaml", []byte(doc("", "  - name: a\n    type: bin-execution\n    match: {args: [\"[x\"]}\n    severity: {success: low}\n"))); err == nil {
		t.Error("bad args glob accepted")
	}
	for _, bad := range []string{
		"  - name: a\n    type: bin-execution\n    match: {users: [bob]}\n    aggregate: true\n    severity: {success: low}\n",
		"  - name: a\n    type: termination-failure\n    match: {paths: [/tmp]}\n    aggregate: true\n    severity: {success: low}\n",
		"  - name: a\n    type: bin-execution\n    match: {paths: [/tmp]}\n    aggregate: yes please\n    severity: {success: low}\n",
	} {
		if _, err := Parse("r.yaml", []byte(doc("", bad))); err == nil || !strings.Contains(err.Error(), "aggregate") {
			t.Errorf("accepted %q: %v", bad, err)
		}
	}
}

func TestFilesystemsOrPaths(t *testing.T) {
	testUsers(t)
	e := engineFor(t, doc("", `
  - name: mem
    type: bin-execution
    match: {paths: ["/tmp/**"], filesystems: [tmpfs]}
    aggregate: true
    severity: {success: medium}
`))
	tmpfs := with(execEvent("/run/x", 1000), func(ev *event.Event) { ev.ExeFS = "tmpfs" })
	ext4 := with(execEvent("/run/x", 1000), func(ev *event.Event) { ev.ExeFS = "ext4" })
	for _, tc := range []struct {
		ev   *event.Event
		want string
	}{{tmpfs, "mem:medium skipped=0"}, {ext4, "skipped=0"}, {execEvent("/tmp/x", 1000), "mem:medium skipped=0"}} {
		if got := verdict(e.Judge(tc.ev)); got != tc.want {
			t.Errorf("%s on %q: got %q, want %q", tc.ev.Exe, tc.ev.ExeFS, got, tc.want)
		}
	}
	var inc Incident
	for i := range floodThreshold + 1 {
		inc = e.Evaluate(with(execEvent(fmt.Sprintf("/run/y%d", i), 1001), func(ev *event.Event) { ev.ExeFS = "tmpfs" }))[0]
	}
	if inc.Scope != "fs:tmpfs" || !strings.Contains(string(inc.Summary), "more binaries on tmpfs, such as /run/y16") {
		t.Errorf("scope %q summary %q", inc.Scope, inc.Summary)
	}
}

// TestFloodAggregates: thousands of execs of distinct /tmp binaries by one
// user, each in a directory of its own, make a handful of incidents and one
// flood incident whose count and distinct figure grow, with a bounded
// sample.
func TestFloodAggregates(t *testing.T) {
	testUsers(t)
	e := NewEngine(defaultSet(t), EngineOptions{Host: "h", Mounts: testHost})
	incs := map[ID]Incident{}
	var order []ID
	for i := range 3000 {
		ev := execEvent(fmt.Sprintf("/tmp/d%d/x%d", i, i), 1000)
		ev.Time = t0.Add(time.Duration(i) * 3 * time.Millisecond)
		got := e.Evaluate(ev)
		if len(got) != 1 {
			t.Fatalf("exec %d: %d incidents", i, len(got))
		}
		if _, seen := incs[got[0].ID]; !seen {
			order = append(order, got[0].ID)
		}
		incs[got[0].ID] = got[0]
	}
	// A repeat of a binary raised on its own updates its own incident.
	again := execEvent("/tmp/d0/x0", 1000)
	again.Time = t0.Add(10 * time.Second)
	if inc := e.Evaluate(again)[0]; inc.ID != order[0] || inc.Count != 2 {
		t.Errorf("repeat of the first binary: id %v count %d", inc.ID, inc.Count)
	}
	if len(incs) != floodThreshold+1 {
		t.Fatalf("3000 execs made %d incidents, want %d one by one and one flood", len(incs), floodThreshold)
	}
	for _, id := range order[:floodThreshold] {
		if inc := incs[id]; inc.Count != 1 || inc.Distinct != 0 || inc.Scope != "" {
			t.Errorf("incident before the flood: %+v", inc)
		}
	}
	fl := incs[order[floodThreshold]]
	if fl.Count != 3000-floodThreshold || fl.Distinct != 3000-floodThreshold || len(fl.Sample) != sampleSize ||
		fl.Scope != "/tmp" || fl.Severity != SeverityMedium || fl.Sample[0] != "/tmp/d16/x16" || fl.Sample[9] != "/tmp/d25/x25" {
		t.Fatalf("flood incident: count %d distinct %d sample %q scope %q severity %v",
			fl.Count, fl.Distinct, fl.Sample, fl.Scope, fl.Severity)
	}
	want := "flood: uid 1000 (alice) executed 2984 more binaries under /tmp, such as /tmp/d16/x16, /tmp/d17/x17, /tmp/d18/x18"
	if string(fl.Summary) != want {
		t.Errorf("summary %q, want %q", fl.Summary, want)
	}
	// Another user, another writable root or another outcome is another
	// incident; the escalation during the flood keeps its own, higher.
	others := []*event.Event{
		execEvent("/tmp/d100/x100", 1001),
		execEvent("/var/tmp/x", 1000),
		with(execEvent("/tmp/d200/x200", 1000), func(ev *event.Event) { ev.Outcome, ev.Errno = event.Failure, "EACCES" }),
	}
	for _, ev := range others {
		ev.Time = t0.Add(11 * time.Second)
		if inc := e.Evaluate(ev)[0]; inc.ID == fl.ID || inc.Count != 1 || inc.Scope != "" {
			t.Errorf("%s by %d (%s) joined the flood incident", ev.Exe, ev.UID, ev.Outcome)
		}
	}
	esc := escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success)
	esc.Time = t0.Add(5 * time.Second)
	if inc := e.Evaluate(esc)[0]; inc.Severity <= fl.Severity {
		t.Errorf("escalation severity %v does not outrank the flood's %v", inc.Severity, fl.Severity)
	}
	// After the window, the count starts again.
	late := execEvent("/tmp/late", 1000)
	late.Time = t0.Add(2 * time.Minute)
	if inc := e.Evaluate(late)[0]; inc.Scope != "" || inc.Count != 1 {
		t.Errorf("after the window: %+v", inc)
	}
}

// TestDedupKeepsTheFactsApart: different crashes, exit codes and escalating
// commands are different incidents.
func TestDedupKeepsTheFactsApart(t *testing.T) {
	testUsers(t)
	e := engineFor(t, doc("", escalation+`
  - name: ends
    type: termination-failure
    severity: {failure: medium}
`))
	pairs := [][2]*event.Event{
		{exitEvent("/usr/bin/x", 0, "SIGSEGV"), exitEvent("/usr/bin/x", 0, "SIGABRT")},
		{exitEvent("/usr/bin/x", 3, ""), exitEvent("/usr/bin/x", 4, "")},
		{with(escalationEvent("/usr/bin/passwd", 1000, event.MethodSuidExec, event.Success), func(ev *event.Event) { ev.Args = []event.Text{"passwd"} }),
			with(escalationEvent("/usr/bin/passwd", 1000, event.MethodSuidExec, event.Success), func(ev *event.Event) { ev.Args = []event.Text{"passwd", "bob"} })},
		{escalationEvent("/tmp/x", 1000, event.MethodSetuid, event.Success), escalationEvent("/tmp/x", 1000, event.MethodSetresuid, event.Success)},
	}
	for _, p := range pairs {
		a, b := e.Evaluate(p[0])[0], e.Evaluate(p[1])[0]
		if a.ID == b.ID {
			t.Errorf("%q and %q folded into one incident", a.Summary, b.Summary)
		}
	}
	x, y := e.Evaluate(exitEvent("/usr/bin/x", 0, "SIGSEGV"))[0], e.Evaluate(exitEvent("/usr/bin/x", 0, "SIGSEGV"))[0]
	if x.ID != y.ID || y.Count != 3 {
		t.Errorf("a repeated crash: ids %v %v count %d, want one incident counted 3", x.ID, y.ID, y.Count)
	}
}

// TestFateAttached: an escalation incident learns how its process ended,
// and only from that process.
func TestFateAttached(t *testing.T) {
	testUsers(t)
	e := NewEngine(mustParse(t, doc("", escalation+crashes)), EngineOptions{Host: "h", Mounts: testHost, DedupWindow: time.Second})
	esc := with(escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), func(ev *event.Event) {
		ev.UID, ev.NewUID, ev.Args = 1000, event.Uint32(1000), []event.Text{"sudo", "-n", "true"}
	})
	raised := e.Evaluate(esc)[0]
	if raised.Fate != nil {
		t.Fatal("fate before the exit")
	}
	// Another pid's exit leaves it alone.
	other := exitEvent("/usr/bin/sudo", 1, "")
	other.PID = 999
	if v := e.Judge(other); v.Fated != 0 {
		t.Errorf("another pid's exit attached a fate: %+v", v)
	}
	e.Evaluate(esc) // a second escalation of the same process (a repeat)

	end := exitEvent("/usr/bin/sudo", 1, "")
	end.PID, end.Time, end.DurationNS = 200, t0.Add(2*time.Hour), int64(2*time.Hour+50*time.Millisecond)
	v := e.Judge(end)
	if v.Fated != 1 || len(v.Incidents) != 2 {
		t.Fatalf("exit verdict %+v, want the crash rule's incident and one fate update", v)
	}
	got := v.Incidents[1]
	if got.ID != raised.ID || got.Fate == nil || got.Fate.ExitCode == nil || *got.Fate.ExitCode != 1 ||
		got.Fate.DurationNS != end.DurationNS || !got.Fate.Time.Equal(end.Time) || got.Count != 2 {
		t.Fatalf("fate update %+v", got)
	}
	want := "uid 1000 (alice) ran set-uid /usr/bin/sudo, gaining euid 0: sudo -n true; the process exited with code 1 after 2h0m0.05s"
	if string(got.Summary) != want {
		t.Errorf("summary %q, want %q", got.Summary, want)
	}
	if v := e.Judge(end); v.Fated != 0 {
		t.Error("a second exit of the pid attached again")
	}

	// The exit of a later process that reused the pid (it started after
	// the escalation, whose own exit was missed) is not its fate.
	esc2 := escalationEvent("/usr/bin/su", 1000, event.MethodSuidExec, event.Success)
	esc2.PID = 300
	e.Evaluate(esc2)
	reused := exitEvent("/usr/bin/true", 0, "")
	reused.PID, reused.Time, reused.DurationNS = 300, t0.Add(time.Hour), int64(time.Minute)
	if v := e.Judge(reused); v.Fated != 0 {
		t.Errorf("a later process with the same pid attached a fate: %+v", v)
	}
}

// TestFatesBounded: escalated processes that never exit cannot grow the
// engine without bound; what is forgotten is counted.
func TestFatesBounded(t *testing.T) {
	testUsers(t)
	e := NewEngine(mustParse(t, doc("", escalation)), EngineOptions{Host: "h", Mounts: testHost, DedupWindow: -1})
	for i := range maxFates + 10 {
		ev := escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success)
		ev.PID = uint32(i + 1)
		e.Evaluate(ev)
	}
	if len(e.fates) > maxFates || e.FatesLost() != 10 {
		t.Errorf("%d awaiting, %d lost; want at most %d and 10", len(e.fates), e.FatesLost(), maxFates)
	}
}

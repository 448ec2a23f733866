package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/event"
)

// benchRules builds the benchmark's rules file: 50 rules (30 exec rules
// with path globs or commands, 10 escalation, 10 termination), 1,000 global
// skip commands and 1,000 global skip paths (990 plain, 10 globs).
func benchRules() string {
	var b strings.Builder
	b.WriteString("version: 1\nskip:\n  commands:\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "    - cmd-%04d\n", i)
	}
	b.WriteString("  paths:\n")
	for i := range 990 {
		fmt.Fprintf(&b, "    - /usr/lib/pkg%04d\n", i)
	}
	for i := range 10 {
		fmt.Fprintf(&b, "    - \"/srv/job%d/**/bin/*\"\n", i)
	}
	b.WriteString("  users: [backup]\nrules:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  - name: exec-%d\n    type: bin-execution\n", i)
		if i%2 == 0 {
			fmt.Fprintf(&b, "    match: {paths: [\"/opt/app%d/**\", \"/data/%d/*/run\"]}\n", i, i)
		} else {
			fmt.Fprintf(&b, "    match: {commands: [tool%d, helper%d], users: [alice]}\n", i, i)
		}
		b.WriteString("    severity: {success: high, failure: medium}\n    skip: {commands: [ok], paths: [/opt/ok]}\n")
	}
	// One broad rule so that skipped events really reach the skip lists.
	b.WriteString("  - name: exec-usr-lib\n    type: bin-execution\n    match: {paths: [/usr/lib]}\n    severity: {success: low}\n")
	for i := range 10 {
		fmt.Fprintf(&b, "  - name: root-%d\n    type: root-escalation\n    match: {paths: [\"/usr/bin/x%d\"]}\n    severity: {success: high, failure: critical}\n", i, i)
	}
	for i := range 9 {
		fmt.Fprintf(&b, "  - name: crash-%d\n    type: termination-failure\n    match: {signals: [SIGSEGV], paths: [\"/opt/app%d\"]}\n    severity: {failure: medium}\n", i, i)
	}
	return b.String()
}

func benchEngine(b testing.TB) *Engine {
	testUsers(b)
	set := mustParse(b, benchRules())
	if n := len(set.Rules); n != 50 {
		b.Fatalf("%d rules, want 50", n)
	}
	return NewEngine(set, EngineOptions{Host: "bench"})
}

func benchEvaluate(b *testing.B, ev *event.Event, wantIncidents, wantSkipped int) {
	e := benchEngine(b)
	v := e.Judge(ev)
	if len(v.Incidents) != wantIncidents || v.Skipped != wantSkipped {
		b.Fatalf("verdict %s, want %d incidents and %d skipped", verdict(v), wantIncidents, wantSkipped)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Evaluate(ev)
	}
}

// An ordinary exec that no rule selects: the common case.
func BenchmarkEvaluateNoMatch(b *testing.B) {
	ev := execEvent("/usr/bin/ls", 1000)
	ev.Args = []event.Text{"ls", "-la", "/home/alice"}
	ev.ParentExe = "/usr/bin/bash"
	benchEvaluate(b, ev, 0, 0)
}

// An exec a rule selects but a global skip path (plain prefix) suppresses.
func BenchmarkEvaluateSkippedByPath(b *testing.B) {
	ev := execEvent("/usr/lib/pkg0500/libexec/worker", 1000)
	benchEvaluate(b, ev, 0, 1)
}

// An exec a rule selects but a global skip command suppresses.
func BenchmarkEvaluateSkippedByCommand(b *testing.B) {
	ev := execEvent("/usr/lib/other/cmd-0999", 1000)
	benchEvaluate(b, ev, 0, 1)
}

// An exec a rule selects, skipped by one of the glob skip paths (the slow
// path: every glob is tried after the prefix lookups miss).
func BenchmarkEvaluateSkippedByGlob(b *testing.B) {
	e := benchEngine(b)
	set := mustParse(b, strings.Replace(benchRules(), "    match: {paths: [/usr/lib]}", "    match: {paths: [/srv]}", 1))
	e.SetRules(set)
	ev := execEvent("/srv/job9/a/b/bin/run", 1000)
	if v := e.Judge(ev); len(v.Incidents) != 0 || v.Skipped != 1 {
		b.Fatalf("verdict %s", verdict(v))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Evaluate(ev)
	}
}

// An exit that no termination rule selects.
func BenchmarkEvaluateExit(b *testing.B) {
	benchEvaluate(b, exitEvent("/usr/bin/make", 2, ""), 0, 0)
}

// A repeat of a raised incident: the dedup path, which allocates the
// incident it returns.
func BenchmarkEvaluateDedupRepeat(b *testing.B) {
	ev := execEvent("/opt/app4/bin/server", 1000)
	benchEvaluate(b, ev, 1, 0)
}

// The same repeat through Judge, as the pipeline calls it: the verdict
// reuses its array, so nothing is allocated.
func BenchmarkJudgeDedupRepeat(b *testing.B) {
	e := benchEngine(b)
	ev := execEvent("/opt/app4/bin/server", 1000)
	if v := e.Judge(ev); len(v.Incidents) != 1 {
		b.Fatalf("verdict %s, want 1 incident", verdict(v))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.Judge(ev)
	}
}

// TestJudgeRepeatNoAlloc: an exec storm of one binary is one incident
// counted up, and judging each repeat allocates nothing (Judge reuses its
// verdict's array), while Evaluate's slices stay the caller's own.
func TestJudgeRepeatNoAlloc(t *testing.T) {
	e := benchEngine(t)
	ev := execEvent("/opt/app4/bin/server", 1000)
	first := e.Evaluate(ev)
	if len(first) != 1 {
		t.Fatalf("first sighting raised %d incidents, want 1", len(first))
	}
	if n := testing.AllocsPerRun(100, func() { e.Judge(ev) }); n != 0 {
		t.Errorf("a repeat judged with %.1f allocations, want 0", n)
	}
	second := e.Evaluate(ev)
	if first[0].Count != 1 || second[0].Count <= 1 {
		t.Errorf("counts %d then %d: Evaluate's slices must not share Judge's array (want 1, then the repeats' count)", first[0].Count, second[0].Count)
	}
}

// TestEvaluateNoAlloc holds the engine to its promise: events that raise no
// incident, whether no rule selects them or a skip suppresses them, cost no
// allocation (the first sight of a uid fills the name cache, so each event
// is judged once before counting).
func TestEvaluateNoAlloc(t *testing.T) {
	testUsers(t)
	set := mustParse(t, benchRules())
	e := NewEngine(set, EngineOptions{Host: "h"})
	failed := execEvent("/tmp/nothing-here", 1000)
	failed.Outcome, failed.Errno = event.Failure, "ENOENT"
	events := []*event.Event{
		execEvent("/usr/bin/ls", 1000),
		execEvent("/usr/lib/pkg0500/libexec/worker", 1000),
		execEvent("/usr/lib/other/cmd-0999", 1000),
		execEvent("/usr/lib/x", 34), // skipped by user name
		exitEvent("/usr/bin/make", 2, ""),
		escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success),
		failed,
	}
	for _, ev := range events {
		if v := e.Judge(ev); len(v.Incidents) != 0 {
			t.Fatalf("%s %s raised %s; the test needs events that raise nothing", ev.Type, ev.Exe, verdict(v))
		}
		if n := testing.AllocsPerRun(100, func() { e.Evaluate(ev) }); n != 0 {
			t.Errorf("%s %s: %.1f allocations per event, want 0", ev.Type, ev.Exe, n)
		}
	}
}

// TestEvaluateNoAllocDefaultRules: the same promise with the default
// rules and events carrying the sensor's file identity, a script, and the
// loader given a relative argument (joined to cwd in a reused buffer).
func TestEvaluateNoAllocDefaultRules(t *testing.T) {
	testUsers(t)
	e := NewEngine(defaultSet(t), EngineOptions{Host: "h", Mounts: testHost})
	ls := execEvent("/usr/bin/ls", 1000)
	onRoot(ls)
	script := execEvent("/usr/bin/dash", 1000)
	onRoot(script)
	script.Script = "/opt/app/run.sh"
	loader := execEvent("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 1000)
	onRoot(loader)
	loader.Args, loader.Cwd = []event.Text{"ld.so", "--list", "prog"}, "/home/alice"
	bound := execEvent("/usr/bin/true", 1000)
	onRoot(bound)
	bound.ExeOrigin, bound.MntNS = "/opt/true", privateNS
	goTest := execEvent("/tmp/go-build1/b001/x.test", 0)
	onRoot(goTest)
	exit := exitEvent("/usr/bin/make", 2, "")
	onRoot(exit)
	for _, ev := range []*event.Event{ls, script, loader, bound, goTest, exit} {
		if v := e.Judge(ev); len(v.Incidents) != 0 {
			t.Fatalf("%s %s raised %s; the test needs events that raise nothing", ev.Type, ev.Exe, verdict(v))
		}
		if n := testing.AllocsPerRun(100, func() { e.Evaluate(ev) }); n != 0 {
			t.Errorf("%s %s: %.1f allocations per event, want 0", ev.Type, ev.Exe, n)
		}
	}
}

// BenchmarkCoverer is the per-incident cost of masking when a skip is
// added: the store calls it once for every stored incident.
func BenchmarkCoverer(b *testing.B) {
	covers := Skip{Kind: SkipPath, Value: "/opt/backup"}.Coverer()
	inc := &Incident{Rule: "r", Type: TypeBinExecution, Process: event.Event{Exe: "/usr/bin/true", Comm: "true"}}
	b.ReportAllocs()
	for b.Loop() {
		covers(inc)
	}
}

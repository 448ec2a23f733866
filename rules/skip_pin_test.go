package rules

import (
	"strings"
	"testing"

	"github.com/procwatch/procwatch/event"
)

var (
	sumA = strings.Repeat("a", 64)
	sumB = strings.Repeat("b", 64)
)

func hashed(ev *event.Event, sum string) *event.Event { ev.ExeSHA256 = sum; return ev }

func TestPinnedSkips(t *testing.T) {
	testUsers(t)
	set := mustParse(t, doc("", execTmp+escalation))
	pin := Skip{Kind: SkipPath, Value: "/tmp/tool", Pin: sumA, Source: SourceAdded}
	pinRoot := Skip{Kind: SkipPath, Value: "/tmp/tool", Pin: sumA, Rule: "root", Source: SourceAdded}
	failed := with(hashed(execEvent("/tmp/caller", 1000), sumA), func(ev *event.Event) {
		ev.Filename, ev.Outcome, ev.Errno = "/tmp/tool", event.Failure, "EACCES"
	})
	tests := []struct {
		name  string
		skips []Skip
		ev    *event.Event
		want  string
	}{
		{"pinned file, same content", []Skip{pin}, hashed(execEvent("/tmp/tool", 1000), sumA), "skipped=1"},
		{"another file at the same path", []Skip{pin}, hashed(execEvent("/tmp/tool", 1000), sumB), "exec-tmp:high skipped=0"},
		{"hash not known yet: fail closed", []Skip{pin}, execEvent("/tmp/tool", 1000), "exec-tmp:high skipped=0"},
		{"same content, another path", []Skip{pin}, hashed(execEvent("/tmp/tool2", 1000), sumA), "exec-tmp:high skipped=0"},
		{"a pin is no directory prefix", []Skip{{Kind: SkipPath, Value: "/tmp", Pin: sumA}}, hashed(execEvent("/tmp/tool", 1000), sumA), "exec-tmp:high skipped=0"},
		{"second version pinned too", []Skip{pin, {Kind: SkipPath, Value: "/tmp/tool", Pin: sumB}}, hashed(execEvent("/tmp/tool", 1000), sumB), "skipped=1"},
		{"failed exec of the pinned path", []Skip{pin}, failed, "exec-tmp:medium skipped=0"},
		{"a script run by a pinned interpreter", []Skip{{Kind: SkipPath, Value: "/tmp/sh", Pin: sumA}},
			with(hashed(execEvent("/tmp/sh", 1000), sumA), func(ev *event.Event) { ev.Script = "/tmp/x.sh" }), "exec-tmp:high skipped=0"},
		{"global pin leaves escalations alone", []Skip{pin}, hashed(escalationEvent("/tmp/tool", 1000, event.MethodSetuid, event.Success), sumA), "root:high skipped=0"},
		{"pin for the escalation rule", []Skip{pinRoot}, hashed(escalationEvent("/tmp/tool", 1000, event.MethodSetuid, event.Success), sumA), "skipped=1"},
		{"pin for the escalation rule, other content", []Skip{pinRoot}, hashed(escalationEvent("/tmp/tool", 1000, event.MethodSetuid, event.Success), sumB), "root:high skipped=0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(set, EngineOptions{Host: "h", DedupWindow: -1})
			_ = e.SetAddedSkips(tc.skips)
			if got := verdict(e.Judge(tc.ev)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPinnedSkipCovers(t *testing.T) {
	e := NewEngine(mustParse(t, doc("", execTmp)), EngineOptions{Host: "h", DedupWindow: -1})
	a := e.Evaluate(hashed(execEvent("/tmp/tool", 1000), sumA))[0]
	b := e.Evaluate(hashed(execEvent("/tmp/tool", 1000), sumB))[0]
	unknown := e.Evaluate(execEvent("/tmp/tool", 1000))[0]
	pin := Skip{Kind: SkipPath, Value: "/tmp/tool", Pin: sumA}
	if !pin.Covers(&a) || pin.Covers(&b) || pin.Covers(&unknown) {
		t.Fatalf("pin covers a=%v b=%v unknown=%v; want true false false", pin.Covers(&a), pin.Covers(&b), pin.Covers(&unknown))
	}
}

func TestValidatePinnedSkip(t *testing.T) {
	tests := []struct {
		skip Skip
		ok   bool
	}{
		{Skip{Kind: SkipPath, Value: "/tmp/tool", Pin: sumA}, true},
		{Skip{Kind: SkipCommand, Value: "tool", Pin: sumA}, false},
		{Skip{Kind: SkipPath, Value: "/tmp/*", Pin: sumA}, false},
		{Skip{Kind: SkipPath, Value: "tool", Pin: sumA}, false},
		{Skip{Kind: SkipPath, Value: "/tmp/../tmp/tool", Pin: sumA}, false},
		{Skip{Kind: SkipPath, Value: "/", Pin: sumA}, false},
		{Skip{Kind: SkipPath, Value: "/tmp/tool", Pin: strings.ToUpper(sumA)}, false},
		{Skip{Kind: SkipPath, Value: "/tmp/tool", Pin: "abc"}, false},
	}
	for _, tc := range tests {
		if err := ValidateSkip(tc.skip); (err == nil) != tc.ok {
			t.Errorf("ValidateSkip(%+v) = %v, want ok %v", tc.skip, err, tc.ok)
		}
	}
}

package suggest

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

var sum = strings.Repeat("ab", 32)

func execInc(rule, exe, sha string) rules.Incident {
	return rules.Incident{Rule: rule, Type: rules.TypeBinExecution, Status: rules.StatusOpen, Count: 1,
		Process: event.Event{Type: event.TypeExec, Exe: event.Text(exe), Comm: "x", Outcome: event.Success, ExeSHA256: sha}}
}

func codes(w []Warning) []string {
	var c []string
	for _, x := range w {
		c = append(c, x.Code)
	}
	return c
}

func TestForIncident(t *testing.T) {
	esc := execInc("root-escalation", "/usr/bin/sudo", sum)
	esc.Type, esc.Process.Type = rules.TypeRootEscalation, event.TypeEscalation
	tmpEsc := execInc("root-escalation", "/tmp/exploit", sum)
	tmpEsc.Type, tmpEsc.Process.Type = rules.TypeRootEscalation, event.TypeEscalation
	failed := execInc("exec-from-writable-dir", "/usr/bin/bash", "")
	failed.Process.Outcome, failed.Process.Filename = event.Failure, "/tmp/nope"
	owned := execInc("r", "/usr/bin/mine", sum)
	owned.Process.ExeOwner = event.Uint32(1000)
	script := execInc("exec-from-writable-dir", "/usr/bin/dash", sum)
	script.Process.Script = "/tmp/apt-key-gpghome.x/gpg.1.sh"
	tests := []struct {
		name     string
		inc      rules.Incident
		want     rules.Skip
		warnings []string
	}{
		{"binary in /tmp, hash known: pinned", execInc("exec-from-writable-dir", "/tmp/build/conftest", sum),
			rules.Skip{Kind: "path", Value: "/tmp/build/conftest", Rule: "exec-from-writable-dir", Pin: sum}, nil},
		{"binary in /root, hash unknown: exact path, warned", execInc("r", "/root/src/a.out", ""),
			rules.Skip{Kind: "path", Value: "/root/src/a.out", Rule: "r"}, []string{WarnUnpinned}},
		{"system binary: exact path, not pinned", execInc("r", "/usr/bin/make", sum),
			rules.Skip{Kind: "path", Value: "/usr/bin/make", Rule: "r"}, nil},
		{"system path owned by a user: pinned", owned,
			rules.Skip{Kind: "path", Value: "/usr/bin/mine", Rule: "r", Pin: sum}, nil},
		{"root escalation by sudo: a path skip for its rule", esc,
			rules.Skip{Kind: "path", Value: "/usr/bin/sudo", Rule: "root-escalation"}, nil},
		{"root escalation from /tmp: pinned path for its rule", tmpEsc,
			rules.Skip{Kind: "path", Value: "/tmp/exploit", Rule: "root-escalation", Pin: sum}, nil},
		{"a script: the script's path, not its interpreter's, unpinned", script,
			rules.Skip{Kind: "path", Value: "/tmp/apt-key-gpghome.x/gpg.1.sh", Rule: "exec-from-writable-dir"}, []string{WarnUnpinned}},
		{"failed exec: the requested path, nothing to pin", failed,
			rules.Skip{Kind: "path", Value: "/tmp/nope", Rule: "exec-from-writable-dir"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ForIncident(&tc.inc)
			if !reflect.DeepEqual(got.Skip, tc.want) {
				t.Errorf("skip %+v, want %+v", got.Skip, tc.want)
			}
			if c := codes(got.Warnings); !slices.Equal(c, tc.warnings) {
				t.Errorf("warnings %v, want %v", got.Warnings, tc.warnings)
			}
			if got.Why == "" || len(got.Why) > 120 {
				t.Errorf("why %q", got.Why)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	writable := &rules.Rule{Name: "w", Match: rules.Selectors{Paths: []string{"/tmp/**", "/var/tmp/**"}}}
	tmpOnly := &rules.Rule{Name: "t", Match: rules.Selectors{Paths: []string{"/tmp/**"}}}
	escInc := execInc("root", "/usr/bin/su", "")
	escInc.Type = rules.TypeRootEscalation
	tests := []struct {
		name string
		c    Check
		want []string
	}{
		{"one file for one rule", Check{Skip: rules.Skip{Kind: "path", Value: "/usr/bin/make", Rule: "w"}, ExactFile: true, Rule: writable}, nil},
		{"a directory", Check{Skip: rules.Skip{Kind: "path", Value: "/tmp/build", Rule: "w"}, Rule: writable}, []string{WarnDirectory}},
		{"a glob", Check{Skip: rules.Skip{Kind: "path", Value: "/tmp/*/x", Rule: "w"}, ExactFile: true}, []string{WarnDirectory}},
		{"the whole scope of a rule", Check{Skip: rules.Skip{Kind: "path", Value: "/tmp", Rule: "t"}, Rule: tmpOnly}, []string{WarnDirectory, WarnRuleScope}},
		{"half the scope is not all of it", Check{Skip: rules.Skip{Kind: "path", Value: "/tmp", Rule: "w"}, Rule: writable}, []string{WarnDirectory}},
		{"root covers every scope", Check{Skip: rules.Skip{Kind: "path", Value: "/", Rule: "w"}, Rule: writable}, []string{WarnDirectory, WarnRuleScope}},
		{"more than 100", Check{Skip: rules.Skip{Kind: "path", Value: "/usr/bin/make", Rule: "w"}, ExactFile: true, Masked: 101}, []string{WarnMany}},
		{"100 is not more than 100", Check{Skip: rules.Skip{Kind: "path", Value: "/usr/bin/make", Rule: "w"}, ExactFile: true, Masked: 100}, nil},
		{"every rule", Check{Skip: rules.Skip{Kind: "path", Value: "/usr/bin/make"}, ExactFile: true}, []string{WarnEveryRule}},
		{"every rule, for an escalation", Check{Skip: rules.Skip{Kind: "path", Value: "/usr/bin/su"}, ExactFile: true, Incident: &escInc}, []string{WarnEveryRule, WarnEscalation}},
		{"a command", Check{Skip: rules.Skip{Kind: "command", Value: "make", Rule: "w"}}, []string{WarnCommand}},
		{"a user", Check{Skip: rules.Skip{Kind: "user", Value: "alice", Rule: "w"}}, []string{WarnUser}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := Warnings(tc.c)
			if c := codes(w); !slices.Equal(c, tc.want) {
				t.Errorf("warnings %v, want codes %v", w, tc.want)
			}
			for _, x := range w {
				if len([]rune(x.Text)) > 78 {
					t.Errorf("warning longer than 78 columns: %q", x.Text)
				}
			}
		})
	}
}

func TestWarningsEscapeProcessStrings(t *testing.T) {
	w := Warnings(Check{Skip: rules.Skip{Kind: "command", Value: "evil\x1b[2J", Rule: "r"}})
	if len(w) == 0 || strings.ContainsRune(w[0].Text, '\x1b') {
		t.Fatalf("raw escape in %q", w)
	}
}

func TestFromIncidentsGroupsTopTalkers(t *testing.T) {
	var incs []rules.Incident
	for i := 0; i < 5; i++ {
		incs = append(incs, execInc("w", "/tmp/build/conftest", sum))
	}
	incs = append(incs, execInc("w", "/root/a.out", sum), execInc("w", "/tmp/build/conftest", strings.Repeat("cd", 32)))
	masked := execInc("w", "/tmp/masked", sum)
	masked.Status = rules.StatusMasked
	incs = append(incs, masked)
	got := FromIncidents(incs, 0)
	if len(got) != 2 || got[0].Count != 6 || got[0].Skip.Value != "/tmp/build/conftest" || got[0].Skip.Pin != "" ||
		len(got[0].Warnings) != 1 || got[0].Warnings[0].Code != WarnRebuilt {
		t.Fatalf("a path where two contents ran: %+v", got)
	}
	if got[1].Skip.Value != "/root/a.out" || got[1].Skip.Pin != sum || got[1].Count != 1 {
		t.Fatalf("one content: pinned %+v", got[1])
	}
	if one := FromIncidents(incs, 1); len(one) != 1 {
		t.Fatalf("limit 1 gave %d", len(one))
	}
}

package rules

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/event"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each a full error line
	}{
		{"empty file", "", []string{"f.yaml:1:1: rules file is empty; start the file with: version: 1"}},
		{"syntax", "version: 1\nrules: [\n", []string{"f.yaml:2:8: YAML syntax: sequence end token ']' not found; check indentation and quoting near this position"}},
		{"not a mapping", "- a\n", []string{"f.yaml:1:1: the rules file must be a mapping of keys to values, got a list"}},
		{"missing version", "rules: []\n", []string{`f.yaml:1:1: missing version; add "version: 1" at the top of the file`}},
		{"wrong version", "version: 2\n", []string{`f.yaml:1:10: unsupported rules file version "2"; this procwatch reads version: 1`}},
		{"version as string", "version: \"1\"\n", []string{`f.yaml:1:10: unsupported rules file version "1"; this procwatch reads version: 1`}},
		{"unknown top key", "version: 1\nrule: []\n", []string{`f.yaml:2:1: unknown key "rule" in the rules file; did you mean "rules"?`}},
		{"duplicate top key", "version: 1\nversion: 1\n", []string{`f.yaml:2:1: YAML syntax: mapping key "version" already defined at [1:1]; keep one of the duplicate keys`}},
		{"rules not a list", "version: 1\nrules: {}\n", []string{`f.yaml:2:8: rules must be a list, got a mapping; write rules as a list of mappings, each starting with "- name:"`}},
		{"unknown rule key", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: {success: low}\n    tpye: x\n",
			[]string{`f.yaml:6:5: unknown key "tpye" in a rule; did you mean "type"?`}},
		{"missing name type severity", "version: 1\nrules:\n  - description: x\n", []string{
			`f.yaml:3:5: rule has no name; add a unique name, such as name: exec-from-tmp`,
			`f.yaml:3:5: rule "" has no type; add type: bin-execution | root-escalation | termination-failure`,
			`f.yaml:3:5: rule "" has no severity; add severity: {success: high, failure: medium}; use none for an outcome that should raise nothing`}},
		{"unknown type", "version: 1\nrules:\n  - name: a\n    type: bin-exec\n    severity: {success: low}\n",
			[]string{`f.yaml:4:11: unknown rule type "bin-exec"; expected one of: bin-execution, root-escalation, termination-failure`}},
		{"near type", "version: 1\nrules:\n  - name: a\n    type: root-escalaton\n    severity: {success: low}\n",
			[]string{`f.yaml:4:11: unknown rule type "root-escalaton"; did you mean "root-escalation"?`}},
		{"bad severity", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity:\n      success: hgh\n      failure: severe\n",
			[]string{`f.yaml:6:16: unknown severity "hgh" for success; did you mean "high"?`,
				`f.yaml:7:16: unknown severity "severe" for failure; expected one of: none, info, low, medium, high, critical`}},
		{"severity key typo", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: {sucess: low}\n",
			[]string{`f.yaml:5:16: unknown key "sucess" in severity; did you mean "success"?`}},
		{"severity wrong type", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: high\n",
			[]string{`f.yaml:5:15: severity must be a mapping of keys to values, got a string`}},
		{"duplicate names", "version: 1\nrules:\n  - {name: a, type: bin-execution, severity: {success: low}}\n  - {name: a, type: bin-execution, severity: {success: low}}\n",
			[]string{`f.yaml:4:12: duplicate rule name "a"; rule names must be unique; the first "a" is on line 3`}},
		{"bad name", "version: 1\nrules:\n  - {name: 'a b', type: bin-execution, severity: {success: low}}\n",
			[]string{`f.yaml:3:12: rule name "a b" has unsupported characters; use letters, digits, '-', '_' and '.', as in exec-from-tmp`}},
		{"paths not a list", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: {success: low}\n    match:\n      paths: /tmp\n",
			[]string{`f.yaml:7:14: match.paths must be a list, got a string; write a list: ["/tmp"]`}},
		{"bad glob and relative path", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: {success: low}\n    match:\n      paths: [\"/a/[\", tmp]\n",
			[]string{`f.yaml:7:15: match.paths: bad glob "/a/["; check brackets and braces; * matches within a directory, ** across directories`,
				`f.yaml:7:23: match.paths: path "tmp" is not absolute; paths match the resolved executable, which always starts with /`}},
		{"bad skip glob", "version: 1\nskip:\n  paths:\n    - /ok\n    - \"/x/{a\"\n",
			[]string{`f.yaml:5:7: skip.paths: bad glob "/x/{a"; check brackets and braces; * matches within a directory, ** across directories`}},
		{"unknown skip key", "version: 1\nskip:\n  command: [nice]\n",
			[]string{`f.yaml:3:3: unknown key "command" in skip; did you mean "commands"?`}},
		{"skip list of mappings", "version: 1\nskip:\n  users:\n    - {name: x}\n",
			[]string{`f.yaml:4:7: skip.users entry must be a string, got a mapping`}},
		{"empty entry", "version: 1\nskip:\n  commands: [\"\"]\n",
			[]string{`f.yaml:3:14: skip.commands: empty entry; remove the empty entry`}},
		{"signals on exec rule", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: {success: low}\n    match:\n      signals: [SIGSEGV]\n",
			[]string{`f.yaml:7:7: match.signals does not apply to a bin-execution rule; exit_codes and signals select how a process ended; use them on a termination-failure rule`}},
		{"bad signal and exit codes", "version: 1\nrules:\n  - name: a\n    type: termination-failure\n    severity: {failure: low}\n    match:\n      signals: [SEGV, SIGNOPE]\n      exit_codes: [300, x]\n",
			[]string{`f.yaml:7:17: unknown signal "SEGV"; write SIGSEGV`,
				`f.yaml:7:23: unknown signal "SIGNOPE"; write signal names such as SIGSEGV or SIGABRT`,
				`f.yaml:8:20: exit code 300 out of range; exit codes are numbers from 0 to 255`,
				`f.yaml:8:25: match.exit_codes entry must be a number, got "x"; exit codes are numbers from 0 to 255`}},
		{"container not bool", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: {success: low}\n    match:\n      container: maybe\n",
			[]string{`f.yaml:7:18: match.container must be true or false, got "maybe"; write container: true or container: false`}},
		{"bad image glob", "version: 1\nrules:\n  - name: a\n    type: bin-execution\n    severity: {success: low}\n    match:\n      images: [\"x[\"]\n",
			[]string{`f.yaml:7:16: match.images: bad glob "x["; fix the glob syntax (unbalanced [ or {?)`}},
		{"alias", "version: 1\nskip: &s {}\nrules:\n  - name: a\n    type: bin-execution\n    severity: {success: low}\n    skip: *s\n",
			[]string{`f.yaml:7:11: skip: YAML aliases are not supported; write the value out instead of using an alias`}},
		{"two documents", "version: 1\n---\nversion: 1\n",
			[]string{`f.yaml:3:1: rules file holds 2 YAML documents, want one; keep every rule in one document`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Parse("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; parsed %+v", set)
			}
			if set != nil {
				t.Error("a RuleSet came back with an error")
			}
			var perrs ParseErrors
			if !errors.As(err, &perrs) {
				t.Fatalf("error %T is not ParseErrors: %v", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "f.yaml" || pe.Line < 1 || pe.Col < 1 {
				t.Errorf("first error has no position: %+v", pe)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	src := `# comment
version: 1
skip:
  commands: [nice, 7z]
  paths: [/usr/lib/apt]
  users: [backup, 1000]
rules:
  - name: exec-from-tmp
    type: bin-execution
    description: |
      A binary ran from /tmp.
    match:
      paths: ["/tmp/**"]
      commands: []
      users: [alice]
      parent_commands: [nginx]
      container: false
    severity: {success: high, failure: medium}
    skip:
      commands: [ok]
  - name: crash
    type: termination-failure
    match: {exit_codes: [0x2, 134], signals: [SIGSEGV]}
    severity: {failure: low}
  - name: quiet
    type: root-escalation
    severity: {}
`
	set := mustParse(t, src)
	if set.Version != 1 || len(set.Rules) != 3 {
		t.Fatalf("got version %d and %d rules", set.Version, len(set.Rules))
	}
	r := set.Rules[0]
	if r.Description != "A binary ran from /tmp.\n" || r.Match.Container == nil || *r.Match.Container ||
		strings.Join(r.Match.Users, ",") != "alice" || strings.Join(r.Match.ParentCommands, ",") != "nginx" ||
		r.Severity != (OutcomeSeverity{Success: SeverityHigh, Failure: SeverityMedium}) || strings.Join(r.Skip.Commands, ",") != "ok" {
		t.Errorf("rule 0: %+v", r)
	}
	if got := strings.Join(set.Skip.Commands, ","); got != "nice,7z" {
		t.Errorf("global commands %q", got)
	}
	if got := strings.Join(set.Skip.Users, ","); got != "backup,1000" {
		t.Errorf("global users %q", got)
	}
	c := set.Rules[1].Match
	if len(c.ExitCodes) != 2 || c.ExitCodes[0] != 2 || c.ExitCodes[1] != 134 || c.Signals[0] != "SIGSEGV" {
		t.Errorf("crash selectors %+v", c)
	}
	if set.Rules[2].Severity != (OutcomeSeverity{}) {
		t.Errorf("empty severity gives %+v", set.Rules[2].Severity)
	}
	if set.Rule("crash") != &set.Rules[1] || set.Rule("nope") != nil {
		t.Error("Rule lookup")
	}
}

// TestDefaultRules checks the real rules.yaml at the repository root: it
// parses, and it raises what it promises on the events it is about.
func TestDefaultRules(t *testing.T) {
	testUsers(t)
	data, err := os.ReadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := Parse("rules.yaml", data)
	if err != nil {
		t.Fatalf("default rules do not parse:\n%v", err)
	}
	old := DefaultYAML
	DefaultYAML = data
	t.Cleanup(func() { DefaultYAML = old })
	if d, err := Default(); err != nil || len(d.Rules) != len(set.Rules) {
		t.Fatalf("Default() = %v, %v", d, err)
	}

	shell := execEvent("/usr/bin/dash", 33)
	shell.Comm, shell.ParentExe = "sh", "/usr/sbin/nginx"
	crash := exitEvent("/usr/bin/x", 0, "SIGSEGV")
	rootOwned := func(ev *event.Event) { ev.ExeOwner = event.Uint32(0) }
	goTest := with(execEvent("/tmp/go-build123/b001/rules.test", 1000), rootOwned)
	goRun := with(execEvent("/tmp/go-build123/b001/exe/procwatch", 1000), rootOwned)
	plantedGoRun := with(execEvent("/tmp/go-build123/b001/exe/procwatch", 1000), func(ev *event.Event) { ev.ExeOwner = event.Uint32(1000) })
	helper := escalationEvent("/usr/bin/fusermount3", 1000, event.MethodSuidExec, event.Success)
	tests := []struct {
		ev   *event.Event
		want string
	}{
		{escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Success), "root-escalation:high skipped=0"},
		{escalationEvent("/tmp/x", 65534, event.MethodSetuid, event.Failure), "root-escalation:critical skipped=0"},
		{helper, "skipped=1"},
		{execEvent("/tmp/x", 1000), "exec-from-writable-dir:medium skipped=0"},
		{execEvent("/dev/shm/x", 1000), "exec-from-writable-dir:medium skipped=0"},
		{execEvent("/memfd:x (deleted)", 1000), "exec-from-writable-dir:medium skipped=0"},
		{goTest, "skipped=1"},
		{goRun, "skipped=1"},
		{plantedGoRun, "exec-from-writable-dir:medium skipped=0"},
		{execEvent("/tmp/go-build123/b001/exe/procwatch", 1000), "exec-from-writable-dir:medium skipped=0"},
		{execEvent("/usr/bin/ls", 1000), "skipped=0"},
		{shell, "shell-from-network-daemon:high skipped=0"},
		{crash, "abnormal-termination:medium skipped=0"},
		{exitEvent("/usr/bin/false", 1, ""), "skipped=0"},
		{exitEvent("/usr/bin/sleep", 0, "SIGTERM"), "skipped=0"},
	}
	for _, tc := range tests {
		e := NewEngine(set, EngineOptions{Host: "h"})
		if got := verdict(e.Judge(tc.ev)); got != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.ev.Type, tc.ev.Exe, got, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/r.yaml"
	if err := os.WriteFile(path, []byte("version: 1\nrules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if set, err := Load(path); err != nil || set.Name != path {
		t.Errorf("Load(%s) = %v, %v", path, set, err)
	}
	if _, err := Load(dir + "/missing.yaml"); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "read rules file") {
		t.Errorf("missing file: %v", err)
	}
	old := DefaultYAML
	DefaultYAML = nil
	t.Cleanup(func() { DefaultYAML = old })
	if _, err := Load(""); !errors.Is(err, ErrNoDefault) {
		t.Errorf("Load(\"\") without default: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../rules.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("version: 1\nrules:\n  - {name: a, type: bin-execution, severity: {success: low}, match: {paths: [\"/tmp/**\"]}}\n"))
	f.Add([]byte("version: 1\nskip: &a {commands: [x]}\nrules: [*a]\n"))
	f.Add([]byte("version: 1\nrules:\n  - name: t\n    type: termination-failure\n    match: {exit_codes: [1], signals: [SIGSEGV]}\n    severity: {failure: high}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err != nil {
			if set != nil {
				t.Fatal("RuleSet returned with an error")
			}
			var perrs ParseErrors
			if !errors.As(err, &perrs) || len(perrs) == 0 {
				t.Fatalf("error is not a non-empty ParseErrors: %v", err)
			}
			for _, pe := range perrs {
				if pe.Line < 1 || pe.Col < 1 || pe.Msg == "" {
					t.Fatalf("error without position or message: %+v", pe)
				}
			}
			return
		}
		// A file that parses must be usable.
		e := NewEngine(set, EngineOptions{Host: "fuzz"})
		for _, ev := range []*event.Event{execEvent("/tmp/x", 0), exitEvent("/tmp/x", 1, "SIGSEGV"),
			escalationEvent("/usr/bin/sudo", 1000, event.MethodSuidExec, event.Failure)} {
			for _, inc := range e.Evaluate(ev) {
				if inc.Severity == SeverityNone || inc.Rule == "" {
					t.Fatalf("incident without severity or rule: %+v", inc)
				}
			}
		}
	})
}

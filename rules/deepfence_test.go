package rules

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestImportDeepfenceGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/deepfence.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ImportDeepfence(in)
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/deepfence.golden.yaml"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run with -update after checking):\n%s", golden, got)
	}
	set := mustParse(t, string(got))
	if len(set.Rules) != 4 || set.Rules[3].Name != "bin-execution-2" {
		t.Fatalf("rules %+v", set.Rules)
	}
	r := set.Rules[1]
	if r.Severity != (OutcomeSeverity{Success: SeverityLow, Failure: SeverityMedium}) ||
		strings.Join(r.Skip.Commands, "|") != `nice|ionice|say "hi"` || strings.Join(r.Skip.Paths, "|") != "/usr/lib/apt|/usr/libexec/**" {
		t.Errorf("bin-execution rule %+v", r)
	}
	if set.Rules[2].Severity.Success != SeverityNone {
		t.Error("empty success_severity must be none")
	}
}

func TestImportDeepfenceErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`not json`, "deepfence config: invalid character"},
		{`{"node_id": "x"}`, `no "monitoredprocessevents" list`},
		{`{"monitoredprocessevents": []}`, "no monitoredprocessevents entries"},
		{`[{"event": "bin-executon", "success_severity": "high"}]`, `entry 1: unknown event "bin-executon" (did you mean "bin-execution"?)`},
		{`[{"event": "bin-execution", "success_severity": "urgent"}]`, `entry 1: success_severity: unknown severity "urgent"`},
		{`[{"event": "bin-execution", "skip_path_list": ["tmp"]}]`, `entry 1: skip_path_list: path "tmp" is not absolute`},
		{`[{"event": "bin-execution", "skip_comm_list": [""]}]`, `entry 1: empty skip entry`},
		{`[{"event": "bin-execution", "skip_path_list": ["/a/["]}]`, `bad glob "/a/["`},
	}
	for _, tc := range tests {
		_, err := ImportDeepfence([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.in, err, tc.want)
		}
	}
	// A bare list works as well as the full object.
	out, err := ImportDeepfence([]byte(`[{"event": "root-escalation", "success_severity": "HIGH", "failure_severity": "critical"}]`))
	if err != nil || !strings.Contains(string(out), "success: high") {
		t.Errorf("bare list: %v\n%s", err, out)
	}
}

package rules

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func defaultSet(t testing.TB) *RuleSet {
	t.Helper()
	data, err := os.ReadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, string(data))
}

func TestReplayCapture(t *testing.T) {
	testUsers(t)
	f, err := os.Open("testdata/capture.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := NewEngine(defaultSet(t), EngineOptions{Host: "replay"})
	var incidents []string
	var bad []string
	stats, err := Replay(f, e, func(inc Incident) {
		incidents = append(incidents, fmt.Sprintf("%s %s %s x%d", inc.Rule, inc.Severity, inc.Summary, inc.Count))
	}, func(le *LineError) { bad = append(bad, le.Error()) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"exec-from-writable-dir medium /tmp/x executed by uid 1000 (alice) x1",
		"exec-from-writable-dir medium /tmp/x executed by uid 1000 (alice) x2",
		"root-escalation high uid 1000 (alice) ran set-uid /usr/bin/sudo, gaining uid 0 and euid 0 x1",
		"root-escalation critical uid 65534 (nobody) was refused root via setuid (EPERM) in /tmp/x x1",
		"abnormal-termination medium /tmp/evil exited on SIGSEGV (core dumped) x1",
		"exec-from-writable-dir medium /dev/shm/\x1b[31mred\xff executed by uid 1000 (alice) x1",
		"shell-from-network-daemon high /usr/bin/dash executed by uid 33: sh -c id x1",
	}
	if strings.Join(incidents, "\n") != strings.Join(want, "\n") {
		t.Errorf("incidents:\n%s\nwant:\n%s", strings.Join(incidents, "\n"), strings.Join(want, "\n"))
	}
	if len(bad) != 2 || !strings.HasPrefix(bad[0], "line 10: not a JSON event") || bad[1] != `line 11: unknown event type "fork" (want exec, escalation or exit)` {
		t.Errorf("bad lines: %q", bad)
	}
	if stats.Lines != 13 || stats.Events != 10 || stats.BadLines != 2 || stats.Skipped != 1 {
		t.Errorf("stats %+v", stats)
	}
	counts := map[string]string{}
	for _, n := range stats.SortedRules() {
		counts[n] = fmt.Sprintf("%d/%d", stats.Rules[n].Incidents, stats.Rules[n].Events)
	}
	wantCounts := map[string]string{"exec-from-writable-dir": "2/3", "root-escalation": "2/2", "abnormal-termination": "1/1", "shell-from-network-daemon": "1/1"}
	if fmt.Sprint(counts) != fmt.Sprint(wantCounts) {
		t.Errorf("counts %v, want %v", counts, wantCounts)
	}
	if got := stats.SortedRules(); got[0] != "exec-from-writable-dir" || got[1] != "root-escalation" {
		t.Errorf("order %v", got)
	}
}

func TestReplayLines(t *testing.T) {
	testUsers(t)
	good := `{"type":"exec","uid":1000,"comm":"x","exe":"/tmp/x","outcome":"success"}`
	tests := []struct {
		name   string
		input  string
		events int
		bad    []string
	}{
		{"no trailing newline", good, 1, nil},
		{"crlf", good + "\r\n" + good + "\r\n", 2, nil},
		{"blank lines", "\n\n" + good + "\n   \n", 1, nil},
		{"unknown fields are allowed", `{"type":"exit","exe":"/x","future_field":[1,2]}`, 1, nil},
		{"no type", `{"exe":"/tmp/x"}`, 0, []string{`line 1: event has no "type"`}},
		{"bad outcome", `{"type":"exec","exe":"/tmp/x","outcome":"maybe"}`, 0, []string{`line 1: unknown outcome "maybe" (want success or failure)`}},
		{"wrong field type", `{"type":"exec","pid":"one"}`, 0, []string{"line 1: not a JSON event: json: cannot unmarshal string into Go struct field Event.pid of type uint32"}},
		{"lone surrogate", `{"type":"exec","exe":"/tmp/\udc01"}`, 0, []string{"line 1: not a JSON event: invalid JSON string: lone surrogate \\udc01"}},
		{"too long then good", `{"type":"exec","exe":"/tmp/` + strings.Repeat("a", MaxCaptureLine) + `"}` + "\n" + good, 1,
			[]string{fmt.Sprintf("line 1: longer than %d bytes", MaxCaptureLine)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(mustParse(t, doc("", execTmp)), EngineOptions{Host: "h"})
			var bad []string
			stats, err := Replay(strings.NewReader(tc.input), e, nil, func(le *LineError) { bad = append(bad, le.Error()) })
			if err != nil {
				t.Fatal(err)
			}
			if stats.Events != tc.events || strings.Join(bad, "\n") != strings.Join(tc.bad, "\n") {
				t.Errorf("events %d bad %q; want %d %q", stats.Events, bad, tc.events, tc.bad)
			}
		})
	}
}

type failingReader struct{ data []byte }

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReplayReadError(t *testing.T) {
	e := NewEngine(mustParse(t, doc("", execTmp)), EngineOptions{Host: "h"})
	_, err := Replay(&failingReader{data: []byte(`{"type":"exec","exe":"/usr/bin/x"}` + "\n")}, e, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "read capture: disk on fire") {
		t.Errorf("err = %v", err)
	}
}

func FuzzReplay(f *testing.F) {
	if data, err := os.ReadFile("testdata/capture.ndjson"); err == nil {
		f.Add(data)
		for _, line := range bytes.Split(data, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte(`{"type":"exec","exe":"/tmp/\udcff","args":["\ud83d\ude00"]}`))
	f.Add([]byte(`{"type":"escalation","old_uid":null,"method":"suid-exec"}`))
	f.Add([]byte(`{"type":"exit","exit_code":-1,"signal":"SIGSEGV"}`))
	set := defaultSet(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		e := NewEngine(set, EngineOptions{Host: "fuzz"})
		lines := 0
		stats, err := Replay(bytes.NewReader(data), e, func(inc Incident) {
			if inc.Rule == "" || inc.Severity == SeverityNone || inc.Count == 0 || inc.Summary == "" {
				t.Fatalf("bad incident %+v", inc)
			}
		}, func(le *LineError) {
			if le.Line < 1 || le.Line <= lines {
				t.Fatalf("line numbers out of order: %d after %d", le.Line, lines)
			}
			lines = le.Line
		})
		if err != nil {
			t.Fatalf("reader error from bytes.Reader: %v", err)
		}
		if stats.Events+stats.BadLines > stats.Lines {
			t.Fatalf("stats do not add up: %+v", stats)
		}
	})
}

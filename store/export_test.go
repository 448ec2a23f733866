package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

const schemaPath = "../docs/incident.schema.json"

func loadSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatalf("compile %s: %v", schemaPath, err)
	}
	return sch
}

// exportFixtures covers the three event types, hostile bytes and every
// status.
func exportFixtures() []rules.Incident {
	all := fixtures(baseTime, 40)
	all[1].Process.Exe = "/tmp/\xff\xfe<script>"
	all[1].Process.Args = []event.Text{"\x80\x81", "a\u2028b", "", "--x=\"y\"\n"}
	all[1].Process.Comm = "\x1b[31mred"
	all[2].Process.Type = event.TypeEscalation
	all[2].Process.Method = event.MethodSetuid
	all[2].Process.OldUID, all[2].Process.NewUID = event.Uint32(1000), event.Uint32(0)
	all[2].Process.Args, all[2].Process.Filename = nil, ""
	all[3].Process.Type = event.TypeExit
	all[3].Process.ExitCode = event.Int(0)
	all[3].Process.Signal = "SIGSEGV"
	all[3].Process.CoreDumped = true
	all[3].Process.DurationNS = 12345
	all[3].Process.Errno = "ENOENT"
	all[4].Count = 17
	return all
}

func TestExportRoundTrip(t *testing.T) {
	sch := loadSchema(t)
	s, _ := openTemp(t, Options{RetentionAge: -1})
	all := exportFixtures()
	putAll(t, s, all)
	if err := s.SetStatus([]rules.ID{all[5].ID}, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus([]rules.ID{all[6].ID}, rules.StatusMasked); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		q    api.Query
	}{
		{"all", api.Query{}},
		{"filtered", api.Query{MinSeverity: rules.SeverityHigh, Limit: 5}},
		{"none", api.Query{Rule: "nope"}},
	}
	for _, c := range cases {
		want, err := s.Query(c.q)
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{FormatJSON, FormatNDJSON} {
			t.Run(c.name+" "+format, func(t *testing.T) {
				var buf bytes.Buffer
				var calls [][2]int
				n, err := s.Export(c.q, format, &buf, func(done, total int) { calls = append(calls, [2]int{done, total}) })
				if err != nil {
					t.Fatal(err)
				}
				if n != len(want) {
					t.Errorf("Export wrote %d, want %d", n, len(want))
				}
				if len(calls) == 0 || calls[len(calls)-1] != [2]int{n, n} {
					t.Errorf("progress calls %v, want a final (%d, %d)", calls, n, n)
				}
				raws := splitExport(t, format, buf.Bytes())
				if len(raws) != len(want) {
					t.Fatalf("parsed %d incidents, want %d", len(raws), len(want))
				}
				for i, raw := range raws {
					validate(t, sch, raw)
					var got rules.Incident
					if err := json.Unmarshal(raw, &got); err != nil {
						t.Fatalf("incident %d: %v", i, err)
					}
					sameIncident(t, got, want[i])
					// Re-encoding gives the exported bytes: nothing lost.
					again, _ := json.Marshal(got)
					if !bytes.Equal(again, raw) {
						t.Errorf("incident %d re-encodes differently:\n%s\n%s", i, raw, again)
					}
				}
			})
		}
	}
}

// splitExport parses an export into one raw JSON document per incident,
// checking the framing of each format.
func splitExport(t *testing.T, format string, b []byte) []json.RawMessage {
	t.Helper()
	var raws []json.RawMessage
	switch format {
	case FormatJSON:
		if err := json.Unmarshal(b, &raws); err != nil {
			t.Fatalf("json export is not one array: %v\n%s", err, b)
		}
		for i := range raws {
			var c bytes.Buffer
			if err := json.Compact(&c, raws[i]); err != nil {
				t.Fatal(err)
			}
			raws[i] = c.Bytes()
		}
	case FormatNDJSON:
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Fatalf("ndjson line is not JSON: %s", sc.Bytes())
			}
			raws = append(raws, bytes.Clone(sc.Bytes()))
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Error("ndjson export does not end in a newline")
		}
	}
	return raws
}

func validate(t *testing.T, sch *jsonschema.Schema, raw []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("export fails the schema: %v\n%s", err, raw)
	}
}

func TestExportKeepsBytesRecoverable(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	inc := fixture(baseTime, 1)
	inc.Process.Exe = "/tmp/\xff\xfeevil"
	putAll(t, s, []rules.Incident{inc})
	var buf bytes.Buffer
	if _, err := s.Export(api.Query{}, FormatNDJSON, &buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"exe":"/tmp/\udcff\udcfeevil"`) {
		t.Errorf("invalid bytes not escaped as \\udcXX: %s", buf.String())
	}
}

func TestExportRejectsUnknownFormat(t *testing.T) {
	s, _ := openTemp(t, Options{})
	if _, err := s.Export(api.Query{}, "xml", &bytes.Buffer{}, nil); err == nil || !strings.Contains(err.Error(), "json or ndjson") {
		t.Errorf("Export(xml) = %v", err)
	}
}

// TestSchemaRejectsBadIncidents makes sure the schema test can fail: each
// document breaks one rule.
func TestSchemaRejectsBadIncidents(t *testing.T) {
	sch := loadSchema(t)
	inc := fixture(baseTime, 1)
	good, _ := json.Marshal(inc)
	mutate := map[string]func(m map[string]any){
		"missing id":       func(m map[string]any) { delete(m, "id") },
		"short id":         func(m map[string]any) { m["id"] = "abc" },
		"bad severity":     func(m map[string]any) { m["severity"] = "urgent" },
		"bad status":       func(m map[string]any) { m["status"] = "closed" },
		"bad time":         func(m map[string]any) { m["time"] = "yesterday" },
		"count zero":       func(m map[string]any) { m["count"] = 0 },
		"pid negative":     func(m map[string]any) { m["process"].(map[string]any)["pid"] = -1 },
		"args not strings": func(m map[string]any) { m["process"].(map[string]any)["args"] = []any{1, 2} },
		"no process exe":   func(m map[string]any) { delete(m["process"].(map[string]any), "exe") },
	}
	for name, fn := range mutate {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			fn(m)
			b, _ := json.Marshal(m)
			inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if sch.Validate(inst) == nil {
				t.Errorf("schema accepted %s", b)
			}
		})
	}
}

// TestSchemaDescribesEveryField fails when rules.Incident or event.Event
// gain a JSON field that docs/incident.schema.json does not describe.
func TestSchemaDescribesEveryField(t *testing.T) {
	raw, err := os.ReadFile(filepath.FromSlash(schemaPath))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties map[string]any `json:"properties"`
		Defs       struct {
			Event struct {
				Properties map[string]any `json:"properties"`
			} `json:"event"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(filled())
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	var ev map[string]json.RawMessage
	_ = json.Unmarshal(m["process"], &ev)
	check := func(where string, keys map[string]json.RawMessage, props map[string]any) {
		var missing []string
		for k := range keys {
			if _, ok := props[k]; !ok {
				missing = append(missing, k)
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			t.Errorf("%s fields missing from the schema: %v", where, missing)
		}
	}
	check("incident", m, doc.Properties)
	check("process", ev, doc.Defs.Event.Properties)
}

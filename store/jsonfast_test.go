package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// hostileStrings covers every branch of both string encoders: HTML
// characters, quotes, control bytes, DEL, invalid UTF-8, truncated
// sequences, U+2028/2029, NUL and multi-byte text.
var hostileStrings = []string{
	"", "plain", `q"uo\te`, "<b>&amp;</b>", "\x00\x01\b\f\n\r\t\x1b\x1f\x7f",
	"\xff", "a\xc3", "\xe2\x82", "\xed\xa0\x80", "\u2028\u2029", "héllo wörld ☃ 𝄞", "\xf0\x9f\x98",
}

func TestIncidentJSONMatchesEncodingJSON(t *testing.T) {
	cases := map[string]rules.Incident{
		"every field set": filled(),
		"realistic":       fixture(baseTime, 1),
		"zero":            {},
		"local time":      fixture(time.Date(2026, 7, 1, 8, 0, 0, 0, time.Local), 2),
		"unknown severity": func() rules.Incident {
			i := fixture(baseTime, 3)
			i.Severity = 9
			return i
		}(),
		"exit code and ids zero": func() rules.Incident {
			i := fixture(baseTime, 4)
			i.Process.ExitCode = event.Int(0)
			i.Process.OldUID, i.Process.NewEUID = event.Uint32(0), event.Uint32(0)
			i.Process.Args = []event.Text{}
			return i
		}(),
	}
	for i, s := range hostileStrings {
		inc := fixture(baseTime, i)
		inc.Host, inc.Rule, inc.Summary, inc.Type = s, s, event.Text(s+"!"), "t"+s
		inc.Process.Exe, inc.Process.Comm, inc.Process.Cwd = event.Text(s), event.Text(s+"c"), event.Text("/"+s)
		inc.Process.Args = []event.Text{event.Text(s), "x", event.Text(s + s)}
		inc.Process.Ancestors[1].Exe = event.Text(s)
		inc.Process.ContainerID, inc.Process.Errno, inc.Process.Signal = s, s, s
		cases["hostile "+s] = inc
	}
	for name, inc := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(inc)
			if err != nil {
				t.Fatal(err)
			}
			got := appendIncidentJSON(nil, &inc)
			if !bytes.Equal(got, want) {
				t.Errorf("fast JSON differs from encoding/json\n got: %s\nwant: %s", got, want)
			}
			want, err = json.Marshal(&inc.Process)
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendEventJSON(nil, &inc.Process); !bytes.Equal(got, want) {
				t.Errorf("fast event JSON differs from encoding/json\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func FuzzIncidentJSON(f *testing.F) {
	for _, s := range hostileStrings {
		f.Add(s, []byte(s))
	}
	f.Fuzz(func(t *testing.T, s string, b []byte) {
		inc := fixture(baseTime, len(s))
		inc.Summary = event.Text(s)
		inc.Process.Exe = event.Text(b)
		inc.Process.Args = []event.Text{event.Text(s), event.Text(b)}
		want, err := json.Marshal(inc)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendIncidentJSON(nil, &inc); !bytes.Equal(got, want) {
			t.Fatalf("fast JSON differs\n got: %s\nwant: %s", got, want)
		}
		// Process bytes come back exactly.
		var back rules.Incident
		if err := json.Unmarshal(want, &back); err != nil {
			t.Fatal(err)
		}
		if string(back.Process.Exe) != string(b) {
			t.Fatalf("exe %q came back as %q", b, back.Process.Exe)
		}
	})
}

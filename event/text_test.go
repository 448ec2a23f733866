package event

import (
	"encoding/json"
	"testing"
)

func TestTextJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   Text
		want string
	}{
		{"plain", "/usr/bin/true", `"/usr/bin/true"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"controls", "a\x1b[31m\n\x7f", `"a\u001b[31m\n\u007f"`},
		{"valid utf8 kept", "héllo ✓", `"héllo ✓"`},
		{"invalid bytes escaped", "a\xffb\xc3", `"a\udcffb\udcc3"`},
		{"encoded surrogate is invalid utf8", "\xed\xb3\xbf", `"\udced\udcb3\udcbf"`},
		{"line separator", "a\u2028b", `"a\u2028b"`},
		{"empty", "", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("marshal = %s, want %s", got, tt.want)
			}
			var back Text
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if back != tt.in {
				t.Fatalf("round trip = %q, want %q", back, tt.in)
			}
		})
	}
}

func TestTextUnmarshalRejectsForeignSurrogates(t *testing.T) {
	var x Text
	for _, bad := range []string{`"\udc41"`, `"\ud800"`, `"\ud800x"`, `"\q"`, `"abc`} {
		if err := json.Unmarshal([]byte(bad), &x); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want error", bad)
		}
	}
	if err := json.Unmarshal([]byte(`"\ud83d\ude00 \u00e9"`), &x); err != nil || x != "😀 é" {
		t.Fatalf("surrogate pair: %q %v", x, err)
	}
}

func FuzzTextJSON(f *testing.F) {
	f.Add([]byte("abc\xff\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := Text(b)
		out, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var back Text
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		if back != in {
			t.Fatalf("round trip %q -> %s -> %q", in, out, back)
		}
	})
}

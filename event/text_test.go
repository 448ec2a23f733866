package event

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
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

// appendJSONByteByByte is AppendJSON as it was first written, one byte at a
// time: the reference the faster one must match.
func appendJSONByteByByte(t Text, dst []byte) []byte {
	s := string(t)
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, '\\', 'u', 'd', 'c', hexDigits[c>>4], hexDigits[c&0xf])
			i++
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// FuzzAppendJSON checks the run-copying AppendJSON against the byte-by-byte
// reference and that the result decodes back to the same bytes.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"", "/usr/bin/ls", "a\"b\\c\n\r\t\x00\x1f\x7f", "\xff\xfe caf\xc3\xa9 \xe2\x80\xa8\xe2\x80\xa9 \xf0\x9f\x98\x80", "\xc3", "tail\xe2\x80", "<script>&amp;</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Text(s).AppendJSON(nil)
		if want := appendJSONByteByByte(Text(s), nil); string(got) != string(want) {
			t.Fatalf("AppendJSON(%q) = %s, want %s", s, got, want)
		}
		safe, err := json.Marshal(Text(s))
		if err != nil || string(Text(s).AppendJSONHTMLSafe(nil)) != string(safe) {
			t.Fatalf("AppendJSONHTMLSafe(%q) = %s, json.Marshal gives %s (%v)", s, Text(s).AppendJSONHTMLSafe(nil), safe, err)
		}
		var back Text
		if err := back.UnmarshalJSON(got); err != nil || string(back) != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, err)
		}
	})
}

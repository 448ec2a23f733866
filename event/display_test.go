package event

import "testing"

func TestDisplay(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/bin/true", "/usr/bin/true"},
		{"evil\r\x1b[Cuser=bob", `evil\r\x1b[Cuser=bob`},
		{"a\\b", `a\\b`},
		{"\x1b]8;;http://x\x07link", `\x1b]8;;http://x\x07link`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"c1\u009bcsi", `c1\u{9b}csi`},
		{"bidi\u202egnp.exe", `bidi\u{202e}gnp.exe`},
		{"zero\u200bwidth", `zero\u{200b}width`},
		{"del\x7f", `del\x7f`},
		{"tab\tnl\n", `tab\tnl\n`},
		{"héllo wörld ✓", "héllo wörld ✓"},
		{"nbsp\u00a0", `nbsp\u{a0}`},
	}
	for _, tt := range tests {
		if got := Text(tt.in).Display(); got != tt.want {
			t.Errorf("Display(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDisplayPlainDoesNotAllocate(t *testing.T) {
	s := "/usr/lib/systemd/systemd-journald"
	if n := testing.AllocsPerRun(100, func() { _ = DisplayString(s) }); n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

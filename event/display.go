package event

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Display returns t in a form that is safe to write to a terminal: it cannot
// move the cursor, change colours, plant a hyperlink, reorder text or hide
// characters. A process chooses its own name and arguments, so every string
// from a process goes through Display (or DisplayString) before it is shown.
//
// Printable characters pass through. A backslash becomes \\ so escapes are
// unambiguous. \n, \r and \t become those two-character escapes; other
// control characters (C0, DEL) and bytes that are not valid UTF-8 become
// \xNN; C1 controls and invisible or reordering characters (bidi controls, zero-width
// characters, other format and non-printing code points) become \u{XXXX}.
func (t Text) Display() string { return DisplayString(string(t)) }

// DisplayString is Display for a plain string, such as a user name read from
// /etc/passwd or a file name built from process data.
func DisplayString(s string) string {
	if isPlainASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			writeHexByte(&b, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			writeHexByte(&b, byte(r))
		case r < 0x7f || (r >= 0xa0 && unicode.IsPrint(r)):
			b.WriteString(s[i : i+size])
		default: // C1 controls, format characters, unassigned, other spaces
			b.WriteString(`\u{`)
			b.WriteString(strconv.FormatInt(int64(r), 16))
			b.WriteByte('}')
		}
		i += size
	}
	return b.String()
}

func writeHexByte(b *strings.Builder, c byte) {
	b.WriteString(`\x`)
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&0xf])
}

// isPlainASCII reports whether s is printable ASCII without backslashes, the
// common case that needs no copy.
func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

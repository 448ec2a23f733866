package event

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// Text holds bytes that came from a process: a name, a path, an argument.
// They are usually UTF-8 but nothing forces a process to choose valid UTF-8,
// so Text keeps the exact bytes and its JSON form keeps them recoverable.
//
// JSON encoding: valid UTF-8 is written as an ordinary JSON string. Each byte
// that is not part of a valid UTF-8 sequence is written as the escape
// \udcXX, where XX is the byte (0x80-0xff), or \udc00-\udc7f never occur
// since ASCII bytes are always valid. These lone low surrogates cannot come
// from valid UTF-8, so the mapping is unambiguous; it is the same convention
// as Python's "surrogateescape" error handler (PEP 383), so
// json.loads(line)["exe"].encode("utf-8", "surrogateescape") recovers the
// bytes in Python, and Text.UnmarshalJSON recovers them in Go.
//
// Text is not safe to print on a terminal: use the tui package's escaping.
type Text string

const hexDigits = "0123456789abcdef"

// MarshalJSON writes t as a JSON string, escaping invalid bytes as \udcXX.
func (t Text) MarshalJSON() ([]byte, error) {
	return t.AppendJSON(make([]byte, 0, len(t)+2)), nil
}

// AppendJSON appends the JSON string form of t to dst. It exists so that hot
// paths can encode without an intermediate allocation. Runs of bytes that
// need no escape (most of any path or argument) are copied whole.
func (t Text) AppendJSON(dst []byte) []byte { return t.appendJSON(dst, &jsonPlain) }

// AppendJSONHTMLSafe is AppendJSON that also writes <, > and & as \u003c,
// \u003e and \u0026: the bytes json.Marshal writes for a Text, since
// encoding/json escapes them in the output of every MarshalJSON method.
// Encoders that promise json.Marshal's exact output use it.
func (t Text) AppendJSONHTMLSafe(dst []byte) []byte { return t.appendJSON(dst, &jsonPlainHTML) }

// appendJSON copies runs of the bytes plain marks and escapes the rest.
func (t Text) appendJSON(dst []byte, plain *[256]bool) []byte {
	s := string(t)
	dst = append(dst, '"')
	start := 0 // s[start:i] is plain and not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c < utf8.RuneSelf:
			dst = appendASCIIEscape(dst, c)
		case r == utf8.RuneError && size == 1:
			dst = append(dst, '\\', 'u', 'd', 'c', hexDigits[c>>4], hexDigits[c&0xf])
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but they break JavaScript-based line readers.
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendASCIIEscape appends the escape of an ASCII byte that jsonPlain
// does not pass.
func appendASCIIEscape(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// jsonPlain marks the bytes AppendJSON copies as they are: printable ASCII
// other than the quote and the backslash. Control bytes, DEL and every byte
// of a multi-byte sequence take the slow path.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// jsonPlainHTML is jsonPlain without <, > and &.
var jsonPlainHTML = func() (t [256]bool) {
	t = jsonPlain
	t['<'], t['>'], t['&'] = false, false, false
	return t
}()

// UnmarshalJSON reads a JSON string written by MarshalJSON, turning \udcXX
// escapes back into the original bytes. Other lone surrogates are rejected:
// they do not come from procwatch and have no byte meaning.
func (t *Text) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*t = ""
		return nil
	}
	b, err := decodeJSONString(data)
	if err != nil {
		return err
	}
	*t = Text(b)
	return nil
}

var errBadString = errors.New("invalid JSON string")

// decodeJSONString decodes a quoted JSON string literal into raw bytes.
func decodeJSONString(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return nil, errBadString
	}
	in := data[1 : len(data)-1]
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(in) {
			return nil, errBadString
		}
		switch in[i+1] {
		case '"', '\\', '/':
			out = append(out, in[i+1])
			i += 2
		case 'b':
			out = append(out, '\b')
			i += 2
		case 'f':
			out = append(out, '\f')
			i += 2
		case 'n':
			out = append(out, '\n')
			i += 2
		case 'r':
			out = append(out, '\r')
			i += 2
		case 't':
			out = append(out, '\t')
			i += 2
		case 'u':
			r, ok := hex4(in, i+2)
			if !ok {
				return nil, errBadString
			}
			i += 6
			switch {
			case r >= 0xdc80 && r <= 0xdcff:
				out = append(out, byte(r-0xdc00))
			case r >= 0xd800 && r <= 0xdbff:
				// High surrogate: must be followed by a low one.
				if i+1 >= len(in) || in[i] != '\\' || in[i+1] != 'u' {
					return nil, errBadString
				}
				lo, ok := hex4(in, i+2)
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return nil, errBadString
				}
				i += 6
				out = utf8.AppendRune(out, 0x10000+(r-0xd800)<<10+(lo-0xdc00))
			case r >= 0xdc00 && r <= 0xdfff:
				return nil, errors.New("invalid JSON string: lone surrogate \\u" + strconv.FormatInt(int64(r), 16))
			default:
				out = utf8.AppendRune(out, r)
			}
		default:
			return nil, errBadString
		}
	}
	return out, nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at:at+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

package store

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// appendIncidentJSON appends the JSON form of inc to dst, byte for byte what
// json.Marshal(inc) produces (a test holds it to that), at several times the
// speed: exporting a million incidents through encoding/json alone would
// take longer than the whole export budget. The field names and their order
// follow the struct tags of rules.Incident and event.Event.
func appendIncidentJSON(dst []byte, inc *rules.Incident) []byte {
	dst = append(dst, `{"id":"`...)
	dst = appendHex16(dst, uint64(inc.ID))
	dst = append(dst, `","time":`...)
	dst = appendTimeJSON(dst, inc.Time)
	dst = append(dst, `,"host":`...)
	dst = appendStringJSON(dst, inc.Host)
	dst = append(dst, `,"rule":`...)
	dst = appendStringJSON(dst, inc.Rule)
	dst = append(dst, `,"type":`...)
	dst = appendStringJSON(dst, inc.Type)
	dst = append(dst, `,"outcome":`...)
	dst = appendStringJSON(dst, string(inc.Outcome))
	dst = append(dst, `,"severity":`...)
	dst = appendStringJSON(dst, inc.Severity.String())
	dst = append(dst, `,"summary":`...)
	dst = appendTextJSON(dst, inc.Summary)
	dst = append(dst, `,"status":`...)
	dst = appendStringJSON(dst, string(inc.Status))
	dst = append(dst, `,"process":`...)
	dst = appendEventJSON(dst, &inc.Process)
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendUint(dst, inc.Count, 10)
	dst = append(dst, `,"first_seen":`...)
	dst = appendTimeJSON(dst, inc.FirstSeen)
	dst = append(dst, `,"last_seen":`...)
	dst = appendTimeJSON(dst, inc.LastSeen)
	if f := inc.Fate; f != nil {
		dst = append(dst, `,"fate":{"time":`...)
		dst = appendTimeJSON(dst, f.Time)
		dst = appendOptIntField(dst, `,"exit_code":`, f.ExitCode)
		dst = appendStringField(dst, `,"signal":`, f.Signal)
		dst = appendBoolField(dst, `,"core_dumped":true`, f.CoreDumped)
		dst = appendIntField(dst, `,"duration_ns":`, f.DurationNS)
		dst = append(dst, '}')
	}
	if len(inc.History) > 0 {
		dst = append(dst, `,"history":[`...)
		for i := range inc.History {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendChangeJSON(dst, &inc.History[i])
		}
		dst = append(dst, ']')
	}
	dst = appendNonZeroUintField(dst, `,"distinct":`, inc.Distinct)
	if len(inc.Sample) > 0 {
		dst = append(dst, `,"sample":[`...)
		for i, name := range inc.Sample {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendTextJSON(dst, name)
		}
		dst = append(dst, ']')
	}
	dst = appendStringField(dst, `,"scope":`, inc.Scope)
	return append(dst, '}')
}

func appendChangeJSON(dst []byte, c *rules.Change) []byte {
	dst = append(dst, `{"time":`...)
	dst = appendTimeJSON(dst, c.Time)
	dst = append(dst, `,"from":`...)
	dst = appendStringJSON(dst, string(c.From))
	dst = append(dst, `,"to":`...)
	dst = appendStringJSON(dst, string(c.To))
	dst = appendUintField(dst, `,"by":{"uid":`, uint64(c.By.UID))
	dst = appendNonZeroUintField(dst, `,"pid":`, uint64(c.By.PID))
	dst = appendStringField(dst, `,"user":`, c.By.User)
	dst = appendStringField(dst, `,"ssh_user":`, c.By.SSHUser)
	dst = appendStringField(dst, `,"ssh_from":`, c.By.SSHFrom)
	dst = appendStringField(dst, `,"via":`, c.By.Via)
	dst = append(dst, '}')
	dst = appendStringField(dst, `,"skip":`, c.Skip)
	return append(dst, '}')
}

// AppendEventJSON appends the JSON form of ev to dst, byte for byte what
// json.Marshal(ev) produces (a test holds it to that), for the one-line-
// per-event output of `procwatch events --json`, where encoding/json's
// reflection was half the command's CPU in an exec storm.
func AppendEventJSON(dst []byte, ev *event.Event) []byte { return appendEventJSON(dst, ev) }

func appendEventJSON(dst []byte, ev *event.Event) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendStringJSON(dst, string(ev.Type))
	dst = append(dst, `,"time":`...)
	dst = appendTimeJSON(dst, ev.Time)
	dst = appendUintField(dst, `,"pid":`, uint64(ev.PID))
	dst = appendUintField(dst, `,"tid":`, uint64(ev.TID))
	dst = appendUintField(dst, `,"ppid":`, uint64(ev.PPID))
	dst = appendUintField(dst, `,"uid":`, uint64(ev.UID))
	dst = appendUintField(dst, `,"euid":`, uint64(ev.EUID))
	dst = appendUintField(dst, `,"gid":`, uint64(ev.GID))
	dst = appendUintField(dst, `,"egid":`, uint64(ev.EGID))
	dst = appendUintField(dst, `,"auid":`, uint64(ev.AUID))
	dst = append(dst, `,"comm":`...)
	dst = appendTextJSON(dst, ev.Comm)
	dst = append(dst, `,"exe":`...)
	dst = appendTextJSON(dst, ev.Exe)
	dst = appendNonZeroUintField(dst, `,"exe_dev":`, ev.ExeDev)
	dst = appendNonZeroUintField(dst, `,"exe_ino":`, ev.ExeIno)
	dst = appendOptUintField(dst, `,"exe_owner":`, ev.ExeOwner)
	dst = appendTextField(dst, `,"exe_origin":`, ev.ExeOrigin)
	dst = appendStringField(dst, `,"exe_fs":`, ev.ExeFS)
	dst = appendNonZeroUintField(dst, `,"mnt_ns":`, ev.MntNS)
	dst = appendTextField(dst, `,"script":`, ev.Script)
	dst = appendStringField(dst, `,"exe_sha256":`, ev.ExeSHA256)
	dst = appendTextField(dst, `,"filename":`, ev.Filename)
	if len(ev.Args) > 0 {
		dst = append(dst, `,"args":[`...)
		for i, a := range ev.Args {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendTextJSON(dst, a)
		}
		dst = append(dst, ']')
	}
	if ev.ArgsTruncated {
		dst = append(dst, `,"args_truncated":true`...)
	}
	dst = appendTextField(dst, `,"cwd":`, ev.Cwd)
	dst = appendTextField(dst, `,"tty":`, ev.TTY)
	dst = appendTextField(dst, `,"cgroup":`, ev.Cgroup)
	if ev.ContainerID != "" {
		dst = append(dst, `,"container_id":`...)
		dst = appendStringJSON(dst, ev.ContainerID)
	}
	dst = appendTextField(dst, `,"container_name":`, ev.ContainerName)
	dst = appendTextField(dst, `,"container_image":`, ev.ContainerImage)
	dst = appendStringField(dst, `,"container_runtime":`, ev.ContainerRuntime)
	dst = appendTextField(dst, `,"parent_exe":`, ev.ParentExe)
	if len(ev.Ancestors) > 0 {
		dst = append(dst, `,"ancestors":[`...)
		for i, a := range ev.Ancestors {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"pid":`...)
			dst = strconv.AppendUint(dst, uint64(a.PID), 10)
			dst = append(dst, `,"exe":`...)
			dst = appendTextJSON(dst, a.Exe)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"outcome":`...)
	dst = appendStringJSON(dst, string(ev.Outcome))
	dst = appendStringField(dst, `,"errno":`, ev.Errno)
	dst = appendStringField(dst, `,"method":`, ev.Method)
	dst = appendOptUintField(dst, `,"old_uid":`, ev.OldUID)
	dst = appendOptUintField(dst, `,"old_euid":`, ev.OldEUID)
	dst = appendOptUintField(dst, `,"new_uid":`, ev.NewUID)
	dst = appendOptUintField(dst, `,"new_euid":`, ev.NewEUID)
	dst = appendOptIntField(dst, `,"exit_code":`, ev.ExitCode)
	dst = appendStringField(dst, `,"signal":`, ev.Signal)
	dst = appendBoolField(dst, `,"core_dumped":true`, ev.CoreDumped)
	dst = appendIntField(dst, `,"duration_ns":`, ev.DurationNS)
	return append(dst, '}')
}

// appendNonZeroUintField writes an omitempty unsigned field.
func appendNonZeroUintField(dst []byte, name string, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return appendUintField(dst, name, v)
}

// appendIntField writes an omitempty signed field.
func appendIntField(dst []byte, name string, v int64) []byte {
	if v == 0 {
		return dst
	}
	dst = append(dst, name...)
	return strconv.AppendInt(dst, v, 10)
}

// appendOptIntField writes a present pointer, zero included.
func appendOptIntField(dst []byte, name string, v *int) []byte {
	if v == nil {
		return dst
	}
	dst = append(dst, name...)
	return strconv.AppendInt(dst, int64(*v), 10)
}

// appendBoolField writes field (name and value) when v is true.
func appendBoolField(dst []byte, field string, v bool) []byte {
	if !v {
		return dst
	}
	return append(dst, field...)
}

func appendUintField(dst []byte, name string, v uint64) []byte {
	dst = append(dst, name...)
	return strconv.AppendUint(dst, v, 10)
}

func appendOptUintField(dst []byte, name string, v *uint32) []byte {
	if v == nil {
		return dst
	}
	return appendUintField(dst, name, uint64(*v))
}

// appendTextField writes an omitempty Text field.
func appendTextField(dst []byte, name string, t event.Text) []byte {
	if t == "" {
		return dst
	}
	dst = append(dst, name...)
	return appendTextJSON(dst, t)
}

// appendStringField writes an omitempty string field.
func appendStringField(dst []byte, name, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, name...)
	return appendStringJSON(dst, s)
}

const hexDigits = "0123456789abcdef"

func appendHex16(dst []byte, v uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&0xf])
	}
	return dst
}

// appendTimeJSON writes what time.Time.MarshalJSON writes.
func appendTimeJSON(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendTextJSON writes event.Text's own JSON form (invalid bytes as
// \udcXX) with <, > and & escaped for HTML safety, as encoding/json does
// to the output of every MarshalJSON method.
func appendTextJSON(dst []byte, t event.Text) []byte {
	return t.AppendJSONHTMLSafe(dst)
}

// appendStringJSON writes a Go string the way encoding/json does with HTML
// escaping on: control characters, quotes, backslashes, <, > and & escaped,
// invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped.
func appendStringJSON(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

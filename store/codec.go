package store

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// Incidents are stored in the protobuf wire format, written field by field
// with protowire rather than generated code: the shared types carry no
// protobuf tags and must stay plain Go structs. The wire format gives three
// things JSON does not: about 40% of the size (field numbers instead of
// names, varints instead of decimal text), decoding an order of magnitude
// faster, and exact bytes for event.Text without any escaping. Unknown
// field numbers are skipped, so a field added later can be read by a newer
// decoder from old records (it is simply absent). A known field with
// another wire type than the one written here is a corrupt record
// (codec_wire.go lists each field's wire type).
//
// Field numbers are part of the on-disk schema: never reuse or renumber
// one. The ID is not stored in the value; it is the key.

// Incident field numbers.
const (
	fIncTime      = 2
	fIncHost      = 3
	fIncRule      = 4
	fIncType      = 5
	fIncOutcome   = 6
	fIncSeverity  = 7
	fIncSummary   = 8
	fIncStatus    = 9
	fIncProcess   = 10
	fIncCount     = 11
	fIncFirstSeen = 12
	fIncLastSeen  = 13
	fIncFate      = 14
	fIncHistory   = 25
	fIncDistinct  = 15
	fIncSample    = 16
	fIncScope     = 17
)

// Event field numbers.
const (
	fEvType          = 1
	fEvTime          = 2
	fEvPID           = 3
	fEvTID           = 4
	fEvPPID          = 5
	fEvUID           = 6
	fEvEUID          = 7
	fEvGID           = 8
	fEvEGID          = 9
	fEvAUID          = 10
	fEvComm          = 11
	fEvExe           = 12
	fEvFilename      = 13
	fEvArgs          = 14
	fEvArgsTruncated = 15
	fEvCwd           = 16
	fEvTTY           = 17
	fEvCgroup        = 18
	fEvContainerID   = 19
	fEvParentExe     = 20
	fEvAncestors     = 21
	fEvOutcome       = 22
	fEvErrno         = 23
	fEvMethod        = 24
	fEvOldUID        = 25
	fEvOldEUID       = 26
	fEvNewUID        = 27
	fEvNewEUID       = 28
	fEvExitCode      = 29
	fEvSignal        = 30
	fEvCoreDumped    = 31
	fEvDurationNS    = 32
	fEvExeDev        = 33
	fEvExeIno        = 34
	fEvExeOwner      = 35
	fEvExeOrigin     = 36
	fEvExeFS         = 37
	fEvMntNS         = 38
	fEvScript        = 39
	// 50-59: container context.
	fEvContainerName    = 50
	fEvContainerImage   = 51
	fEvContainerRuntime = 52
	// 60-69: the binary's content.
	fEvExeSHA256 = 60
)

// Fate field numbers.
const (
	fFateTime       = 1
	fFateExitCode   = 2
	fFateSignal     = 3
	fFateCoreDumped = 4
	fFateDurationNS = 5
)

// Change (history entry) and actor field numbers.
const (
	fChangeTime = 1
	fChangeFrom = 2
	fChangeTo   = 3
	fChangeBy   = 4
	fChangeSkip = 5

	fActorUID     = 1
	fActorPID     = 2
	fActorUser    = 3
	fActorSSHUser = 4
	fActorSSHFrom = 5
	fActorVia     = 6
)

// Ancestor and time field numbers.
const (
	fAncPID = 1
	fAncExe = 2

	fTimeSec    = 1
	fTimeNsec   = 2
	fTimeOffset = 3
)

// encoder holds scratch buffers so that encoding a batch allocates little.
type encoder struct {
	ev  []byte
	sub []byte
}

// encodeIncident appends the stored form of inc to dst.
func (e *encoder) encodeIncident(dst []byte, inc *rules.Incident) []byte {
	dst = appendTime(dst, fIncTime, inc.Time)
	dst = appendStr(dst, fIncHost, inc.Host)
	dst = appendStr(dst, fIncRule, inc.Rule)
	dst = appendStr(dst, fIncType, inc.Type)
	dst = appendStr(dst, fIncOutcome, string(inc.Outcome))
	dst = appendUint(dst, fIncSeverity, uint64(inc.Severity))
	dst = appendStr(dst, fIncSummary, string(inc.Summary))
	dst = appendStr(dst, fIncStatus, string(inc.Status))
	e.ev = e.encodeEvent(e.ev[:0], &inc.Process)
	dst = protowire.AppendTag(dst, fIncProcess, protowire.BytesType)
	dst = protowire.AppendBytes(dst, e.ev)
	dst = appendUint(dst, fIncCount, inc.Count)
	dst = appendTime(dst, fIncFirstSeen, inc.FirstSeen)
	dst = appendTime(dst, fIncLastSeen, inc.LastSeen)
	if f := inc.Fate; f != nil {
		e.sub = appendTime(e.sub[:0], fFateTime, f.Time)
		e.sub = appendOptInt(e.sub, fFateExitCode, f.ExitCode)
		e.sub = appendStr(e.sub, fFateSignal, f.Signal)
		e.sub = appendBool(e.sub, fFateCoreDumped, f.CoreDumped)
		e.sub = appendSint(e.sub, fFateDurationNS, f.DurationNS)
		dst = protowire.AppendTag(dst, fIncFate, protowire.BytesType)
		dst = protowire.AppendBytes(dst, e.sub)
	}
	for i := range inc.History {
		e.sub = appendChange(e.sub[:0], &inc.History[i])
		dst = protowire.AppendTag(dst, fIncHistory, protowire.BytesType)
		dst = protowire.AppendBytes(dst, e.sub)
	}
	dst = appendUint(dst, fIncDistinct, inc.Distinct)
	for _, name := range inc.Sample {
		dst = protowire.AppendTag(dst, fIncSample, protowire.BytesType)
		dst = protowire.AppendString(dst, string(name))
	}
	dst = appendStr(dst, fIncScope, inc.Scope)
	return dst
}

// appendChange writes one history entry; its actor is a nested message.
func appendChange(dst []byte, c *rules.Change) []byte {
	dst = appendTime(dst, fChangeTime, c.Time)
	dst = appendStr(dst, fChangeFrom, string(c.From))
	dst = appendStr(dst, fChangeTo, string(c.To))
	var buf [128]byte
	a := appendUint(buf[:0], fActorUID, uint64(c.By.UID))
	a = appendUint(a, fActorPID, uint64(c.By.PID))
	a = appendStr(a, fActorUser, c.By.User)
	a = appendStr(a, fActorSSHUser, c.By.SSHUser)
	a = appendStr(a, fActorSSHFrom, c.By.SSHFrom)
	a = appendStr(a, fActorVia, c.By.Via)
	dst = protowire.AppendTag(dst, fChangeBy, protowire.BytesType)
	dst = protowire.AppendBytes(dst, a)
	return appendStr(dst, fChangeSkip, c.Skip)
}

func (e *encoder) encodeEvent(dst []byte, ev *event.Event) []byte {
	dst = appendStr(dst, fEvType, string(ev.Type))
	dst = appendTime(dst, fEvTime, ev.Time)
	dst = appendUint(dst, fEvPID, uint64(ev.PID))
	dst = appendUint(dst, fEvTID, uint64(ev.TID))
	dst = appendUint(dst, fEvPPID, uint64(ev.PPID))
	dst = appendUint(dst, fEvUID, uint64(ev.UID))
	dst = appendUint(dst, fEvEUID, uint64(ev.EUID))
	dst = appendUint(dst, fEvGID, uint64(ev.GID))
	dst = appendUint(dst, fEvEGID, uint64(ev.EGID))
	dst = appendUint(dst, fEvAUID, uint64(ev.AUID))
	dst = appendStr(dst, fEvComm, string(ev.Comm))
	dst = appendStr(dst, fEvExe, string(ev.Exe))
	dst = appendUint(dst, fEvExeDev, ev.ExeDev)
	dst = appendUint(dst, fEvExeIno, ev.ExeIno)
	dst = appendOptUint(dst, fEvExeOwner, ev.ExeOwner)
	dst = appendStr(dst, fEvExeOrigin, string(ev.ExeOrigin))
	dst = appendStr(dst, fEvExeFS, ev.ExeFS)
	dst = appendUint(dst, fEvMntNS, ev.MntNS)
	dst = appendStr(dst, fEvScript, string(ev.Script))
	dst = appendStr(dst, fEvExeSHA256, ev.ExeSHA256)
	dst = appendStr(dst, fEvFilename, string(ev.Filename))
	for _, a := range ev.Args {
		// Every element is written, even an empty one, so argv keeps its shape.
		dst = protowire.AppendTag(dst, fEvArgs, protowire.BytesType)
		dst = protowire.AppendString(dst, string(a))
	}
	if ev.ArgsTruncated {
		dst = appendUint(dst, fEvArgsTruncated, 1)
	}
	dst = appendStr(dst, fEvCwd, string(ev.Cwd))
	dst = appendStr(dst, fEvTTY, string(ev.TTY))
	dst = appendStr(dst, fEvCgroup, string(ev.Cgroup))
	dst = appendStr(dst, fEvContainerID, ev.ContainerID)
	dst = appendStr(dst, fEvContainerName, string(ev.ContainerName))
	dst = appendStr(dst, fEvContainerImage, string(ev.ContainerImage))
	dst = appendStr(dst, fEvContainerRuntime, ev.ContainerRuntime)
	dst = appendStr(dst, fEvParentExe, string(ev.ParentExe))
	for _, a := range ev.Ancestors {
		e.sub = appendUint(e.sub[:0], fAncPID, uint64(a.PID))
		e.sub = appendStr(e.sub, fAncExe, string(a.Exe))
		dst = protowire.AppendTag(dst, fEvAncestors, protowire.BytesType)
		dst = protowire.AppendBytes(dst, e.sub)
	}
	dst = appendStr(dst, fEvOutcome, string(ev.Outcome))
	dst = appendStr(dst, fEvErrno, ev.Errno)
	dst = appendStr(dst, fEvMethod, ev.Method)
	dst = appendOptUint(dst, fEvOldUID, ev.OldUID)
	dst = appendOptUint(dst, fEvOldEUID, ev.OldEUID)
	dst = appendOptUint(dst, fEvNewUID, ev.NewUID)
	dst = appendOptUint(dst, fEvNewEUID, ev.NewEUID)
	dst = appendOptInt(dst, fEvExitCode, ev.ExitCode)
	dst = appendStr(dst, fEvSignal, ev.Signal)
	dst = appendBool(dst, fEvCoreDumped, ev.CoreDumped)
	dst = appendSint(dst, fEvDurationNS, ev.DurationNS)
	return dst
}

// appendOptInt writes a present pointer even when it points at zero, so
// that "exit code 0" and "no exit code" stay different.
func appendOptInt(dst []byte, num protowire.Number, v *int) []byte {
	if v == nil {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(*v)))
}

// appendSint writes a non-zero signed value zigzag-encoded.
func appendSint(dst []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, protowire.EncodeZigZag(v))
}

// appendBool writes true as 1; false is the default and is left out.
func appendBool(dst []byte, num protowire.Number, v bool) []byte {
	if !v {
		return dst
	}
	return appendUint(dst, num, 1)
}

// appendStr writes a non-empty string field; empty strings are the default.
func appendStr(dst []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendString(dst, s)
}

func appendUint(dst []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

// appendOptUint writes a present pointer even when it points at zero, so
// that "uid 0" and "not known" stay different.
func appendOptUint(dst []byte, num protowire.Number, v *uint32) []byte {
	if v == nil {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, uint64(*v))
}

// appendTime writes seconds, nanoseconds and the zone offset, so the JSON
// form after a round trip shows the same clock time and offset as before.
func appendTime(dst []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return dst
	}
	var buf [32]byte
	b := buf[:0]
	b = protowire.AppendTag(b, fTimeSec, protowire.VarintType)
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(t.Unix()))
	if ns := t.Nanosecond(); ns != 0 {
		b = protowire.AppendTag(b, fTimeNsec, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ns))
	}
	if _, off := t.Zone(); off != 0 {
		b = protowire.AppendTag(b, fTimeOffset, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeZigZag(int64(off)))
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, b)
}

var errCorruptRecord = errors.New("corrupt incident record")

// decodeIncident parses a stored record. key is the incident's bucket key.
func decodeIncident(key, val []byte, inc *rules.Incident) error {
	if len(key) != 8 {
		return fmt.Errorf("%w: key of %d bytes", errCorruptRecord, len(key))
	}
	*inc = rules.Incident{ID: idFromKey(key)}
	return eachField(val, incWire, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		var err error
		switch num {
		case fIncTime:
			inc.Time, err = decodeTime(b)
		case fIncHost:
			inc.Host = string(b)
		case fIncRule:
			inc.Rule = string(b)
		case fIncType:
			inc.Type = string(b)
		case fIncOutcome:
			inc.Outcome = event.Outcome(b)
		case fIncSeverity:
			inc.Severity = rules.Severity(v)
		case fIncSummary:
			inc.Summary = event.Text(b)
		case fIncStatus:
			inc.Status = rules.Status(b)
		case fIncProcess:
			err = decodeEvent(b, &inc.Process)
		case fIncCount:
			inc.Count = v
		case fIncFirstSeen:
			inc.FirstSeen, err = decodeTime(b)
		case fIncLastSeen:
			inc.LastSeen, err = decodeTime(b)
		case fIncFate:
			inc.Fate = &event.Fate{}
			err = decodeFate(b, inc.Fate)
		case fIncDistinct:
			inc.Distinct = v
		case fIncSample:
			inc.Sample = append(inc.Sample, event.Text(b))
		case fIncScope:
			inc.Scope = string(b)
		case fIncHistory:
			var c rules.Change
			err = decodeChange(b, &c)
			inc.History = append(inc.History, c)
		}
		return err
	})
}

func decodeChange(buf []byte, c *rules.Change) error {
	return eachField(buf, changeWire, func(num protowire.Number, _ protowire.Type, _ uint64, b []byte) error {
		var err error
		switch num {
		case fChangeTime:
			c.Time, err = decodeTime(b)
		case fChangeFrom:
			c.From = rules.Status(b)
		case fChangeTo:
			c.To = rules.Status(b)
		case fChangeSkip:
			c.Skip = string(b)
		case fChangeBy:
			err = eachField(b, actorWire, func(num protowire.Number, _ protowire.Type, v uint64, b []byte) error {
				switch num {
				case fActorUID:
					c.By.UID = uint32(v)
				case fActorPID:
					c.By.PID = uint32(v)
				case fActorUser:
					c.By.User = string(b)
				case fActorSSHUser:
					c.By.SSHUser = string(b)
				case fActorSSHFrom:
					c.By.SSHFrom = string(b)
				case fActorVia:
					c.By.Via = string(b)
				}
				return nil
			})
		}
		return err
	})
}

func decodeEvent(buf []byte, ev *event.Event) error {
	return eachField(buf, evWire, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		var err error
		switch num {
		case fEvType:
			ev.Type = event.EventType(b)
		case fEvTime:
			ev.Time, err = decodeTime(b)
		case fEvPID:
			ev.PID = uint32(v)
		case fEvTID:
			ev.TID = uint32(v)
		case fEvPPID:
			ev.PPID = uint32(v)
		case fEvUID:
			ev.UID = uint32(v)
		case fEvEUID:
			ev.EUID = uint32(v)
		case fEvGID:
			ev.GID = uint32(v)
		case fEvEGID:
			ev.EGID = uint32(v)
		case fEvAUID:
			ev.AUID = uint32(v)
		case fEvComm:
			ev.Comm = event.Text(b)
		case fEvExe:
			ev.Exe = event.Text(b)
		case fEvExeDev:
			ev.ExeDev = v
		case fEvExeIno:
			ev.ExeIno = v
		case fEvExeOwner:
			ev.ExeOwner = event.Uint32(uint32(v))
		case fEvExeOrigin:
			ev.ExeOrigin = event.Text(b)
		case fEvExeFS:
			ev.ExeFS = string(b)
		case fEvMntNS:
			ev.MntNS = v
		case fEvScript:
			ev.Script = event.Text(b)
		case fEvExeSHA256:
			ev.ExeSHA256 = string(b)
		case fEvFilename:
			ev.Filename = event.Text(b)
		case fEvArgs:
			ev.Args = append(ev.Args, event.Text(b))
		case fEvArgsTruncated:
			ev.ArgsTruncated = v != 0
		case fEvCwd:
			ev.Cwd = event.Text(b)
		case fEvTTY:
			ev.TTY = event.Text(b)
		case fEvCgroup:
			ev.Cgroup = event.Text(b)
		case fEvContainerID:
			ev.ContainerID = string(b)
		case fEvContainerName:
			ev.ContainerName = event.Text(b)
		case fEvContainerImage:
			ev.ContainerImage = event.Text(b)
		case fEvContainerRuntime:
			ev.ContainerRuntime = string(b)
		case fEvParentExe:
			ev.ParentExe = event.Text(b)
		case fEvAncestors:
			var a event.Ancestor
			err = eachField(b, ancWire, func(num protowire.Number, _ protowire.Type, v uint64, b []byte) error {
				switch num {
				case fAncPID:
					a.PID = uint32(v)
				case fAncExe:
					a.Exe = event.Text(b)
				}
				return nil
			})
			ev.Ancestors = append(ev.Ancestors, a)
		case fEvOutcome:
			ev.Outcome = event.Outcome(b)
		case fEvErrno:
			ev.Errno = string(b)
		case fEvMethod:
			ev.Method = string(b)
		case fEvOldUID:
			ev.OldUID = event.Uint32(uint32(v))
		case fEvOldEUID:
			ev.OldEUID = event.Uint32(uint32(v))
		case fEvNewUID:
			ev.NewUID = event.Uint32(uint32(v))
		case fEvNewEUID:
			ev.NewEUID = event.Uint32(uint32(v))
		case fEvExitCode:
			ev.ExitCode = event.Int(int(protowire.DecodeZigZag(v)))
		case fEvSignal:
			ev.Signal = string(b)
		case fEvCoreDumped:
			ev.CoreDumped = v != 0
		case fEvDurationNS:
			ev.DurationNS = protowire.DecodeZigZag(v)
		}
		return err
	})
}

func decodeFate(buf []byte, f *event.Fate) error {
	return eachField(buf, fateWire, func(num protowire.Number, _ protowire.Type, v uint64, b []byte) error {
		var err error
		switch num {
		case fFateTime:
			f.Time, err = decodeTime(b)
		case fFateExitCode:
			f.ExitCode = event.Int(int(protowire.DecodeZigZag(v)))
		case fFateSignal:
			f.Signal = string(b)
		case fFateCoreDumped:
			f.CoreDumped = v != 0
		case fFateDurationNS:
			f.DurationNS = protowire.DecodeZigZag(v)
		}
		return err
	})
}

// decodeTime reads a time written by appendTime. It gives back time.Local
// when the stored offset is the local one at that instant (the usual case,
// and the one the TUI formats best), UTC for offset zero, and an unnamed
// fixed zone otherwise, so the JSON text of the time never changes.
func decodeTime(b []byte) (time.Time, error) {
	var sec, off int64
	var nsec uint64
	err := eachField(b, timeWire, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
		switch num {
		case fTimeSec:
			sec = protowire.DecodeZigZag(v)
		case fTimeNsec:
			nsec = v
		case fTimeOffset:
			off = protowire.DecodeZigZag(v)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	if nsec >= 1e9 {
		return time.Time{}, fmt.Errorf("%w: nanoseconds %d out of range", errCorruptRecord, nsec)
	}
	t := time.Unix(sec, int64(nsec))
	if _, localOff := t.Zone(); int64(localOff) == off {
		return t, nil
	}
	if off == 0 {
		return t.UTC(), nil
	}
	return t.In(time.FixedZone("", int(off))), nil
}

// eachField walks the fields of one message, whose schema is want. For
// varint fields v holds the value; for length-delimited fields b holds the
// bytes (aliasing buf). A known field whose wire type is not the one
// procwatch writes is a corrupt record. Unknown fields (a newer writer's),
// of any wire type, are skipped without calling fn.
func eachField(buf []byte, want *wireTypes, fn func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return fmt.Errorf("%w: %v", errCorruptRecord, protowire.ParseError(n))
		}
		buf = buf[n:]
		var v uint64
		var b []byte
		switch kind := want.kind(num); {
		case kind == unknownField:
			n = protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return fmt.Errorf("%w: %v", errCorruptRecord, protowire.ParseError(n))
			}
			buf = buf[n:]
			continue
		case kind == varintField && typ == protowire.VarintType:
			v, n = protowire.ConsumeVarint(buf)
		case kind == bytesField && typ == protowire.BytesType:
			b, n = protowire.ConsumeBytes(buf)
		default:
			wantType := protowire.VarintType
			if kind == bytesField {
				wantType = protowire.BytesType
			}
			return fmt.Errorf("%w: field %d is %s, procwatch writes it as %s", errCorruptRecord, num, wireName(typ), wireName(wantType))
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errCorruptRecord, num, protowire.ParseError(n))
		}
		buf = buf[n:]
		if err := fn(num, typ, v, b); err != nil {
			return err
		}
	}
	return nil
}

//go:build linux

package sensor

import (
	"bytes"
	"log/slog"
	"strings"

	"github.com/procwatch/procwatch/event"
)

// A decoder turns one ring buffer record of its type into the events it
// makes, appended to out, and keeps the process table current. A record
// can make none (a fork, which only feeds the table), one, or two (an
// exec or exit that also reveals an unexplained escalation).
type decoder func(s *Sensor, h *rawHeader, data []byte, c clock, out []event.Event) []event.Event

// decoders holds one decoder per record type (enum event_type).
var decoders = [...]decoder{
	rawExec:       (*Sensor).decodeExec,
	rawExecFail:   (*Sensor).decodeExecFail,
	rawEscalation: (*Sensor).decodeEscalation,
	rawExit:       (*Sensor).decodeExit,
	rawFork:       (*Sensor).decodeFork,
}

// decode hands a record to the decoder of its type; an unknown type is
// counted as malformed.
func (s *Sensor) decode(h *rawHeader, data []byte, c clock, out []event.Event) []event.Event {
	if h.Type >= uint32(len(decoders)) || decoders[h.Type] == nil {
		s.malformed.Add(1)
		return out
	}
	return decoders[h.Type](s, h, data, c, out)
}

// begin splits a record's sections and appends an event holding what
// every event has. ok is false, and the record counted as malformed, when
// its sections do not fit.
func (s *Sensor) begin(h *rawHeader, data []byte, c clock, out []event.Event) (_ []event.Event, sec sections, ok bool) {
	sec, err := splitSections(h, data)
	if err != nil {
		s.malformed.Add(1)
		slog.Debug("dropping malformed sensor record", "err", err)
		return out, sec, false
	}
	return append(out, event.Event{
		Time:  c.wall(h.TsBootNs),
		PID:   h.Pid,
		TID:   h.Tid,
		PPID:  h.Ppid,
		UID:   h.Uid,
		EUID:  h.Euid,
		GID:   h.Gid,
		EGID:  h.Egid,
		AUID:  h.Auid,
		Comm:  s.comms.text(&h.Comm),
		MntNS: uint64(h.MntNs),
	}), sec, true
}

// decodeFork records a new process. The most frequent record, and
// internal only: it makes no event and stays cheap.
func (s *Sensor) decodeFork(h *rawHeader, _ []byte, _ clock, out []event.Event) []event.Event {
	s.fork.Add(1)
	s.table.fork(h.Pid, ticks(h.StartNs), h.Ppid, ticks(h.PstartNs), h.Uid, h.Euid)
	return out
}

// decodeExec makes the event of a successful exec, and an unexplained
// escalation when the process now holds root ids nothing explains.
func (s *Sensor) decodeExec(h *rawHeader, data []byte, c clock, out []event.Event) []event.Event {
	out, sec, ok := s.begin(h, data, c, out)
	if !ok {
		return out
	}
	start, pstart := ticks(h.StartNs), ticks(h.PstartNs)
	ev := &out[len(out)-1]
	s.execContext(h, &sec, ev)
	ev.Outcome = event.Success
	ev.Exe = s.recordedExe(h, &sec)
	id := s.exeIdentityOf(h, &sec, ev.Exe, ev.MntNS)
	setIdentity(ev, id)
	if h.Flags&flagScript != 0 {
		ev.Script = scriptPath(h, &sec, ev.Filename, ev.Cwd)
	}
	var x event.Event
	raised := h.Flags&flagOldCreds != 0 && s.unexplained(ev, start, pstart, h.OldUid, h.OldEuid, &x)
	s.table.exec(h.Pid, procInfo{
		start: start, ppid: h.Ppid, pstart: pstart,
		exe: ev.Exe, id: id, script: ev.Script,
		args: ev.Args, cwd: ev.Cwd, tty: ev.TTY,
		uid: h.Uid, euid: h.Euid,
	})
	s.withAncestry(ev, pstart)
	s.exec.Add(1)
	if raised {
		out = append(out, x)
	}
	return out
}

// decodeExecFail makes the event of an exec the kernel refused: nothing
// ran, so exe is the requested path made absolute.
func (s *Sensor) decodeExecFail(h *rawHeader, data []byte, c clock, out []event.Event) []event.Event {
	out, sec, ok := s.begin(h, data, c, out)
	if !ok {
		return out
	}
	ev := &out[len(out)-1]
	s.execContext(h, &sec, ev)
	ev.Outcome = event.Failure
	ev.Errno = errnoName(h.Retval)
	ev.Exe = requestedPath(h, &sec, ev.Filename, ev.Cwd)
	s.withAncestry(ev, ticks(h.PstartNs))
	s.exec.Add(1)
	return out
}

// execContext fills the fields an exec record carries, successful or not.
// The filename, cwd and cgroup come from the sensor's text caches: an exec
// storm repeats them, and each would otherwise be a new string per exec.
func (s *Sensor) execContext(h *rawHeader, sec *sections, ev *event.Event) {
	ev.Type = event.TypeExec
	ev.Filename = s.filenames.get(cstr(sec.filename), plainText)
	ev.Args = splitArgs(sec.args)
	ev.ArgsTruncated = h.Flags&flagArgsTrunc != 0
	ev.Cwd = truncatedPath(s.paths.get(sec.cwd, joinPath), h.Flags&flagCwdTrunc != 0)
	ev.TTY = ttyName(sec.tty)
	cg := s.cgroups.get(sec.cgroup)
	ev.Cgroup, ev.ContainerID = cg.path, cg.containerID
}

// decodeEscalation makes the event of a suid exec or a set*uid call that
// gained (or was refused) root.
func (s *Sensor) decodeEscalation(h *rawHeader, data []byte, c clock, out []event.Event) []event.Event {
	out, sec, ok := s.begin(h, data, c, out)
	if !ok {
		return out
	}
	start := ticks(h.StartNs)
	ev := &out[len(out)-1]
	ev.Type = event.TypeEscalation
	ev.Exe = s.recordedExe(h, &sec)
	setIdentity(ev, s.exeIdentityOf(h, &sec, ev.Exe, ev.MntNS))
	ev.Filename = event.Text(cstr(sec.filename))
	s.withProcess(ev, start)
	if int(h.Method) < len(methodNames) {
		ev.Method = methodNames[h.Method]
	}
	ev.OldUID, ev.OldEUID = event.Uint32(h.OldUid), event.Uint32(h.OldEuid)
	ev.NewUID, ev.NewEUID = event.Uint32(h.NewUid), event.Uint32(h.NewEuid)
	if h.Retval == 0 {
		ev.Outcome = event.Success
		s.table.setCreds(h.Pid, start, h.NewUid, h.NewEuid)
	} else {
		ev.Outcome = event.Failure
		ev.Errno = errnoName(h.Retval)
	}
	s.withAncestry(ev, ticks(h.PstartNs))
	s.escalation.Add(1)
	return out
}

// decodeExit makes the event of a process's end, with what the table knew
// of it, and an unexplained escalation when it ends holding root ids
// nothing explains.
func (s *Sensor) decodeExit(h *rawHeader, data []byte, c clock, out []event.Event) []event.Event {
	out, _, ok := s.begin(h, data, c, out)
	if !ok {
		return out
	}
	start, pstart := ticks(h.StartNs), ticks(h.PstartNs)
	ev := &out[len(out)-1]
	ev.Type = event.TypeExit
	s.withProcess(ev, start)
	ev.Exe = deleted(ev.Exe, h.Flags&flagExeDeleted != 0)
	status := int(h.ExitCode)
	code := status >> 8 & 0xff
	sig := status & 0x7f
	ev.ExitCode = event.Int(code)
	if sig != 0 {
		ev.Signal = signalName(sig)
	}
	ev.CoreDumped = status&0x80 != 0
	ev.DurationNS = int64(h.DurationNs)
	if code == 0 && sig == 0 {
		ev.Outcome = event.Success
	} else {
		ev.Outcome = event.Failure
	}
	ev.ParentExe = s.parentExe(h.Ppid, pstart)
	var x event.Event
	raised := s.unexplained(ev, start, pstart, h.Uid, h.Euid, &x)
	s.table.exit(h.Pid, start)
	s.exit.Add(1)
	if raised {
		out = append(out, x)
	}
	return out
}

// exeIdentityOf decodes the running binary's identity from a record that
// has one (exec, escalation). An exec storm runs the same few binaries over
// and over, so identities are interned: a record whose identity matches a
// cached one, origin bytes included, shares it without allocating.
func (s *Sensor) exeIdentityOf(h *rawHeader, sec *sections, exe event.Text, mntNS uint64) *exeIdentity {
	if h.Flags&flagExeID == 0 {
		return nil
	}
	key := idKey{dev: h.ExeDev, ino: h.ExeIno, owner: h.ExeOwner, mntNS: mntNS, trunc: h.Flags&flagOriginTrunc != 0}
	same := h.Flags&flagOriginSame != 0 || bytes.Equal(sec.origin, sec.exe) && h.Flags&(flagOriginTrunc|flagExeTrunc) == 0
	rawOrigin := sec.origin
	if same {
		rawOrigin = sec.exe
	}
	if c, ok := s.ids[key]; ok && c.rawOrigin == string(rawOrigin) && c.id.fs == string(cstr(sec.fs)) {
		return c.id
	}
	id := &exeIdentity{
		dev:   kernelDev(h.ExeDev),
		ino:   h.ExeIno,
		owner: s.table.owner(h.ExeOwner),
		fs:    string(cstr(sec.fs)),
		mntNS: mntNS,
	}
	if same {
		// The usual case: the path within the filesystem is the path.
		id.origin = event.Text(strings.TrimSuffix(string(exe), " (deleted)"))
	} else {
		id.origin = truncatedPath(joinPath(sec.origin), key.trunc)
	}
	if s.ids == nil || len(s.ids) >= maxIDs {
		s.ids = make(map[idKey]cachedID, 256)
	}
	s.ids[key] = cachedID{id: id, rawOrigin: string(rawOrigin)}
	return id
}

// idKey and cachedID intern binary identities; see exeIdentityOf.
type idKey struct {
	dev, owner uint32
	ino, mntNS uint64
	trunc      bool
}

type cachedID struct {
	id        *exeIdentity
	rawOrigin string // the origin section as the BPF side wrote it (the exe's, when the same)
}

// maxIDs bounds the identity cache.
const maxIDs = 4096

// setIdentity copies a binary's identity into ev.
func setIdentity(ev *event.Event, id *exeIdentity) {
	if id == nil {
		return
	}
	ev.ExeDev, ev.ExeIno, ev.ExeOwner = id.dev, id.ino, id.owner
	ev.ExeOrigin, ev.ExeFS = id.origin, id.fs
	if ev.MntNS == 0 {
		ev.MntNS = id.mntNS
	}
}

// recordedExe decodes the exe path of an exec or escalation record.
func (s *Sensor) recordedExe(h *rawHeader, sec *sections) event.Text {
	exe := truncatedPath(s.paths.get(sec.exe, joinPath), h.Flags&flagExeTrunc != 0)
	return deleted(exe, h.Flags&flagExeDeleted != 0)
}

// withProcess fills what the process table knows of ev's process and the
// record did not carry: the exe and its identity, the script, and the
// argv, cwd and tty of its last exec.
func (s *Sensor) withProcess(ev *event.Event, start uint64) {
	info, ok := s.table.procs[ev.PID]
	if !ok || !sameProcess(info.start, start) {
		return
	}
	if ev.Exe == "" {
		ev.Exe = info.exe
		setIdentity(ev, info.id)
	}
	if ev.Script == "" && ev.Exe == info.exe {
		ev.Script = info.script
	}
	ev.Args, ev.Cwd, ev.TTY = info.args, info.cwd, info.tty
}

// unexplained fills x with an "unexplained" escalation, and reports true,
// when ev's process, last known without any root id, is seen holding one
// (uid, euid) that no suid exec or set*uid call explains: the mark of a
// kernel exploit that swapped the process's credentials.
func (s *Sensor) unexplained(ev *event.Event, start, pstart uint64, uid, euid uint32, x *event.Event) bool {
	info, ok := s.table.procs[ev.PID]
	if !ok || !sameProcess(info.start, start) || !info.rootless() || (uid != 0 && euid != 0) {
		return false
	}
	*x = event.Event{
		Type: event.TypeEscalation, Time: ev.Time, PID: ev.PID, TID: ev.TID, PPID: ev.PPID,
		UID: uid, EUID: euid, GID: ev.GID, EGID: ev.EGID, AUID: ev.AUID, Comm: ev.Comm,
		Exe: info.exe, Script: info.script, Args: info.args, Cwd: info.cwd, TTY: info.tty, MntNS: ev.MntNS,
		Outcome: event.Success, Method: event.MethodUnexplained,
		OldUID: event.Uint32(info.uid), OldEUID: event.Uint32(info.euid), NewUID: event.Uint32(uid), NewEUID: event.Uint32(euid),
	}
	setIdentity(x, info.id)
	s.withAncestry(x, pstart)
	s.escalation.Add(1)
	s.table.setCreds(ev.PID, start, uid, euid)
	return true
}

func (s *Sensor) withAncestry(ev *event.Event, pstart uint64) {
	ev.Ancestors = s.table.ancestors(ev.PPID, pstart)
	if len(ev.Ancestors) > 0 {
		ev.ParentExe = ev.Ancestors[0].Exe
	}
}

func (s *Sensor) parentExe(ppid uint32, pstart uint64) event.Text {
	info, _ := s.table.lookup(ppid, pstart)
	return info.exe
}

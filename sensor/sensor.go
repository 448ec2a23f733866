package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/procwatch/procwatch/bpf"
	"github.com/procwatch/procwatch/event"
)

// DefaultRingBufferBytes is the ring buffer size when Config leaves it 0:
// room for several seconds of an exec storm at the largest event size.
const DefaultRingBufferBytes = 8 << 20

// sweepInterval is how often the process table forgets dead processes.
const sweepInterval = time.Minute

// Config tunes the sensor.
type Config struct {
	// RingBufferBytes is the ring buffer size: a power of two and a multiple
	// of the page size. 0 means DefaultRingBufferBytes.
	RingBufferBytes int
	// ProcDir is where the process table is seeded from; "" means /proc.
	ProcDir string
	// Mode forces a hook set (ModeBTF or ModeTracepoint); "" picks the best
	// the kernel offers.
	Mode string
	// Attached, when set, is called by Run once the programs are attached,
	// so a caller can say "watching" only when it is true.
	Attached func()
	// Logger receives the sensor's rare notices (such as mounting
	// tracefs); default slog.Default().
	Logger *slog.Logger
}

// Sensor owns the loaded BPF programs and turns their ring buffer records
// into Events. Load once with New; Run attaches and reads until its context
// ends, and may be called again after it returns (monitoring off, then on).
type Sensor struct {
	coll   *ebpf.Collection
	reader *ringbuf.Reader
	// wakeup is a non-blocking duplicate of the ring buffer's fd, registered
	// with Go's network poller; wakeupConn waits on it for readability.
	wakeup     *os.File
	wakeupConn syscall.RawConn
	mode       string
	ring       int
	table      *procTable
	cfg        Config

	mu      sync.Mutex // serialises Run
	running atomic.Bool
	// failure is why the last Run failed (a *string), nil when it did not.
	failure atomic.Pointer[string]

	exec, escalation, exit, fork, malformed atomic.Uint64
	drops                                   *ebpf.Map

	// extra holds an "unexplained" escalation that build found alongside
	// the event it decoded; Run delivers it right after. Reader goroutine only.
	extra     event.Event
	haveExtra bool

	comms commCache
}

// New loads the BPF programs (root or CAP_BPF+CAP_PERFMON needed) without
// attaching them. Its error says what the host lacks and how to fix it.
func New(cfg Config) (*Sensor, error) {
	ring := cfg.RingBufferBytes
	if ring == 0 {
		ring = DefaultRingBufferBytes
	}
	page := os.Getpagesize()
	if ring < page || ring&(ring-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: must be a power of two of at least %d bytes", ring, page)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := ensureTracefs(log); err != nil {
		return nil, err
	}
	coll, mode, err := open(ring, cfg.Mode)
	if err != nil {
		return nil, err
	}
	rd, err := ringbuf.NewReader(coll.Maps[bpf.ProcwatchMapEvents])
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	wakeup, wakeupConn, err := pollableFD(coll.Maps[bpf.ProcwatchMapEvents].FD())
	if err != nil {
		rd.Close()
		coll.Close()
		return nil, fmt.Errorf("watch ring buffer: %w", err)
	}
	procDir := cfg.ProcDir
	if procDir == "" {
		procDir = "/proc"
	}
	return &Sensor{
		coll:       coll,
		reader:     rd,
		wakeup:     wakeup,
		wakeupConn: wakeupConn,
		mode:       mode,
		ring:       ring,
		table:      newProcTable(procDir),
		cfg:        cfg,
		drops:      coll.Maps[bpf.ProcwatchMapDrops],
	}, nil
}

// pollableFD duplicates fd as a non-blocking file that Go's network poller
// watches, so waiting for ring buffer data parks a goroutine instead of
// holding a thread in epoll_wait.
func pollableFD(fd int) (*os.File, syscall.RawConn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(dup), "procwatch-ringbuf")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

// Mode names the hook set in use (ModeBTF or ModeTracepoint).
func (s *Sensor) Mode() string { return s.mode }

// Running reports whether the programs are attached.
func (s *Sensor) Running() bool { return s.running.Load() }

// Stats returns counts of events by type and of drops. Safe from any goroutine.
func (s *Sensor) Stats() event.Stats {
	state, msg := event.SensorOff, ""
	if s.running.Load() {
		state = event.SensorAttached
	} else if p := s.failure.Load(); p != nil {
		state, msg = event.SensorFailed, *p
	}
	return event.Stats{
		State:       state,
		Error:       msg,
		Exec:        s.exec.Load(),
		Escalation:  s.escalation.Load(),
		Exit:        s.exit.Load(),
		Fork:        s.fork.Load(),
		Drops:       s.readDrops(),
		Malformed:   s.malformed.Load(),
		BufferBytes: s.ring,
		Mode:        s.mode,
	}
}

func (s *Sensor) readDrops() uint64 {
	var perCPU []uint64
	if err := s.drops.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Close releases the BPF objects. Run must have returned.
func (s *Sensor) Close() error {
	s.wakeup.Close()
	s.reader.Close()
	s.coll.Close()
	return nil
}

// Run attaches the programs and calls handle for every event, from one
// goroutine, until ctx ends; then it detaches, delivers what was already in
// the ring buffer and returns. handle must not keep the *Event after it
// returns. An error means the programs could not be attached or the ring
// buffer failed.
func (s *Sensor) Run(ctx context.Context, handle func(*event.Event)) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failure.Store(nil)
	defer func() {
		if err != nil {
			msg := err.Error()
			s.failure.Store(&msg)
		}
	}()

	// Attach first, then seed: a process started in between is then in
	// /proc or in the ring buffer (or both; the events apply on top).
	links, err := attach(s.coll, s.mode)
	if err != nil {
		return err
	}
	s.table.seed()
	s.running.Store(true)
	if s.cfg.Attached != nil {
		s.cfg.Attached()
	}

	defer func() {
		detach(links)
		s.running.Store(false)
	}()
	// Wake a reader waiting for the ring buffer when ctx ends.
	stop := context.AfterFunc(ctx, func() { s.wakeup.SetReadDeadline(time.Now()) })
	defer stop()

	r := reading{clock: newClock(), lastSweep: time.Now()}
	busyTick := time.NewTicker(busyInterval)
	defer busyTick.Stop()
	busy := false
	for ctx.Err() == nil {
		if busy {
			// Events are flowing: collect them in batches on a tick instead
			// of being woken for each one.
			select {
			case <-ctx.Done():
			case <-busyTick.C:
			}
		} else {
			// Quiet: wait until the BPF side signals data (it does for the
			// first event after a quiet spell), polling slowly for the tail
			// of a burst.
			s.waitReadable(time.Now().Add(idlePoll))
		}
		n, err := s.drain(&r, handle)
		if err != nil {
			return err
		}
		busy = n > 0
	}
	// Detach, then deliver what the programs wrote before detaching.
	detach(links)
	links = nil
	s.running.Store(false)
	_, err = s.drain(&r, handle)
	return err
}

// waitReadable parks the goroutine until the ring buffer has data, the
// deadline passes or Run's context ends. It waits in Go's network poller,
// not in a blocking system call, so an idle sensor costs no runtime thread
// and keeps the scheduler's monitor thread asleep.
func (s *Sensor) waitReadable(deadline time.Time) {
	if s.reader.AvailableBytes() > 0 {
		return
	}
	s.wakeup.SetReadDeadline(deadline)
	s.wakeupConn.Read(func(uintptr) bool { return s.reader.AvailableBytes() > 0 })
}

// busyInterval is how often the reader collects events while they flow
// (an event then waits at most that long); idlePoll bounds how long it
// waits when they do not. The BPF side signals the first event after 10 ms
// of quiet (and early when the ring fills), so on a quiet host an event is
// read at once.
const (
	busyInterval = 50 * time.Millisecond
	idlePoll     = 100 * time.Millisecond
)

// reading is the reader goroutine's state between drains.
type reading struct {
	rec       ringbuf.Record
	ev        event.Event
	h         rawHeader
	clock     clock
	lastSweep time.Time
}

// drain delivers every record available now, without waiting, and returns
// how many records it read.
func (s *Sensor) drain(r *reading, handle func(*event.Event)) (int, error) {
	n := 0
	s.reader.SetDeadline(time.Now())
	for {
		err := s.reader.ReadInto(&r.rec)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed), errors.Is(err, ringbuf.ErrClosed):
			if time.Since(r.lastSweep) > sweepInterval {
				s.table.sweep()
				r.lastSweep = time.Now()
				r.clock = newClock()
			}
			return n, nil
		default:
			return n, fmt.Errorf("read ring buffer: %w", err)
		}
		n++
		if err := decodeHeader(r.rec.RawSample, &r.h); err != nil {
			s.malformed.Add(1)
			continue
		}
		if s.build(&r.h, r.rec.RawSample[headerSize:], &r.ev, r.clock) {
			handle(&r.ev)
		}
		if s.haveExtra {
			s.haveExtra = false
			handle(&s.extra)
		}
	}
}

// build fills ev from a decoded record and keeps the process table current.
// It reports whether ev should be delivered (fork records are internal).
func (s *Sensor) build(h *rawHeader, data []byte, ev *event.Event, clock clock) bool {
	start, pstart := ticks(h.StartNs), ticks(h.PstartNs)
	if h.Type == rawFork {
		// The most frequent record and internal only: keep it cheap.
		s.fork.Add(1)
		s.table.fork(h.Pid, start, h.Ppid, pstart, h.Uid, h.Euid)
		return false
	}
	sec, err := splitSections(h, data)
	if err != nil {
		s.malformed.Add(1)
		slog.Debug("dropping malformed sensor record", "err", err)
		return false
	}
	*ev = event.Event{
		Time:  clock.wall(h.TsBootNs),
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
	}
	switch h.Type {
	case rawExec, rawExecFail:
		s.buildExec(h, &sec, ev, start, pstart)
	case rawEscalation:
		s.buildEscalation(h, &sec, ev, start, pstart)
	case rawExit:
		s.buildExit(h, ev, start, pstart)
	default:
		s.malformed.Add(1)
		return false
	}
	return true
}

// exeIdentity decodes the running binary's identity from a record that has
// one (exec, escalation).
func exeIdentityOf(h *rawHeader, sec *sections, mntNS uint64) *exeIdentity {
	if h.Flags&flagExeID == 0 {
		return nil
	}
	return &exeIdentity{
		dev:    kernelDev(h.ExeDev),
		ino:    h.ExeIno,
		owner:  ownerPtr(h.ExeOwner),
		origin: truncatedPath(joinPath(sec.origin), h.Flags&flagOriginTrunc != 0),
		fs:     string(cstr(sec.fs)),
		mntNS:  mntNS,
	}
}

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
func recordedExe(h *rawHeader, sec *sections) event.Text {
	exe := truncatedPath(joinPath(sec.exe), h.Flags&flagExeTrunc != 0)
	return deleted(exe, h.Flags&flagExeDeleted != 0)
}

func (s *Sensor) buildExec(h *rawHeader, sec *sections, ev *event.Event, start, pstart uint64) {
	ev.Type = event.TypeExec
	ev.Filename = event.Text(cstr(sec.filename))
	ev.Args = splitArgs(sec.args)
	ev.ArgsTruncated = h.Flags&flagArgsTrunc != 0
	ev.Cwd = truncatedPath(joinPath(sec.cwd), h.Flags&flagCwdTrunc != 0)
	ev.TTY = ttyName(sec.tty)
	ev.Cgroup = joinPath(sec.cgroup)
	ev.ContainerID = containerID(ev.Cgroup)
	dir := truncatedPath(joinPath(sec.dir), h.Flags&flagDirTrunc != 0)
	if h.Type == rawExec {
		ev.Outcome = event.Success
		ev.Exe = recordedExe(h, sec)
		id := exeIdentityOf(h, sec, ev.MntNS)
		setIdentity(ev, id)
		if h.Flags&flagScript != 0 {
			ev.Script = scriptPath(ev.Filename, ev.Cwd, dir, h.Dirfd)
		}
		if h.Flags&flagOldCreds != 0 {
			s.checkUnexplained(ev, start, pstart, h.OldUid, h.OldEuid)
		}
		s.table.exec(h.Pid, procInfo{
			start: start, ppid: h.Ppid, pstart: pstart,
			exe: ev.Exe, id: id, script: ev.Script,
			args: ev.Args, cwd: ev.Cwd, tty: ev.TTY,
			uid: h.Uid, euid: h.Euid,
		})
	} else {
		ev.Outcome = event.Failure
		ev.Errno = errnoName(h.Retval)
		ev.Exe = absPath(ev.Filename, ev.Cwd, dir, h.Dirfd)
	}
	s.withAncestry(ev, pstart)
	s.exec.Add(1)
}

func (s *Sensor) buildEscalation(h *rawHeader, sec *sections, ev *event.Event, start, pstart uint64) {
	ev.Type = event.TypeEscalation
	ev.Exe = recordedExe(h, sec)
	setIdentity(ev, exeIdentityOf(h, sec, ev.MntNS))
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
	s.withAncestry(ev, pstart)
	s.escalation.Add(1)
}

func (s *Sensor) buildExit(h *rawHeader, ev *event.Event, start, pstart uint64) {
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
	s.checkUnexplained(ev, start, pstart, h.Uid, h.Euid)
	s.table.exit(h.Pid, start)
	s.exit.Add(1)
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

// checkUnexplained raises an "unexplained" escalation when ev's process,
// last known without any root id, is seen holding one (uid, euid) that no
// suid exec or set*uid call explains: the mark of a kernel exploit that
// swapped the process's credentials.
func (s *Sensor) checkUnexplained(ev *event.Event, start, pstart uint64, uid, euid uint32) {
	info, ok := s.table.procs[ev.PID]
	if !ok || !sameProcess(info.start, start) || !info.rootless() || (uid != 0 && euid != 0) {
		return
	}
	x := &s.extra
	*x = event.Event{
		Type: event.TypeEscalation, Time: ev.Time, PID: ev.PID, TID: ev.TID, PPID: ev.PPID,
		UID: uid, EUID: euid, GID: ev.GID, EGID: ev.EGID, AUID: ev.AUID, Comm: ev.Comm,
		Exe: info.exe, Script: info.script, Args: info.args, Cwd: info.cwd, TTY: info.tty, MntNS: ev.MntNS,
		Outcome: event.Success, Method: event.MethodUnexplained,
		OldUID: event.Uint32(info.uid), OldEUID: event.Uint32(info.euid), NewUID: event.Uint32(uid), NewEUID: event.Uint32(euid),
	}
	setIdentity(x, info.id)
	x.Ancestors = s.table.ancestors(ev.PPID, pstart)
	if len(x.Ancestors) > 0 {
		x.ParentExe = x.Ancestors[0].Exe
	}
	s.haveExtra = true
	s.escalation.Add(1)
	s.table.setCreds(ev.PID, start, uid, euid)
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

// commBytes views the header's comm as bytes, without copying.
func commBytes(c *[16]int8) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c))
}

// commCache interns command names: a host runs few distinct ones, and
// an exec storm repeats the same name thousands of times a second.
type commCache map[[16]int8]event.Text

const maxComms = 4096

func (c *commCache) text(comm *[16]int8) event.Text {
	if t, ok := (*c)[*comm]; ok {
		return t
	}
	if *c == nil || len(*c) >= maxComms {
		*c = make(commCache, 256)
	}
	t := event.Text(cstr(commBytes(comm)))
	(*c)[*comm] = t
	return t
}

// clock converts the kernel's boot-time nanoseconds to wall-clock time. The
// offset is taken when Run starts and refreshed with each table sweep, so
// a wall-clock step is followed within a minute.
type clock struct{ offset int64 }

func newClock() clock {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return clock{offset: time.Now().UnixNano() - ts.Nano()}
}

func (c clock) wall(bootNs uint64) time.Time {
	return time.Unix(0, int64(bootNs)+c.offset)
}

//go:build linux

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

// sweepInterval is how often the process table forgets dead processes.
const sweepInterval = time.Minute

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

	comms commCache
	// Caches of decoded record sections; reader goroutine only. Each
	// cache holds one decoding: the same bytes are a different text as a
	// filename and as a path's components.
	paths     textCache // exe and cwd paths
	filenames textCache // exec filenames as given
	cgroups   cgroupCache
	ids       map[idKey]cachedID // interned binary identities; reader goroutine only
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
	next := time.NewTimer(busyInterval)
	defer next.Stop()
	busy := false
	for ctx.Err() == nil {
		if busy {
			// Events are flowing: collect them in batches on a timer
			// instead of being woken for each one; sooner when the last
			// batch filled an eighth of the ring, so a heavier storm
			// cannot fill it between two batches.
			wait := busyInterval
			if r.filled > s.ring/8 {
				wait = busyInterval / 4
			}
			next.Reset(wait)
			select {
			case <-ctx.Done():
			case <-next.C:
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
// (an event then waits at most that long; a quarter of it when the last
// batch filled an eighth of the ring); idlePoll bounds how long it
// waits when they do not. The BPF side signals the first event after 10 ms
// without a signal (and early when the ring fills), so on a quiet host an
// event is read at once. An event it does not signal follows a signalled
// one by less than 10 ms, and the drain that found that one keeps the
// reader busy for busyInterval, which is longer: so idlePoll is only a
// safety net, and it is long because each wakeup of an idle agent costs
// more CPU than hundreds of events.
const (
	busyInterval = 100 * time.Millisecond
	idlePoll     = time.Second
)

// reading is the reader goroutine's state between drains.
type reading struct {
	rec       ringbuf.Record
	out       []event.Event // the events of one record, reused
	h         rawHeader
	clock     clock
	lastSweep time.Time
	filled    int // bytes waiting in the ring when the last drain began
}

// drain delivers every record available now, without waiting, and returns
// how many records it read.
//
// It reads only while the ring holds data, so a drain that empties the
// ring never asks the reader's poller (an epoll_wait system call) whether
// more came: in a storm the ring buffer is read without a system call, and
// an idle one costs two atomic loads. Each system call would also wake the
// Go runtime's monitor thread from its deep sleep.
func (s *Sensor) drain(r *reading, handle func(*event.Event)) (int, error) {
	n := 0
	r.filled = s.reader.AvailableBytes()
	s.reader.SetDeadline(time.Now())
	defer s.sweepDue(r)
	for s.reader.AvailableBytes() > 0 {
		err := s.reader.ReadInto(&r.rec)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed), errors.Is(err, ringbuf.ErrClosed):
			return n, nil
		default:
			return n, fmt.Errorf("read ring buffer: %w", err)
		}
		n++
		if err := decodeHeader(r.rec.RawSample, &r.h); err != nil {
			s.malformed.Add(1)
			continue
		}
		r.out = s.decode(&r.h, r.rec.RawSample[headerSize:], r.clock, r.out[:0])
		for i := range r.out {
			handle(&r.out[i])
		}
	}
	return n, nil
}

// sweepDue sweeps the process table of exited processes once a
// sweepInterval, between drains.
func (s *Sensor) sweepDue(r *reading) {
	if time.Since(r.lastSweep) > sweepInterval {
		s.table.sweep()
		r.lastSweep = time.Now()
		r.clock = newClock()
	}
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

// textCache interns the text decoded from a record section (a path's
// components, a filename) by the section's bytes: an exec storm repeats
// the same exe, cwd and filename thousands of times a second, and each
// would otherwise cost a new string. Sections longer than maxCachedText
// are decoded every time, so the cache stays small; a flood of distinct
// names only empties it (maxTexts), it never grows past the bound.
type textCache map[string]event.Text

const (
	maxTexts      = 4096
	maxCachedText = 256
)

func (c *textCache) get(raw []byte, decode func([]byte) event.Text) event.Text {
	if len(raw) > maxCachedText {
		return decode(raw)
	}
	if t, ok := (*c)[string(raw)]; ok {
		return t
	}
	if *c == nil || len(*c) >= maxTexts {
		*c = make(textCache, 256)
	}
	t := decode(raw)
	(*c)[string(raw)] = t
	return t
}

// plainText is a section's bytes as they are.
func plainText(b []byte) event.Text { return event.Text(b) }

// cgroupCache interns cgroup paths with the container id found in them,
// the same way textCache does (a storm runs in one cgroup).
type cgroupCache map[string]cgroupInfo

type cgroupInfo struct {
	path        event.Text
	containerID string
}

func (c *cgroupCache) get(raw []byte) cgroupInfo {
	if len(raw) > maxCachedText {
		p := joinPath(raw)
		return cgroupInfo{p, containerID(p)}
	}
	if cg, ok := (*c)[string(raw)]; ok {
		return cg
	}
	if *c == nil || len(*c) >= maxTexts {
		*c = make(cgroupCache, 64)
	}
	p := joinPath(raw)
	cg := cgroupInfo{p, containerID(p)}
	(*c)[string(raw)] = cg
	return cg
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

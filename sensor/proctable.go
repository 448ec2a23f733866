//go:build linux

package sensor

import (
	"os"
	"strconv"

	"github.com/procwatch/procwatch/event"
)

// maxAncestors bounds the parent chain walk, in case of a loop from a stale
// entry after pid reuse.
const maxAncestors = 64

// exeIdentity is what names a running binary independently of the path a
// process sees: the file's device, inode and owner, its path within its own
// filesystem, that filesystem's type, and the mount namespace the process
// runs in. Shared by pointer between a process and its forked children.
type exeIdentity struct {
	dev, ino uint64
	owner    *uint32
	origin   event.Text
	fs       string
	mntNS    uint64
}

// procInfo is what the table knows of one live process.
type procInfo struct {
	// start is the process's start time in clock ticks since boot, as
	// /proc/PID/stat reports it (0: unknown). pid plus start names one
	// process for its whole life: a reused pid has another start.
	start  uint64
	ppid   uint32
	pstart uint64 // the parent's start, 0 when unknown
	exe    event.Text
	id     *exeIdentity
	script event.Text
	// args, cwd and tty as of the last exec, so that every later event of
	// the process (escalation, exit) says which command it was. Shared
	// with the events that carry them: never modified.
	args     []event.Text
	cwd, tty event.Text
	// uid and euid as last explained: set at fork, exec and granted
	// escalations. A process seen later with a root id it had no
	// explained way to get is an "unexplained" escalation.
	uid, euid  uint32
	credsKnown bool
}

// rootless reports whether the process was last known to hold no root id.
func (p procInfo) rootless() bool {
	return p.credsKnown && p.uid != 0 && p.euid != 0
}

// sameProcess reports whether an entry started at start is the process an
// event started at want refers to. 0 means unknown and matches anything.
func sameProcess(start, want uint64) bool {
	return start == 0 || want == 0 || start == want
}

// procTable maps pids of live processes to their parent and binary, so that
// events can carry the parent's exe and the ancestry without reading /proc
// for processes that may already be gone. It is seeded from /proc when the
// sensor starts (after the programs attach, so nothing started in between
// is missed) and maintained from fork, exec and exit events. Every entry
// carries its start time and every reference to a process (an event's pid,
// a parent link) is checked against it, so a reused pid never takes over a
// dead process's entry or ancestry. Only the reader goroutine touches it.
type procTable struct {
	procs   map[uint32]procInfo
	procDir string

	// chains caches the ancestry computed for a parent pid: the children
	// of one parent (a shell loop, a build, an exec storm) share it instead
	// of each walking and allocating the chain. members holds every pid in
	// any cached chain; an exec or exit of one of them empties the cache.
	chains  map[procKey][]event.Ancestor
	members map[uint32]struct{}

	mounts mountCache
	owners map[uint32]*uint32 // interned exe owners, see owner
}

// procKey names a process: pid and start time.
type procKey struct {
	pid   uint32
	start uint64
}

func newProcTable(procDir string) *procTable {
	return &procTable{
		procs:   make(map[uint32]procInfo, 1024),
		procDir: procDir,
		chains:  make(map[procKey][]event.Ancestor),
		members: make(map[uint32]struct{}),
	}
}

// seed reads every process in /proc. Processes that vanish meanwhile are
// skipped. It replaces what the table knew: /proc is the truth at this
// moment, and events recorded since the programs attached are applied on
// top of it afterwards, in order.
func (t *procTable) seed() {
	entries, err := os.ReadDir(t.procDir)
	if err != nil {
		return
	}
	t.mounts = mountCache{}
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if info, ok := t.readProc(uint32(pid)); ok {
			t.procs[uint32(pid)] = info
		}
	}
	for pid, info := range t.procs {
		if parent, ok := t.procs[info.ppid]; ok && info.pstart == 0 {
			info.pstart = parent.start
			t.procs[pid] = info
		}
	}
	t.mounts = nil
	clear(t.chains)
	clear(t.members)
}

// lookup returns what is known of the process pid started at start (0:
// whichever), asking /proc once for processes the table has not seen (for
// example after lost events) or whose entry is a previous owner of the pid.
func (t *procTable) lookup(pid uint32, start uint64) (procInfo, bool) {
	info, ok := t.procs[pid]
	if ok && sameProcess(info.start, start) {
		return info, true
	}
	if pid == 0 {
		return procInfo{}, false
	}
	info, ok = t.readProc(pid)
	if !ok || !sameProcess(info.start, start) {
		return procInfo{}, false
	}
	t.procs[pid] = info
	return info, true
}

// fork records a new process: until it execs, it runs its parent's image
// with its parent's argv, cwd and tty.
func (t *procTable) fork(pid uint32, start uint64, ppid uint32, pstart uint64, uid, euid uint32) {
	parent, _ := t.lookup(ppid, pstart)
	t.procs[pid] = procInfo{
		start: start, ppid: ppid, pstart: pstart,
		exe: parent.exe, id: parent.id, script: parent.script,
		args: parent.args, cwd: parent.cwd, tty: parent.tty,
		uid: uid, euid: euid, credsKnown: true,
	}
	t.invalidate(pid)
}

// exec records the new image of a process.
func (t *procTable) exec(pid uint32, info procInfo) {
	info.credsKnown = true
	t.procs[pid] = info
	t.invalidate(pid)
}

// invalidate forgets cached chains when pid, whose exe or existence just
// changed, is part of one.
func (t *procTable) invalidate(pid uint32) {
	if _, ok := t.members[pid]; ok {
		clear(t.chains)
		clear(t.members)
	}
}

// setCreds records credentials a granted escalation explained.
func (t *procTable) setCreds(pid uint32, start uint64, uid, euid uint32) {
	if info, ok := t.procs[pid]; ok && sameProcess(info.start, start) {
		info.uid, info.euid, info.credsKnown = uid, euid, true
		t.procs[pid] = info
	}
}

// exit forgets a process, unless its pid already belongs to a newer one.
func (t *procTable) exit(pid uint32, start uint64) {
	if info, ok := t.procs[pid]; ok && sameProcess(info.start, start) {
		delete(t.procs, pid)
		t.invalidate(pid)
	}
}

// maxChains bounds the chain cache.
const maxChains = 4096

// ancestors returns the parent chain of a process whose parent is ppid
// started at pstart, parent first, ending with pid 1 (or where knowledge
// ends). The slice may be shared with other events and must not be
// modified.
func (t *procTable) ancestors(ppid uint32, pstart uint64) []event.Ancestor {
	key := procKey{ppid, pstart}
	if chain, ok := t.chains[key]; ok {
		return chain
	}
	chain := t.walk(ppid, pstart)
	if len(t.chains) >= maxChains {
		clear(t.chains)
		clear(t.members)
	}
	t.chains[key] = chain
	for _, a := range chain {
		t.members[a.PID] = struct{}{}
	}
	return chain
}

func (t *procTable) walk(ppid uint32, pstart uint64) []event.Ancestor {
	var out []event.Ancestor
	for pid, start := ppid, pstart; pid != 0 && len(out) < maxAncestors; {
		info, ok := t.lookup(pid, start)
		if !ok {
			break
		}
		out = append(out, event.Ancestor{PID: pid, Exe: info.exe})
		if pid == 1 || info.ppid == pid {
			break
		}
		pid, start = info.ppid, info.pstart
	}
	return out
}

// sweep forgets processes that no longer exist, or whose pid now belongs
// to another process, bounding the table when exit events were lost.
func (t *procTable) sweep() {
	for pid, info := range t.procs {
		start, ok := readStart(t.procDir + "/" + strconv.FormatUint(uint64(pid), 10))
		if !ok || !sameProcess(info.start, start) {
			delete(t.procs, pid)
		}
	}
	clear(t.chains)
	clear(t.members)
}

package sensor

import (
	"bytes"
	"os"
	"strconv"

	"github.com/procwatch/procwatch/event"
)

// maxAncestors bounds the parent chain walk, in case of a loop from a stale
// entry after pid reuse.
const maxAncestors = 64

// procInfo is what the table knows of one live process.
type procInfo struct {
	ppid uint32
	exe  event.Text
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

// procTable maps pids of live processes to their parent and binary, so that
// events can carry the parent's exe and the ancestry without reading /proc
// for processes that may already be gone. It is seeded from /proc when the
// sensor starts and maintained from fork, exec and exit events. Only the
// reader goroutine touches it.
type procTable struct {
	procs   map[uint32]procInfo
	procDir string

	// chains caches the ancestry computed for a parent pid: the children
	// of one parent (a shell loop, a build, an exec storm) share it instead
	// of each walking and allocating the chain. members holds every pid in
	// any cached chain; an exec or exit of one of them empties the cache.
	chains  map[uint32][]event.Ancestor
	members map[uint32]struct{}
}

func newProcTable(procDir string) *procTable {
	return &procTable{
		procs:   make(map[uint32]procInfo, 1024),
		procDir: procDir,
		chains:  make(map[uint32][]event.Ancestor),
		members: make(map[uint32]struct{}),
	}
}

// seed reads every process in /proc. Processes that vanish meanwhile are
// skipped.
func (t *procTable) seed() {
	entries, err := os.ReadDir(t.procDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if info, ok := t.readProc(uint32(pid)); ok {
			t.procs[uint32(pid)] = info
		}
	}
}

// readProc reads one process's parent and exe from /proc. Kernel threads
// have no exe; they are kept with an empty one so the walk stops cleanly.
func (t *procTable) readProc(pid uint32) (procInfo, bool) {
	dir := t.procDir + "/" + strconv.FormatUint(uint64(pid), 10)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	// The comm field is in parentheses and may contain anything, so parse
	// from the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procInfo{}, false
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 2 {
		return procInfo{}, false
	}
	ppid, err := strconv.ParseUint(string(fields[1]), 10, 32)
	if err != nil {
		return procInfo{}, false
	}
	exe, _ := os.Readlink(dir + "/exe")
	info := procInfo{ppid: uint32(ppid), exe: event.Text(exe)}
	info.uid, info.euid, info.credsKnown = readUIDs(dir + "/status")
	return info, true
}

// readUIDs reads the real and effective uid from /proc/PID/status.
func readUIDs(path string) (uid, euid uint32, ok bool) {
	status, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	_, rest, found := bytes.Cut(status, []byte("\nUid:"))
	if !found {
		return 0, 0, false
	}
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	f := bytes.Fields(rest)
	if len(f) < 2 {
		return 0, 0, false
	}
	u, err1 := strconv.ParseUint(string(f[0]), 10, 32)
	e, err2 := strconv.ParseUint(string(f[1]), 10, 32)
	return uint32(u), uint32(e), err1 == nil && err2 == nil
}

// lookup returns what is known of pid, asking /proc once for processes the
// table has not seen (for example after lost events).
func (t *procTable) lookup(pid uint32) (procInfo, bool) {
	if info, ok := t.procs[pid]; ok {
		return info, true
	}
	if pid == 0 {
		return procInfo{}, false
	}
	info, ok := t.readProc(pid)
	if ok {
		t.procs[pid] = info
	}
	return info, ok
}

func (t *procTable) fork(pid, ppid, uid, euid uint32) {
	parent, _ := t.lookup(ppid)
	t.procs[pid] = procInfo{ppid: ppid, exe: parent.exe, uid: uid, euid: euid, credsKnown: true}
	t.invalidate(pid)
}

func (t *procTable) exec(pid, ppid uint32, exe event.Text, uid, euid uint32) {
	t.procs[pid] = procInfo{ppid: ppid, exe: exe, uid: uid, euid: euid, credsKnown: true}
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
func (t *procTable) setCreds(pid, uid, euid uint32) {
	if info, ok := t.procs[pid]; ok {
		info.uid, info.euid, info.credsKnown = uid, euid, true
		t.procs[pid] = info
	}
}

func (t *procTable) exit(pid uint32) {
	delete(t.procs, pid)
	t.invalidate(pid)
}

// maxChains bounds the chain cache.
const maxChains = 4096

// ancestors returns the parent chain of a process whose parent is ppid,
// parent first, ending with pid 1 (or where knowledge ends). The slice may
// be shared with other events and must not be modified.
func (t *procTable) ancestors(ppid uint32) []event.Ancestor {
	if chain, ok := t.chains[ppid]; ok {
		return chain
	}
	chain := t.walk(ppid)
	if len(t.chains) >= maxChains {
		clear(t.chains)
		clear(t.members)
	}
	t.chains[ppid] = chain
	for _, a := range chain {
		t.members[a.PID] = struct{}{}
	}
	return chain
}

func (t *procTable) walk(ppid uint32) []event.Ancestor {
	var out []event.Ancestor
	for pid := ppid; pid != 0 && len(out) < maxAncestors; {
		info, ok := t.lookup(pid)
		if !ok {
			break
		}
		out = append(out, event.Ancestor{PID: pid, Exe: info.exe})
		if pid == 1 || info.ppid == pid {
			break
		}
		pid = info.ppid
	}
	return out
}

// sweep forgets processes that no longer exist, bounding the table when
// exit events were lost.
func (t *procTable) sweep() {
	for pid := range t.procs {
		if _, err := os.Stat(t.procDir + "/" + strconv.FormatUint(uint64(pid), 10)); os.IsNotExist(err) {
			delete(t.procs, pid)
		}
	}
	clear(t.chains)
	clear(t.members)
}

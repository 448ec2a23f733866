package sensor

import (
	"bytes"
	"os"
	"strconv"
)

// maxAncestors bounds the parent chain walk, in case of a loop from a stale
// entry after pid reuse.
const maxAncestors = 64

// procInfo is what the table knows of one live process.
type procInfo struct {
	ppid uint32
	exe  Text
}

// procTable maps pids of live processes to their parent and binary, so that
// events can carry the parent's exe and the ancestry without reading /proc
// for processes that may already be gone. It is seeded from /proc when the
// sensor starts and maintained from fork, exec and exit events. Only the
// reader goroutine touches it.
type procTable struct {
	procs   map[uint32]procInfo
	procDir string
}

func newProcTable(procDir string) *procTable {
	return &procTable{procs: make(map[uint32]procInfo, 1024), procDir: procDir}
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
	return procInfo{ppid: uint32(ppid), exe: Text(exe)}, true
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

func (t *procTable) fork(pid, ppid uint32) {
	parent, _ := t.lookup(ppid)
	t.procs[pid] = procInfo{ppid: ppid, exe: parent.exe}
}

func (t *procTable) exec(pid, ppid uint32, exe Text) {
	t.procs[pid] = procInfo{ppid: ppid, exe: exe}
}

func (t *procTable) exit(pid uint32) {
	delete(t.procs, pid)
}

// ancestors returns the parent chain of a process whose parent is ppid,
// parent first, ending with pid 1 (or where knowledge ends).
func (t *procTable) ancestors(ppid uint32) []Ancestor {
	var out []Ancestor
	for pid := ppid; pid != 0 && len(out) < maxAncestors; {
		info, ok := t.lookup(pid)
		if !ok {
			break
		}
		out = append(out, Ancestor{PID: pid, Exe: info.exe})
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
}

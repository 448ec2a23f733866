//go:build linux

package sensor

import (
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/procwatch/procwatch/event"
)

// This file reads what the process table needs from /proc, for processes
// that started before the sensor (or whose events were lost). It fills the
// same facts the BPF side reports for an exec, in the same form: the exe
// as /proc/PID/exe shows it (with " (deleted)" for a deleted or
// memory-backed file), the file identity, argv, cwd and tty.

// userHZ is the unit of the start time in /proc/PID/stat (USER_HZ, 100 on
// every architecture Linux runs procwatch on).
const userHZ = 100

// ticks converts a boot-time nanosecond start from the BPF side to the
// clock ticks of /proc/PID/stat, exactly as the kernel does.
func ticks(ns uint64) uint64 { return ns / (1e9 / userHZ) }

// readStat returns the parent pid, start time and tty number of a process
// from /proc/PID/stat.
func readStat(dir string) (ppid uint32, start uint64, ttyNr uint64, ok bool) {
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// The comm field is in parentheses and may contain anything, so parse
	// from the last ')'. Fields after it start at field 3 (state).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 20 {
		return 0, 0, 0, false
	}
	p, err1 := strconv.ParseUint(string(f[1]), 10, 32)   // field 4
	tty, err2 := strconv.ParseUint(string(f[4]), 10, 64) // field 7
	st, err3 := strconv.ParseUint(string(f[19]), 10, 64) // field 22
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return uint32(p), st, tty, true
}

// readStart returns a process's start time in clock ticks.
func readStart(dir string) (uint64, bool) {
	_, start, _, ok := readStat(dir)
	return start, ok
}

// readProc reads one process from /proc. Kernel threads have no exe; they
// are kept with an empty one so the walk stops cleanly.
func (t *procTable) readProc(pid uint32) (procInfo, bool) {
	dir := t.procDir + "/" + strconv.FormatUint(uint64(pid), 10)
	ppid, start, ttyNr, ok := readStat(dir)
	if !ok {
		return procInfo{}, false
	}
	exe, _ := os.Readlink(dir + "/exe")
	info := procInfo{start: start, ppid: ppid, exe: event.Text(exe), tty: ttyFromNr(ttyNr)}
	info.uid, info.euid, info.credsKnown = readUIDs(dir + "/status")
	if exe != "" {
		info.id = t.exeIdentity(dir, exe)
	}
	if cmdline, err := os.ReadFile(dir + "/cmdline"); err == nil {
		info.args = splitArgs(cmdline)
	}
	if cwd, err := os.Readlink(dir + "/cwd"); err == nil {
		info.cwd = event.Text(cwd)
	}
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

// ttyFromNr names a controlling terminal from its device number the way
// the BPF side does from the kernel's tty name: "pts/3", "tty1", "ttyS0".
func ttyFromNr(nr uint64) event.Text {
	if nr == 0 {
		return ""
	}
	major, minor := unix.Major(nr), unix.Minor(nr)
	switch {
	case major >= 136 && major <= 143:
		return event.Text("pts/" + strconv.FormatUint(uint64((major-136)<<8|minor), 10))
	case major == 4 && minor < 64:
		return event.Text("tty" + strconv.FormatUint(uint64(minor), 10))
	case major == 4:
		return event.Text("ttyS" + strconv.FormatUint(uint64(minor-64), 10))
	}
	return ""
}

// exeIdentity stats /proc/PID/exe (the file itself, whatever mount
// namespace it is in) and finds its origin and filesystem in the process's
// mount table.
func (t *procTable) exeIdentity(dir, exe string) *exeIdentity {
	var st unix.Stat_t
	if err := unix.Stat(dir+"/exe", &st); err != nil {
		return nil
	}
	id := &exeIdentity{dev: st.Dev, ino: st.Ino, owner: t.owner(st.Uid)}
	if ns, err := os.Readlink(dir + "/ns/mnt"); err == nil {
		// "mnt:[4026531841]"
		ns = strings.TrimSuffix(strings.TrimPrefix(ns, "mnt:["), "]")
		id.mntNS, _ = strconv.ParseUint(ns, 10, 64)
	}
	name := strings.TrimSuffix(exe, " (deleted)")
	if m, ok := t.mounts.find(dir, id.mntNS, name, st.Dev); ok {
		id.origin = event.Text(m.origin(name))
		id.fs = m.fstype
	} else if strings.HasPrefix(name, "/memfd:") {
		// A memfd lives on an internal mount no mount table lists.
		id.origin = event.Text(name)
		var fs unix.Statfs_t
		if unix.Statfs(dir+"/exe", &fs) == nil {
			id.fs = fsMagicName(fs.Type)
		}
	}
	return id
}

func fsMagicName(magic int64) string {
	switch magic {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.HUGETLBFS_MAGIC:
		return "hugetlbfs"
	}
	return ""
}

// owner returns a shared pointer to uid: a host has few distinct owners,
// and events share them instead of allocating one each. Reader goroutine
// only, like the rest of the table.
func (t *procTable) owner(uid uint32) *uint32 {
	if p, ok := t.owners[uid]; ok {
		return p
	}
	if t.owners == nil || len(t.owners) > 1024 {
		t.owners = make(map[uint32]*uint32)
	}
	p := event.Uint32(uid)
	t.owners[uid] = p
	return p
}

// mount is one line of /proc/PID/mountinfo.
type mount struct {
	dev        uint64 // st_dev encoding
	root       string // the mount's root within its filesystem
	mountpoint string
	fstype     string
}

// origin turns a path under the mount into the path within the mount's
// filesystem.
func (m mount) origin(path string) string {
	rest := strings.TrimPrefix(path, m.mountpoint)
	if m.mountpoint == "/" {
		rest = path
	}
	if m.root == "/" {
		if rest == "" {
			return "/"
		}
		return rest
	}
	return m.root + rest
}

// mountCache holds the mount tables read while seeding, one per mount
// namespace. nil outside of seeding: a lone lookup reads its own.
type mountCache map[uint64][]mount

// find returns the mount that holds path on device dev, as the process in
// dir sees its mounts: the longest mount point that is a prefix of path,
// the last one listed when several overmount each other. The process's
// own view is read, except for processes in the sensor's own mount
// namespace, whose view may be narrowed by a chroot while /proc/PID/exe
// is shown from the sensor's root.
func (c mountCache) find(dir string, mntNS uint64, path string, dev uint64) (mount, bool) {
	mounts, ok := c[mntNS]
	if !ok {
		src := dir + "/mountinfo"
		if self, err := os.Readlink("/proc/self/ns/mnt"); err == nil && strings.Contains(self, "["+strconv.FormatUint(mntNS, 10)+"]") {
			src = "/proc/self/mountinfo"
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return mount{}, false
		}
		mounts = parseMountinfo(b)
		if c != nil && src == "/proc/self/mountinfo" {
			c[mntNS] = mounts
		}
	}
	best := -1
	for i, m := range mounts {
		if m.dev != dev || !under(path, m.mountpoint) {
			continue
		}
		if best < 0 || len(m.mountpoint) >= len(mounts[best].mountpoint) {
			best = i
		}
	}
	if best < 0 {
		return mount{}, false
	}
	return mounts[best], true
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// parseMountinfo reads the fields procwatch needs from a mountinfo file:
// "36 35 98:0 /root /mnt opts - ext4 /dev/root rw".
func parseMountinfo(b []byte) []mount {
	var out []mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			continue
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		out = append(out, mount{
			dev:        unix.Mkdev(uint32(ma), uint32(mi)),
			root:       unescapeMount(f[3]),
			mountpoint: unescapeMount(f[4]),
			fstype:     f[sep+1],
		})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for a space) mountinfo
// writes for space, tab, newline and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

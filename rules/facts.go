package rules

import (
	"path"
	"strings"

	"github.com/procwatch/procwatch/event"
)

// facts are the properties of one event that selectors and skips compare,
// worked out once per event rather than once per rule. Nothing here
// allocates for an ordinary event, so events that raise no incident cost no
// garbage.
//
// A process chooses its comm, its argv, the names of its files and links
// and, with a private mount namespace or a chroot, the paths it runs under.
// facts therefore keep two views: what selectors may match (every name the
// binary has, so no name hides it) and what skips may match (only names
// the process cannot forge; empty when there is none).
type facts struct {
	ev   *event.Event
	path string // the executable the event is about
	// script is the "#!" script the kernel executed (path then names the
	// interpreter), origin the binary's path within its own filesystem
	// when that differs from path.
	script string
	origin string
	// truncated: the sensor could not walk the path to the root (more
	// than its depth limit) and marked it with a leading "…".
	truncated bool
	base      string // base name of path (the binary, or the interpreter)
	comm      string // selectors only: skips never trust a comm
	parent    string // base name of the parent's executable
	uid       uint32 // the acting user
	outcome   event.Outcome

	// What skips judge, worked out on the first skip check (most events
	// meet no rule and need none): skipPath is the script, or the binary
	// when there is none, and empty unless the path can be trusted to name
	// the file (see placed); skipName is its base name, empty when the
	// file sits where anyone can create a file of any name.
	host     *HostMounts
	skipDone bool
	skipPath string
	skipName string

	nameDone bool
	name     string
}

// init works the facts out. host says how this host's own mount namespace
// and root filesystem look, to tell a path that names a file from one that
// a private mount namespace or a chroot made up.
func (f *facts) init(ev *event.Event, host *HostMounts) {
	f.ev = ev
	f.path = subjectPath(ev)
	f.base = baseName(f.path)
	f.truncated = strings.HasPrefix(f.path, truncatedMark)
	f.script = ""
	if s := string(ev.Script); strings.HasPrefix(s, "/") {
		f.script = s
	}
	f.origin = ""
	if o := string(ev.ExeOrigin); o != "" && o != f.path && !isFailedExec(ev) {
		f.origin = o
	}
	f.comm = string(ev.Comm)
	parent := string(ev.ParentExe)
	if parent == "" && len(ev.Ancestors) > 0 {
		parent = string(ev.Ancestors[0].Exe)
	}
	f.parent = baseName(parent)
	f.uid = actingUID(ev)
	f.outcome = eventOutcome(ev)
	f.nameDone, f.name = false, ""
	f.host, f.skipDone, f.skipPath, f.skipName = host, false, "", ""
}

// skipFacts works out skipPath and skipName once per event.
func (f *facts) skipFacts() {
	if f.skipDone {
		return
	}
	f.skipDone = true
	if !placed(f.ev, f, f.host) {
		return
	}
	f.skipPath = f.path
	if f.script != "" {
		f.skipPath = f.script
	}
	if !f.anywhereWritable() {
		f.skipName = baseName(f.skipPath)
	}
}

func (f *facts) userName() string {
	if !f.nameDone {
		f.name = UserName(f.uid)
		f.nameDone = true
	}
	return f.name
}

// anywhereWritable reports whether any name of the binary (or script) lies
// in a world-writable or memory-backed location, or on a filesystem any
// user can mount in a user namespace: there, any user picks the file name.
func (f *facts) anywhereWritable() bool {
	return f.truncated || writableLocation(f.path) || writableLocation(f.script) ||
		writableLocation(f.origin) || userMountableFS(f.ev.ExeFS)
}

// writableRoots are the directories of a standard Linux host that every
// user may create files in, plus the memfd pseudo-path.
var writableRoots = [...]string{"/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock", "/var/lock"}

func writableLocation(p string) bool {
	if strings.HasPrefix(p, "/memfd:") {
		return true
	}
	for _, root := range writableRoots {
		if strings.HasPrefix(p, root) && (len(p) == len(root) || p[len(root)] == '/') {
			return true
		}
	}
	return false
}

// userMountableFS reports whether fs is a filesystem type an unprivileged
// user can mount inside a user namespace (FS_USERNS_MOUNT in the kernel),
// filling it with files of any name at any path.
func userMountableFS(fs string) bool {
	switch fs {
	case "tmpfs", "ramfs", "overlay", "fuse", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "binder":
		return true
	}
	return strings.HasPrefix(fs, "fuse.")
}

// placed reports whether the event's path can be trusted to name the file
// that ran, as this host's root user sees it. Path and command skips apply
// only then. The sensor reports the binary's device, inode, filesystem and
// its path within that filesystem (origin) alongside the path the process
// sees; a bind mount shows up as an origin that is not the path, a chroot
// as a path shorter than its origin, and a filesystem of the user's own
// making as a device that is not the root filesystem's.
func placed(ev *event.Event, f *facts, host *HostMounts) bool {
	if f.truncated || f.path == "" && f.script == "" {
		return false
	}
	hostNS := ev.MntNS == 0 || (host.MntNS != 0 && ev.MntNS == host.MntNS)
	if f.script != "" && ev.MntNS != 0 && !hostNS {
		// A script path carries no identity of its own: in a mount
		// namespace of the user's making it names whatever they mounted.
		return false
	}
	if isFailedExec(ev) || (ev.ExeOrigin == "" && ev.ExeDev == 0) {
		// No file identity: a failed exec (nothing ran) or an event from
		// a capture without it. The path is all there is.
		return hostNS
	}
	exe := trimDeleted(f.path)
	origin := trimDeleted(string(ev.ExeOrigin))
	switch {
	case origin == "":
		return false
	case exe == origin:
		// On the root filesystem the two agree. A chroot to the root of a
		// filesystem of the user's own would agree too: the device tells.
		if host.RootDev != 0 && ev.ExeDev != 0 {
			return sameDev(ev.ExeDev, host.RootDev)
		}
		return ev.ExeFS != "" && !userMountableFS(ev.ExeFS)
	case origin != "/" && strings.HasSuffix(exe, origin) && origin[0] == '/':
		// A filesystem mounted below the root (/home, /boot): the path is
		// its mount point followed by the origin. Only root can mount in
		// the host's namespace, so there the mount point is root's choice.
		return ev.MntNS != 0 && ev.MntNS == host.MntNS && !userMountableFS(ev.ExeFS)
	}
	return false
}

// deletedMark ends the path of a binary unlinked after it started, as
// /proc/PID/exe shows it.
const deletedMark = " (deleted)"

func trimDeleted(p string) string { return strings.TrimSuffix(p, deletedMark) }

// sameDev compares a device number from the sensor with one from stat(2).
// The kernel's internal encoding (major << 20 | minor) and the one stat
// returns differ; accept either so the comparison does not depend on
// which one the sensor reports.
func sameDev(sensor, stat uint64) bool {
	if sensor == stat {
		return true
	}
	major, minor := sensor>>20, sensor&0xfffff
	user := minor&0xff | (major&0xfff)<<8 | (minor&^0xff)<<12 | (major&^0xfff)<<32
	return user == stat
}

func isFailedExec(ev *event.Event) bool {
	return ev.Type == event.TypeExec && eventOutcome(ev) == event.Failure
}

// subjectPath is the executable an event is about. For a successful exec
// and for every other event that is the resolved exe. A failed exec never
// ran its target, so the absolute path that was asked for is its subject
// (the sensor resolves relative and fd-relative names against the caller's
// directories); failing that, the sensor's exe for it, never the caller's
// name.
func subjectPath(ev *event.Event) string {
	if isFailedExec(ev) {
		if p := string(ev.Filename); strings.HasPrefix(p, "/") {
			// The caller chose this string: clean it so
			// "/usr/bin/../../tmp/x" is judged as /tmp/x. Clean only
			// allocates when it changes something.
			return path.Clean(p)
		}
		if p := string(ev.Exe); strings.HasPrefix(p, "/") || strings.HasPrefix(p, truncatedMark) {
			return path.Clean(p)
		}
		return ""
	}
	if ev.Exe != "" {
		return string(ev.Exe)
	}
	if strings.HasPrefix(string(ev.Filename), "/") {
		return string(ev.Filename)
	}
	return ""
}

// actingUID is the user an event is attributed to: for an escalation the
// uid before it (the user who gained or tried to gain root), otherwise the
// real uid.
func actingUID(ev *event.Event) uint32 {
	if ev.Type == event.TypeEscalation && ev.OldUID != nil {
		return *ev.OldUID
	}
	return ev.UID
}

// eventOutcome returns the event's outcome. The sensor always sets it; for
// hand-written captures without one, an exit is a failure when its code is
// non-zero or a signal killed it, and other events count as successes.
func eventOutcome(ev *event.Event) event.Outcome {
	switch ev.Outcome {
	case event.Success, event.Failure:
		return ev.Outcome
	}
	if ev.Type == event.TypeExit && (ev.Signal != "" || (ev.ExitCode != nil && *ev.ExitCode != 0)) {
		return event.Failure
	}
	return event.Success
}

// truncatedMark starts a path whose top the sensor could not capture.
const truncatedMark = "…"

func baseName(p string) string {
	if p == "" {
		return ""
	}
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

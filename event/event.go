// Package event holds the facts procwatch reports about processes: every
// exec (successful or failed), every escalation to root (granted or refused)
// and every process exit, plus the sensor's loss counters and the Text type
// that keeps a process's bytes exact. The sensor produces these types and
// every other package consumes them; the package depends on the standard
// library only, so consumers (the TUI, the CLI on a laptop) never pull in
// the eBPF loader. A test enforces it.
//
// The JSON names of Event are a contract: `procwatch events --json`, the
// incident export and the agent protocol all use them, and outside tools
// parse them. Add fields; never rename one.
package event

import "time"

// EventType says which kind of process activity an Event describes.
type EventType string

// The event types the sensor reports. Fork events are used internally to
// maintain the process table and are never streamed.
const (
	TypeExec       EventType = "exec"
	TypeEscalation EventType = "escalation"
	TypeExit       EventType = "exit"
)

// Outcome says whether the action succeeded. Rules pick their severity by it.
type Outcome string

// Outcomes. For exits, success means exit code 0 and no fatal signal.
const (
	Success Outcome = "success"
	Failure Outcome = "failure"
)

// Escalation methods: how a process without root ids gained (or tried to
// gain) uid 0 or euid 0.
const (
	MethodSuidExec    = "suid-exec"
	MethodSetuid      = "setuid"
	MethodSetreuid    = "setreuid"
	MethodSetresuid   = "setresuid"
	MethodSetfsuid    = "setfsuid"
	MethodUnexplained = "unexplained"
)

// Ancestor is one link of a process's parent chain.
type Ancestor struct {
	PID uint32 `json:"pid"`
	Exe Text   `json:"exe"`
}

// Event is one fact the sensor observed about a process. Fields that do not
// apply to a type are left at their zero value and omitted from JSON, except
// the identity fields every event carries.
//
// Strings that come from processes (comm, paths, args, tty, cgroup) are Text:
// raw bytes, kept exactly, because a hostile process chooses them.
type Event struct {
	Type EventType `json:"type"`
	Time time.Time `json:"time"`

	PID  uint32 `json:"pid"`  // thread-group id, what users call a pid
	TID  uint32 `json:"tid"`  // the thread that acted
	PPID uint32 `json:"ppid"` // thread-group id of the real parent
	UID  uint32 `json:"uid"`
	EUID uint32 `json:"euid"`
	GID  uint32 `json:"gid"`
	EGID uint32 `json:"egid"`
	// AUID is the login uid (audit uid); 4294967295 when unset.
	AUID uint32 `json:"auid"`
	Comm Text   `json:"comm"`
	// Exe is the absolute, resolved path of the running binary, as the
	// process's own mount namespace shows it. A memory-backed binary reads
	// "/memfd:NAME (deleted)" and a binary deleted after it started ends in
	// " (deleted)", the way /proc/PID/exe shows them.
	Exe Text `json:"exe"`

	// File identity of the running binary, independent of the process's
	// mount namespace: a path can be faked with a bind mount or a chroot,
	// these cannot. ExeOrigin is the file's path within its own filesystem
	// (walked up to that filesystem's root, not the process's root), so a
	// file bind-mounted from /tmp over /usr/bin/true has origin /tmp/...
	// on the root filesystem, or /x on a tmpfs; ExeFS names that
	// filesystem's type ("ext4", "tmpfs", "overlay").
	ExeDev    uint64  `json:"exe_dev,omitempty"`    // device number (st_dev) of the binary's filesystem
	ExeIno    uint64  `json:"exe_ino,omitempty"`    // inode number of the binary
	ExeOwner  *uint32 `json:"exe_owner,omitempty"`  // uid that owns the binary file
	ExeOrigin Text    `json:"exe_origin,omitempty"` // path within the binary's own filesystem
	ExeFS     string  `json:"exe_fs,omitempty"`     // type of the binary's filesystem
	MntNS     uint64  `json:"mnt_ns,omitempty"`     // mount namespace id (inode of /proc/PID/ns/mnt)

	// Script is the absolute path of the script the kernel executed when
	// the exec'd file was a "#!" script: Exe is then the interpreter.
	Script Text `json:"script,omitempty"`

	// ExeSHA256 is the hex SHA-256 of the running binary's content, as
	// procwatch read it in user space (cached by device, inode, mtime and
	// ctime; never read on the event path). Empty when it was not known yet
	// when the event was judged: the first sighting of a new binary, a file
	// that changed, one that could not be read. Pinned skips compare it.
	ExeSHA256 string `json:"exe_sha256,omitempty"`

	// Exec fields.
	Filename      Text   `json:"filename,omitempty"` // as requested by the caller
	Args          []Text `json:"args,omitempty"`     // argv, including argv[0]
	ArgsTruncated bool   `json:"args_truncated,omitempty"`
	Cwd           Text   `json:"cwd,omitempty"`
	TTY           Text   `json:"tty,omitempty"`
	Cgroup        Text   `json:"cgroup,omitempty"`
	ContainerID   string `json:"container_id,omitempty"`
	// Container context, looked up from the container runtime's API by the
	// id taken from the cgroup path (see docs/containers.md). The lookup is
	// asynchronous: the first events of a new container may lack it. The
	// name and image are chosen by whoever started the container, so they
	// are Text (exact bytes, escaped for display) and never trusted alone.
	ContainerName    Text   `json:"container_name,omitempty"`
	ContainerImage   Text   `json:"container_image,omitempty"`
	ContainerRuntime string `json:"container_runtime,omitempty"` // "docker", "podman", "containerd", "cri-o"
	ParentExe        Text   `json:"parent_exe,omitempty"`
	// Ancestors is the parent chain, parent first, up to pid 1. Events of
	// siblings share one slice: treat it as read-only.
	Ancestors []Ancestor `json:"ancestors,omitempty"`

	Outcome Outcome `json:"outcome"`
	// Errno names the error of a failed action, such as "ENOENT".
	Errno string `json:"errno,omitempty"`

	// Escalation fields. Pointers so that uid 0 is still written.
	Method  string  `json:"method,omitempty"`
	OldUID  *uint32 `json:"old_uid,omitempty"`
	OldEUID *uint32 `json:"old_euid,omitempty"`
	NewUID  *uint32 `json:"new_uid,omitempty"`
	NewEUID *uint32 `json:"new_euid,omitempty"`

	// Exit fields. ExitCode is a pointer so that code 0 is still written.
	ExitCode   *int   `json:"exit_code,omitempty"`
	Signal     string `json:"signal,omitempty"` // e.g. "SIGSEGV" when killed
	CoreDumped bool   `json:"core_dumped,omitempty"`
	DurationNS int64  `json:"duration_ns,omitempty"`
}

// Fate is how a process ended, attached to an incident raised about it
// earlier (for example a root escalation) once the process exits, so an
// analyst sees whether the escalated command went on to succeed.
type Fate struct {
	Time       time.Time `json:"time"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Signal     string    `json:"signal,omitempty"`
	CoreDumped bool      `json:"core_dumped,omitempty"`
	DurationNS int64     `json:"duration_ns,omitempty"`
}

// Uint32 returns a pointer to v, for the optional id fields of Event.
func Uint32(v uint32) *uint32 { return &v }

// Int returns a pointer to v, for Event.ExitCode.
func Int(v int) *int { return &v }

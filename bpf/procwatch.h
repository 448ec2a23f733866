/* Layout shared by the BPF programs and the Go decoder (sensor/decode.go).
 * The Go side reads the header with offsets taken from the bpf2go-generated
 * type, so changing a field here and regenerating keeps both in step. */
#ifndef PROCWATCH_H
#define PROCWATCH_H

#define TASK_COMM_LEN 16

/* Event types on the ring buffer. */
enum event_type {
	EV_EXEC = 1,       /* successful exec, from sched_process_exec */
	EV_EXEC_FAIL = 2,  /* execve/execveat that returned an error */
	EV_ESCALATION = 3, /* gained (or was refused) uid 0 / euid 0 */
	EV_EXIT = 4,       /* last thread of a process exited */
	EV_FORK = 5,       /* new process (not thread); feeds the process table */
};

/* Escalation methods. */
enum esc_method {
	M_SUID_EXEC = 1,
	M_SETUID = 2,
	M_SETREUID = 3,
	M_SETRESUID = 4,
	M_SETFSUID = 5,
};

/* Flags, a bit set in event_hdr.flags. */
enum event_flag {
	F_ARGS_TRUNC = 1 << 0, /* argv longer than captured */
	F_EXE_TRUNC = 1 << 1, /* the exe path lost its top (too deep or no room) */
	F_ARGS_USER = 1 << 2, /* args read from the caller's argv array */
	F_OLD_CREDS = 1 << 3, /* exec: old_uid/old_euid hold the caller's ids before exec */
	F_CWD_TRUNC = 1 << 4, /* the cwd path lost its top */
	F_EXE_DELETED = 1 << 5, /* the exe file is unlinked or memory-backed (memfd): /proc adds " (deleted)" */
	F_ORIGIN_TRUNC = 1 << 6, /* the exe origin path lost its top */
	F_SCRIPT = 1 << 7, /* exec: the kernel ran filename through an interpreter ("#!" or binfmt_misc) */
	F_EXE_ID = 1 << 8, /* exe_dev, exe_ino and exe_owner are set */
	F_DIR_TRUNC = 1 << 9, /* the dir section lost its top */
	F_ORIGIN_SAME = 1 << 11, /* the exe origin equals the exe path (the exe is on the namespace's root mount, which shows its whole filesystem); the origin section is empty */
	F_DIR_DELETED = 1 << 12, /* the dir section's file is unlinked or memory-backed */
	F_DIR_FILE = 1 << 13, /* exec: the script was named by an fd path ("/proc/self/fd/N", "/dev/fd/N"); the dir section is that fd's file */
	F_DIR_ROOT = 1 << 10, /* the dir section is the caller's chroot, for an absolute filename */
};

/* The data area holds variable sections, in this order, each with its
 * length in the header: exe path, exe origin, exe filesystem type, filename,
 * args, cwd path, tty, cgroup path, dir path.
 * Paths are written leaf first as NUL-terminated components; the decoder
 * reverses them. filename, tty, fs type are NUL-terminated strings; args are
 * the NUL-separated argv bytes. The exe origin is the exe's path within its
 * own filesystem (the dentry walk up to the superblock's root, ignoring
 * mounts). The dir path is the file that an execveat dirfd names, when the
 * exec was relative to one, or (F_DIR_ROOT) the caller's root directory when
 * it is chrooted, so that an absolute filename can be placed in the mount
 * namespace like every other path. */
#define DATA_MAX 16384      /* logical size of the data area (power of two) */
#define DATA_SLACK 8192     /* room past DATA_MAX so masked writes stay in bounds */
#define ARGS_MAX 8192       /* bytes of argv captured */
#define MAX_ARGS 128        /* argv entries read for failed execs */
#define PATH_DEPTH 40       /* path components walked */
#define CGROUP_DEPTH 10     /* cgroup levels walked */
#define NAME_MAX_READ 256   /* longest path component read */

struct event_hdr {
	__u64 ts_boot_ns;   /* bpf_ktime_get_boot_ns at the event */
	__u64 duration_ns;  /* exit: lifetime of the process */
	__u64 cgroup_id;
	__u64 start_ns;     /* the process's start (boot-time ns): with pid, its identity */
	__u64 pstart_ns;    /* the real parent's start (boot-time ns) */
	__u64 exe_ino;      /* F_EXE_ID: inode number of the exe */
	__u32 exe_dev;      /* F_EXE_ID: the exe's filesystem device (kernel dev_t) */
	__u32 exe_owner;    /* F_EXE_ID: uid owning the exe file */
	__u32 mnt_ns;       /* mount namespace inode number */
	__u32 type;
	__u32 pid;          /* thread-group id */
	__u32 tid;
	__u32 ppid;
	__u32 old_pid;      /* exec: tid before exec (differs for a thread that execs) */
	__u32 uid;
	__u32 euid;
	__u32 gid;
	__u32 egid;
	__u32 auid;
	__u32 old_uid;      /* escalation: before */
	__u32 old_euid;
	__u32 new_uid;      /* escalation: after (or requested, when refused) */
	__u32 new_euid;
	__s32 retval;       /* 0 or a negative errno */
	__u32 exit_code;    /* exit: raw wait status (code << 8 | core | signal) */
	__u32 method;       /* escalation method */
	__u32 flags;
	__s32 dirfd;        /* failed execveat: the dirfd argument */
	__u16 exe_len;
	__u16 origin_len;
	__u16 fs_len;
	__u16 filename_len;
	__u16 args_len;
	__u16 cwd_len;
	__u16 tty_len;
	__u16 cgroup_len;
	__u16 dir_len;
	char comm[TASK_COMM_LEN];
};

struct event {
	struct event_hdr h;
	char data[DATA_MAX + DATA_SLACK];
	/* Write cursor, kept in map memory on purpose: see launder(). */
	__u32 cursor;
};

#endif

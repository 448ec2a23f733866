//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/* procwatch's kernel side: tracepoint programs that report execs (and failed
 * execs), escalations to root (and refused attempts), forks and exits on one
 * ring buffer. Only tracepoints and BTF raw tracepoints are used, so the
 * sensor runs on kernels built without kprobes and where fentry/LSM programs
 * are refused. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "procwatch.h"

char LICENSE[] SEC("license") = "GPL";

/* Never used: they put the record's enums in the object's BTF, from which
 * bpf2go (-type) generates the Go constants the decoder uses. */
const enum event_type *unused_event_type __attribute__((unused));
const enum esc_method *unused_esc_method __attribute__((unused));
const enum event_flag *unused_event_flag __attribute__((unused));

/* Longest time the writer lets pass without waking the reader, and the
 * shortest between two wakeups when the ring fills up. */
#define WAKEUP_NS (10 * 1000 * 1000ULL)
#define WAKEUP_MIN_NS (1000 * 1000ULL)

/* Pending bytes that make the writer wake the reader early: a quarter of
 * the ring, set by the loader. */
const volatile __u64 wakeup_bytes = 1 << 21;

/* When an event last woke the reader (bpf_ktime_get_ns). */
__u64 last_wakeup = 0;

/* The sensor's own thread-group id, set before load: its own activity is
 * never reported (judged by pid, never by name). */
const volatile __u32 self_tgid = 0;

/* Events to user space. Its size is set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} events SEC(".maps");

/* Events that found no room in the ring buffer, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Scratch space to build one event; too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

/* An execve/execveat in flight, keyed by the calling thread's id. Recorded at
 * syscall entry (cheap: pointers and ids only) and read at sched_process_exec
 * (to compare credentials) or at syscall exit (to report a failure). */
struct exec_call {
	__u64 filename;  /* user pointer */
	__u64 argv;      /* user pointer */
	__u32 uid;
	__u32 euid;
	__s32 dirfd;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct exec_call);
} exec_calls SEC(".maps");

/* A set*uid call in flight that could grant root, keyed by thread id. */
struct setid_call {
	__u32 method;
	__u32 old_uid;
	__u32 old_euid;
	__u32 req_uid;   /* requested real (or fs) uid, as passed; -1 = unchanged */
	__u32 req_euid;  /* requested effective uid, as passed; -1 = unchanged */
	__u32 init_ns;   /* caller is in the initial user namespace */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct setid_call);
} setid_calls SEC(".maps");

/* Field renamed in Linux 6.15; this flavor lets CO-RE find it on older kernels. */
struct kernfs_node___old {
	struct kernfs_node *parent;
};

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&drops, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* RD reads a kernel field: with a plain load when the pointer is a BTF
 * pointer (the arguments of tp_btf hooks), which costs a fraction of a
 * bpf_probe_read_kernel call, and with BPF_CORE_READ otherwise (classic
 * tracepoints, where the current task is an untyped address: the typed
 * bpf_get_current_task_btf needs Linux 5.11, and procwatch runs on 5.8).
 * btf is a constant at every call site, so the other arm compiles away. */
#define RD(btf, direct, core) ((btf) ? (direct) : (core))

static __always_inline struct event *new_event(struct task_struct *task, __u32 type, int btf)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(&e->h, 0, sizeof(e->h));
	e->h.type = type;
	e->h.ts_boot_ns = bpf_ktime_get_boot_ns();
	e->h.pid = RD(btf, task->tgid, BPF_CORE_READ(task, tgid));
	e->h.tid = RD(btf, task->pid, BPF_CORE_READ(task, pid));
	struct task_struct *parent = RD(btf, task->real_parent, BPF_CORE_READ(task, real_parent));
	e->h.ppid = RD(btf, parent->tgid, BPF_CORE_READ(parent, tgid));
	const struct cred *cred = RD(btf, task->real_cred, BPF_CORE_READ(task, real_cred));
	e->h.uid = RD(btf, cred->uid.val, BPF_CORE_READ(cred, uid.val));
	e->h.euid = RD(btf, cred->euid.val, BPF_CORE_READ(cred, euid.val));
	e->h.gid = RD(btf, cred->gid.val, BPF_CORE_READ(cred, gid.val));
	e->h.egid = RD(btf, cred->egid.val, BPF_CORE_READ(cred, egid.val));
	if (bpf_core_field_exists(task->loginuid))
		e->h.auid = RD(btf, task->loginuid.val, BPF_CORE_READ(task, loginuid.val));
	else
		e->h.auid = (__u32)-1;
	bpf_probe_read_kernel_str(e->h.comm, sizeof(e->h.comm), &task->comm);
	/* pid plus start time names a process uniquely: the process table
	 * keys on both, so a reused pid never inherits a dead one's ancestry. */
	if (e->h.pid == e->h.tid) /* the leader, as after every exec and fork */
		e->h.start_ns = RD(btf, task->start_boottime, BPF_CORE_READ(task, start_boottime));
	else
		e->h.start_ns = RD(btf, task->group_leader->start_boottime, BPF_CORE_READ(task, group_leader, start_boottime));
	e->h.pstart_ns = RD(btf, parent->group_leader->start_boottime, BPF_CORE_READ(parent, group_leader, start_boottime));
	return e;
}

/* launder stores the write offset in map memory and reads it back. The
 * verifier does not track values kept in map memory, so afterwards it sees
 * an unknown offset that the masks and bounds checks still make safe. This
 * keeps it from exploring every combination of component lengths across
 * the path and argument loops, which would exceed its instruction budget. */
static __always_inline __u32 launder(struct event *e, __u32 off)
{
	e->cursor = off;
	return *(volatile __u32 *)&e->cursor;
}

/* slot returns where to write at off. The mask is applied in assembly so
 * that the compiler cannot drop it after proving a tighter bound that the
 * verifier would not see; every write through a slot stays inside data[]
 * because writes are at most DATA_SLACK bytes long. */
static __always_inline char *slot(struct event *e, __u32 off)
{
	__u64 o = off;
	asm volatile("%[o] &= %[m]" : [o] "+r"(o) : [m] "i"(DATA_MAX - 1));
	return &e->data[o];
}

static __always_inline void submit(struct event *e, __u32 off)
{
	__u64 size = (__u64)off + sizeof(e->h);
	/* Compare and pass the same register, so the verifier keeps the bound. */
	asm volatile("" : "+r"(size));
	if (size > sizeof(e->h) + DATA_MAX)
		size = sizeof(e->h) + DATA_MAX;
	asm volatile("" : "+r"(size));
	if (size > sizeof(e->h) + DATA_MAX)
		return;
	/* Wake the reader at most once per WAKEUP_NS, or once per millisecond
	 * when a quarter of the ring is full. A wakeup is an interrupt (a VM
	 * exit under virtualisation), so per-event wakeups would cost more than
	 * the event itself; the reader also collects on its own tick while
	 * events flow. The race between CPUs on last_wakeup only risks an extra
	 * wakeup. */
	__u64 now = bpf_ktime_get_ns();
	__u64 since = now - last_wakeup;
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (since > WAKEUP_NS ||
	    (since > WAKEUP_MIN_NS && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_bytes)) {
		flags = BPF_RB_FORCE_WAKEUP;
		last_wakeup = now;
	}
	if (bpf_ringbuf_output(&events, e, size, flags) < 0)
		count_drop();
}

/* put_path writes the components of a path, leaf first, each NUL-terminated,
 * starting at off. It crosses mount points up to the root of the task's mount
 * namespace. When it must stop before the root it sets trunc_flag, so the
 * decoder can mark the path as incomplete. Returns the new offset. */
static __always_inline __u32 put_path(struct event *e, __u32 off, const struct path *path, __u32 trunc_flag)
{
	struct dentry *d = BPF_CORE_READ(path, dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	__u64 mnt_off = bpf_core_field_offset(struct mount, mnt);
	struct mount *mnt = (struct mount *)((void *)vfsmnt - mnt_off);

	/* The mount's root changes only when the walk crosses a mount. */
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	for (int i = 0; i < PATH_DEPTH; i++) {
		off = launder(e, off);
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (d == mnt_root || d == parent) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (d != mnt_root || up == mnt)
				return off; /* reached the root */
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vfsmnt = (struct vfsmount *)((void *)mnt + mnt_off);
			mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
			continue;
		}
		if (off > DATA_MAX - NAME_MAX_READ) {
			e->h.flags |= trunc_flag;
			return off;
		}
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		long n = bpf_probe_read_kernel_str(slot(e, off), NAME_MAX_READ, name);
		if (n <= 0)
			return off;
		off += n;
		d = parent;
	}
	e->h.flags |= trunc_flag;
	return off;
}

/* put_kstr copies a kernel string; returns the new offset. */
static __always_inline __u32 put_kstr(struct event *e, __u32 off, const char *s, __u32 max)
{
	if (!s || off > DATA_MAX - max)
		return off;
	long n = bpf_probe_read_kernel_str(slot(e, off), max, s);
	return n > 0 ? off + n : off;
}

/* put_origin writes the path of d within its own filesystem, leaf first
 * like put_path, walking parents up to the superblock's root and ignoring
 * mounts: a file bind-mounted from /tmp over /usr/bin/true, or seen through
 * a chroot, still shows where it really lives. A file whose dentry is its
 * own root (a memfd) is written as its name. */
static __always_inline __u32 put_origin(struct event *e, __u32 off, struct dentry *d)
{
	for (int i = 0; i < PATH_DEPTH; i++) {
		off = launder(e, off);
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (d == parent && i > 0)
			return off;
		if (off > DATA_MAX - NAME_MAX_READ) {
			e->h.flags |= F_ORIGIN_TRUNC;
			return off;
		}
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		long n = bpf_probe_read_kernel_str(slot(e, off), NAME_MAX_READ, name);
		if (n <= 0 || d == parent)
			return n > 0 ? off + n : off;
		off += n;
		d = parent;
	}
	e->h.flags |= F_ORIGIN_TRUNC;
	return off;
}

/* exe_deleted tells whether /proc would show the exe as " (deleted)": an
 * unlinked file, or a memory-backed one (a memfd, whose dentry is its own
 * root inside an internal mount and which the kernel names with that
 * suffix). */
static __always_inline int exe_deleted(struct file *exe)
{
	struct dentry *d = BPF_CORE_READ(exe, f_path.dentry);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == parent)
		return d != BPF_CORE_READ(exe, f_path.mnt, mnt_root);
	return BPF_CORE_READ(d, d_hash.pprev) == 0;
}

/* put_exe writes the sections that name the running binary (exe path,
 * origin, filesystem type) and its identity (device, inode, owner). */
static __always_inline __u32 put_exe(struct event *e, __u32 off, struct task_struct *task, int btf)
{
	/* btf: task is a BTF pointer, read with plain loads (see RD). */
	struct mnt_namespace *ns = RD(btf, task->nsproxy->mnt_ns, BPF_CORE_READ(task, nsproxy, mnt_ns));
	e->h.mnt_ns = RD(btf, ns->ns.inum, BPF_CORE_READ(ns, ns.inum));
	struct file *exe = RD(btf, task->mm->exe_file, BPF_CORE_READ(task, mm, exe_file));
	if (!exe)
		return off;
	off = launder(e, off);
	__u32 start = off;
	struct dentry *d = RD(btf, exe->f_path.dentry, BPF_CORE_READ(exe, f_path.dentry));
	struct vfsmount *vm = RD(btf, exe->f_path.mnt, BPF_CORE_READ(exe, f_path.mnt));
	struct dentry *parent = RD(btf, d->d_parent, BPF_CORE_READ(d, d_parent));
	struct dentry *mnt_root = RD(btf, vm->mnt_root, BPF_CORE_READ(vm, mnt_root));
	if (d == parent && d != mnt_root) {
		/* A pseudo file such as a memfd: the kernel names it by itself,
		 * always with " (deleted)" (see exe_deleted). */
		e->h.flags |= F_EXE_DELETED;
		off = put_kstr(e, off, (const char *)RD(btf, d->d_name.name, BPF_CORE_READ(d, d_name.name)), NAME_MAX_READ);
	} else {
		if (d != parent && !RD(btf, d->d_hash.pprev, BPF_CORE_READ(d, d_hash.pprev)))
			e->h.flags |= F_EXE_DELETED;
		off = put_path(e, off, &exe->f_path, F_EXE_TRUNC);
	}
	e->h.exe_len = off - start;

	struct inode *inode = RD(btf, exe->f_inode, BPF_CORE_READ(exe, f_inode));
	struct super_block *sb = RD(btf, inode->i_sb, BPF_CORE_READ(inode, i_sb));
	/* The usual case costs no second walk: a binary on the namespace's
	 * root mount, when that mount shows its filesystem from the top, has
	 * the same path within the filesystem as in the namespace. */
	struct mount *nsroot = RD(btf, ns->root, BPF_CORE_READ(ns, root));
	if (nsroot && vm == &nsroot->mnt && mnt_root == RD(btf, sb->s_root, BPF_CORE_READ(sb, s_root)) &&
	    d != parent && !(e->h.flags & F_EXE_TRUNC)) {
		e->h.flags |= F_ORIGIN_SAME;
	} else {
		off = launder(e, off);
		start = off;
		off = put_origin(e, off, d);
		e->h.origin_len = off - start;
	}

	e->h.exe_dev = RD(btf, sb->s_dev, BPF_CORE_READ(sb, s_dev));
	e->h.exe_ino = RD(btf, inode->i_ino, BPF_CORE_READ(inode, i_ino));
	e->h.exe_owner = RD(btf, inode->i_uid.val, BPF_CORE_READ(inode, i_uid.val));
	e->h.flags |= F_EXE_ID;
	off = launder(e, off);
	start = off;
	off = put_kstr(e, off, RD(btf, sb->s_type->name, BPF_CORE_READ(sb, s_type, name)), 32);
	e->h.fs_len = off - start;
	return off;
}

/* fd_file returns the file open at fd in task, or 0. */
static __always_inline struct file *fd_file(struct task_struct *task, __s32 fd)
{
	if (fd < 0)
		return 0;
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* put_root writes the dir section with the task's root directory, flagged
 * F_DIR_ROOT, when the task is chrooted (its root is not its mount
 * namespace's root): a filename it passes as absolute is relative to it. */
static __always_inline __u32 put_root(struct event *e, __u32 off, struct task_struct *task)
{
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct mount *nsroot = BPF_CORE_READ(task, nsproxy, mnt_ns, root);
	if (!fs || !nsroot)
		return off;
	struct vfsmount *mnt = BPF_CORE_READ(fs, root.mnt);
	struct dentry *d = BPF_CORE_READ(fs, root.dentry);
	if (mnt == &nsroot->mnt && d == BPF_CORE_READ(nsroot, mnt.mnt_root))
		return off;
	off = launder(e, off);
	__u32 start = off;
	off = put_path(e, off, &fs->root, F_DIR_TRUNC);
	e->h.dir_len = off - start;
	if (e->h.dir_len)
		e->h.flags |= F_DIR_ROOT;
	return off;
}

/* put_dir writes the dir section: the path of the file open at fd, for an
 * exec relative to a directory fd (or of an fd itself, AT_EMPTY_PATH). */
static __always_inline __u32 put_dir(struct event *e, __u32 off, struct task_struct *task, __s32 fd)
{
	struct file *f = fd_file(task, fd);
	if (!f)
		return off;
	off = launder(e, off);
	__u32 start = off;
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	if (d == parent && d != BPF_CORE_READ(f, f_path.mnt, mnt_root)) {
		/* A memfd (a fileless script): named as /proc names it. */
		e->h.flags |= F_DIR_DELETED;
		off = put_kstr(e, off, (const char *)BPF_CORE_READ(d, d_name.name), NAME_MAX_READ);
	} else {
		if (d != parent && !BPF_CORE_READ(d, d_hash.pprev))
			e->h.flags |= F_DIR_DELETED;
		off = put_path(e, off, &f->f_path, F_DIR_TRUNC);
	}
	e->h.dir_len = off - start;
	return off;
}

/* fd_in_path returns N when a kernel string is "/proc/self/fd/N" or
 * "/dev/fd/N" (how a fileless script is run: execve of its memfd's fd
 * path), or -1. */
static __always_inline __s32 fd_in_path(const char *filename)
{
	char buf[24] = {};
	if (bpf_probe_read_kernel_str(buf, sizeof(buf), filename) <= 0)
		return -1;
	int i;
	if (buf[0] == '/' && buf[1] == 'd' && buf[2] == 'e' && buf[3] == 'v' && buf[4] == '/' &&
	    buf[5] == 'f' && buf[6] == 'd' && buf[7] == '/')
		i = 8;
	else if (buf[0] == '/' && buf[1] == 'p' && buf[2] == 'r' && buf[3] == 'o' && buf[4] == 'c' &&
		 buf[5] == '/' && buf[6] == 's' && buf[7] == 'e' && buf[8] == 'l' && buf[9] == 'f' &&
		 buf[10] == '/' && buf[11] == 'f' && buf[12] == 'd' && buf[13] == '/')
		i = 14;
	else
		return -1;
	__s32 fd = 0;
	int digits = 0;
	for (int k = 0; k < 7; k++) {
		int j = i + k;
		if (j >= (int)sizeof(buf))
			return -1;
		char c = buf[j];
		if (c == 0)
			break;
		if (c < '0' || c > '9')
			return -1;
		fd = fd * 10 + (c - '0');
		digits++;
	}
	return digits ? fd : -1;
}

/* put_ustr copies a user string; returns the new offset. */
static __always_inline __u32 put_ustr(struct event *e, __u32 off, const char *s, __u32 max)
{
	if (!s || off > DATA_MAX - max)
		return off;
	long n = bpf_probe_read_user_str(slot(e, off), max, s);
	return n > 0 ? off + n : off;
}

/* put_context adds cwd, tty and cgroup path, shared by exec and failed exec. */
static __always_inline __u32 put_context(struct event *e, __u32 off, struct task_struct *task, int btf)
{
	off = launder(e, off);
	__u32 start = off;
	struct fs_struct *fs = RD(btf, task->fs, BPF_CORE_READ(task, fs));
	if (fs)
		off = put_path(e, off, &fs->pwd, F_CWD_TRUNC);
	e->h.cwd_len = off - start;

	start = off;
	struct tty_struct *tty = RD(btf, task->signal->tty, BPF_CORE_READ(task, signal, tty));
	if (tty)
		off = put_kstr(e, off, (const char *)&tty->name, 64);
	e->h.tty_len = off - start;

	start = off;
	e->h.cgroup_id = bpf_get_current_cgroup_id();
	struct kernfs_node *kn = RD(btf, task->cgroups->dfl_cgrp->kn, BPF_CORE_READ(task, cgroups, dfl_cgrp, kn));
	for (int i = 0; i < CGROUP_DEPTH && kn; i++) {
		off = launder(e, off);
		struct kernfs_node *parent;
		if (bpf_core_field_exists(kn->__parent))
			parent = BPF_CORE_READ(kn, __parent);
		else
			parent = BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
		if (!parent)
			break; /* the root's name is empty */
		off = put_kstr(e, off, BPF_CORE_READ(kn, name), NAME_MAX_READ);
		kn = parent;
	}
	e->h.cgroup_len = off - start;
	return off;
}

static __always_inline int has_root(__u32 uid, __u32 euid)
{
	return uid == 0 || euid == 0;
}

/* ---- exec ---- */

static __always_inline int record_exec_call(__u64 filename, __u64 argv, __s32 dirfd)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	__u64 ug = bpf_get_current_uid_gid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct exec_call c = {
		.filename = filename,
		.argv = argv,
		.uid = (__u32)ug,
		.euid = BPF_CORE_READ(task, real_cred, euid.val),
		.dirfd = dirfd,
	};
	__u32 tid = (__u32)id;
	bpf_map_update_elem(&exec_calls, &tid, &c, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	return record_exec_call(ctx->args[0], ctx->args[1], -100 /* AT_FDCWD */);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	return record_exec_call(ctx->args[1], ctx->args[2], (__s32)ctx->args[0]);
}

/* exit_exec reports a failed exec. A successful one never gets here with
 * its record: sched_process_exec consumed it. */
static __always_inline int exit_exec(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct exec_call *c = bpf_map_lookup_elem(&exec_calls, &tid);
	if (!c)
		return 0;
	if (ret >= 0) {
		bpf_map_delete_elem(&exec_calls, &tid);
		return 0;
	}
	struct exec_call call = *c;
	bpf_map_delete_elem(&exec_calls, &tid);

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct event *e = new_event(task, EV_EXEC_FAIL, 0);
	if (!e)
		return 0;
	e->h.retval = (__s32)ret;
	e->h.mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	e->h.dirfd = call.dirfd;
	e->h.flags |= F_ARGS_USER;

	__u32 off = 0;
	/* exe_len stays 0: nothing ran; the decoder derives exe from filename. */
	off = put_ustr(e, off, (const char *)call.filename, NAME_MAX_READ * 16);
	e->h.filename_len = off;

	__u32 start = off;
	const char *const *argv = (const char *const *)call.argv;
	for (int i = 0; i < MAX_ARGS; i++) {
		off = launder(e, off);
		const char *arg = 0;
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) < 0 || !arg)
			break;
		if (off - start >= ARGS_MAX || off > DATA_MAX - ARGS_MAX) {
			e->h.flags |= F_ARGS_TRUNC;
			break;
		}
		long n = bpf_probe_read_user_str(slot(e, off), ARGS_MAX, arg);
		if (n <= 0)
			break;
		off += n;
		if (i == MAX_ARGS - 1)
			e->h.flags |= F_ARGS_TRUNC;
	}
	e->h.args_len = off - start;

	off = put_context(e, off, task, 0);
	if (call.dirfd != -100 /* AT_FDCWD */)
		off = put_dir(e, off, task, call.dirfd);
	else
		off = put_root(e, off, task);
	submit(e, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int exit_execveat(struct trace_event_raw_sys_exit *ctx)
{
	return exit_exec(ctx->ret);
}

/* on_exec runs in the new program's context: current->mm is the new image,
 * current's credentials are the new ones. */
static __always_inline int on_exec(struct task_struct *task, __u32 old_pid, const char *filename, int script, int btf)
{
	if (RD(btf, task->tgid, BPF_CORE_READ(task, tgid)) == self_tgid)
		return 0;
	struct event *e = new_event(task, EV_EXEC, btf);
	if (!e)
		return 0;
	e->h.old_pid = old_pid;
	if (script)
		e->h.flags |= F_SCRIPT;

	__u32 off = put_exe(e, 0, task, btf);

	off = launder(e, off);
	__u32 start = off;
	off = put_kstr(e, off, filename, NAME_MAX_READ * 16);
	e->h.filename_len = off - start;

	start = off;
	struct mm_struct *mm = RD(btf, task->mm, BPF_CORE_READ(task, mm));
	unsigned long arg_start = RD(btf, mm->arg_start, BPF_CORE_READ(mm, arg_start));
	unsigned long arg_end = RD(btf, mm->arg_end, BPF_CORE_READ(mm, arg_end));
	__u64 len = arg_end - arg_start;
	if (len > ARGS_MAX) {
		len = ARGS_MAX;
		e->h.flags |= F_ARGS_TRUNC;
	}
	if (len > 0 && off <= DATA_MAX - ARGS_MAX) {
		if (bpf_probe_read_user(slot(e, off), len, (void *)arg_start) == 0)
			off += len;
	}
	e->h.args_len = off - start;

	off = put_context(e, off, task, btf);

	/* Compare with the credentials the caller had before exec. */
	struct exec_call *c = bpf_map_lookup_elem(&exec_calls, &old_pid);
	__u32 old_uid = 0, old_euid = 0;
	__s32 dirfd = -100;
	int known = 0;
	if (c) {
		old_uid = c->uid;
		old_euid = c->euid;
		dirfd = c->dirfd;
		known = 1;
		bpf_map_delete_elem(&exec_calls, &old_pid);
		e->h.old_uid = old_uid;
		e->h.old_euid = old_euid;
		e->h.flags |= F_OLD_CREDS;
	}
	/* A script run through a directory fd: name that directory (the fd
	 * survives the exec, or the kernel would have refused the script). */
	e->h.dirfd = dirfd;
	if (script && dirfd != -100) {
		off = put_dir(e, off, task, dirfd);
	} else if (script) {
		__s32 fd = fd_in_path(filename);
		if (fd >= 0) {
			e->h.dirfd = fd;
			e->h.flags |= F_DIR_FILE;
			off = put_dir(e, off, task, fd);
		} else {
			off = put_root(e, off, task);
		}
	}
	submit(e, off);

	if (known && !has_root(old_uid, old_euid) && has_root(e->h.uid, e->h.euid)) {
		/* A set-user-ID-root binary (or file capabilities granting uid 0). */
		e->h.type = EV_ESCALATION;
		e->h.method = M_SUID_EXEC;
		e->h.old_uid = old_uid;
		e->h.old_euid = old_euid;
		e->h.new_uid = e->h.uid;
		e->h.new_euid = e->h.euid;
		/* Keep the exe and filename sections; drop the rest (the decoder
		 * fills argv, cwd and tty from the exec it just read). */
		__u32 keep = e->h.exe_len + e->h.origin_len + e->h.fs_len + e->h.filename_len;
		e->h.flags &= ~F_SCRIPT;
		e->h.args_len = 0;
		e->h.cwd_len = 0;
		e->h.tty_len = 0;
		e->h.cgroup_len = 0;
		e->h.dir_len = 0;
		submit(e, keep);
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(btf_sched_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	/* The kernel keeps bprm->interp pointing at bprm->filename unless a
	 * "#!" script (or binfmt_misc) handler chose an interpreter: then
	 * filename names the script and the exe is the interpreter. */
	const char *filename = BPF_CORE_READ(bprm, filename);
	return on_exec(p, old_pid, filename, BPF_CORE_READ(bprm, interp) != filename, 1);
}

SEC("tracepoint/sched/sched_process_exec")
int tp_sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 loc = ctx->__data_loc_filename;
	return on_exec(task, ctx->old_pid, (const char *)ctx + (loc & 0xFFFF), 0, 0);
}

/* ---- fork and exit ---- */

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	__u32 pid = BPF_CORE_READ(child, pid);
	__u32 tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid)
		return 0; /* a new thread, not a process */
	/* new_event names the child's real parent (for CLONE_PARENT, the
	 * forking task's own parent), with its start time. */
	struct event *e = new_event(child, EV_FORK, 1);
	if (!e)
		return 0;
	submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(btf_sched_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("tracepoint/sched/sched_process_fork")
int tp_sched_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	/* The classic tracepoint gives pids only; the child is not current. */
	struct task_struct *parent = (struct task_struct *)bpf_get_current_task();
	__u32 child_pid = ctx->child_pid;
	/* Threads share the parent's tgid; a new process has its own. Without
	 * the child task we cannot tell for sure, so report every fork and let
	 * the process table ignore pids it already knows as threads. */
	struct event *e = new_event(parent, EV_FORK, 0);
	if (!e)
		return 0;
	e->h.ppid = e->h.pid;
	e->h.pid = child_pid;
	e->h.tid = child_pid;
	/* The child's start time is not at hand: unknown (0), and the
	 * parent's is the current task's. */
	e->h.pstart_ns = e->h.start_ns;
	e->h.start_ns = 0;
	submit(e, 0);
	return 0;
}

static __always_inline int on_exit(struct task_struct *task, int btf)
{
	if (RD(btf, task->tgid, BPF_CORE_READ(task, tgid)) == self_tgid)
		return 0;
	/* Report a process once: when its last thread exits. */
	if (RD(btf, task->signal->live.counter, BPF_CORE_READ(task, signal, live.counter)) != 0)
		return 0;
	struct event *e = new_event(task, EV_EXIT, btf);
	if (!e)
		return 0;
	e->h.exit_code = RD(btf, task->exit_code, BPF_CORE_READ(task, exit_code));
	/* The exe may have been deleted since the exec (the mm is still there
	 * when this tracepoint fires on current kernels). */
	struct file *exe = RD(btf, task->mm->exe_file, BPF_CORE_READ(task, mm, exe_file));
	if (exe && exe_deleted(exe))
		e->h.flags |= F_EXE_DELETED;
	__u64 start = RD(btf, task->group_leader->start_time, BPF_CORE_READ(task, group_leader, start_time));
	e->h.duration_ns = bpf_ktime_get_ns() - start;
	submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(btf_sched_exit, struct task_struct *p)
{
	return on_exit(p, 1);
}

SEC("tracepoint/sched/sched_process_exit")
int tp_sched_exit(void *ctx)
{
	return on_exit((struct task_struct *)bpf_get_current_task(), 0);
}

/* ---- set*uid ---- */

static __always_inline int record_setid(__u32 method, __u32 req_uid, __u32 req_euid, __u32 req_suid)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == self_tgid)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	__u32 uid = BPF_CORE_READ(cred, uid.val);
	__u32 euid = BPF_CORE_READ(cred, euid.val);
	if (has_root(uid, euid))
		return 0; /* already privileged: not an escalation */
	if (req_uid != 0 && req_euid != 0 && req_suid != 0)
		return 0; /* not asking for root */
	struct setid_call c = {
		.method = method,
		.old_uid = uid,
		.old_euid = euid,
		.req_uid = req_uid,
		.req_euid = req_euid,
		.init_ns = BPF_CORE_READ(cred, user_ns, level) == 0,
	};
	__u32 tid = (__u32)id;
	bpf_map_update_elem(&setid_calls, &tid, &c, BPF_ANY);
	return 0;
}

static __always_inline int finish_setid(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct setid_call *p = bpf_map_lookup_elem(&setid_calls, &tid);
	if (!p)
		return 0;
	struct setid_call c = *p;
	bpf_map_delete_elem(&setid_calls, &tid);

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	__u32 uid = BPF_CORE_READ(cred, uid.val);
	__u32 euid = BPF_CORE_READ(cred, euid.val);
	int gained;
	if (c.method == M_SETFSUID) {
		/* setfsuid never fails; it returns the previous fsuid. */
		gained = BPF_CORE_READ(cred, fsuid.val) == 0;
		ret = gained ? 0 : -1 /* EPERM */;
	} else {
		gained = ret == 0 && has_root(uid, euid);
	}
	if (!gained && (ret == 0 || !c.init_ns))
		return 0; /* worked but not root (user namespace), or refused inside one */

	struct event *e = new_event(task, EV_ESCALATION, 0);
	if (!e)
		return 0;
	e->h.method = c.method;
	e->h.retval = gained ? 0 : (__s32)ret;
	e->h.old_uid = c.old_uid;
	e->h.old_euid = c.old_euid;
	if (gained) {
		e->h.new_uid = uid;
		e->h.new_euid = euid;
		if (c.method == M_SETFSUID)
			e->h.new_euid = BPF_CORE_READ(cred, fsuid.val);
	} else {
		e->h.new_uid = c.req_uid == (__u32)-1 ? c.old_uid : c.req_uid;
		e->h.new_euid = c.req_euid == (__u32)-1 ? c.old_euid : c.req_euid;
	}
	__u32 off = put_exe(e, 0, task, 0);
	submit(e, off);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_setuid")
int enter_setuid(struct trace_event_raw_sys_enter *ctx)
{
	__u32 u = ctx->args[0];
	return record_setid(M_SETUID, u, u, u);
}

SEC("tracepoint/syscalls/sys_enter_setreuid")
int enter_setreuid(struct trace_event_raw_sys_enter *ctx)
{
	return record_setid(M_SETREUID, ctx->args[0], ctx->args[1], (__u32)-1);
}

SEC("tracepoint/syscalls/sys_enter_setresuid")
int enter_setresuid(struct trace_event_raw_sys_enter *ctx)
{
	return record_setid(M_SETRESUID, ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_setfsuid")
int enter_setfsuid(struct trace_event_raw_sys_enter *ctx)
{
	__u32 u = ctx->args[0];
	return record_setid(M_SETFSUID, u, (__u32)-1, (__u32)-1);
}

SEC("tracepoint/syscalls/sys_exit_setuid")
int exit_setuid(struct trace_event_raw_sys_exit *ctx) { return finish_setid(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_setreuid")
int exit_setreuid(struct trace_event_raw_sys_exit *ctx) { return finish_setid(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_setresuid")
int exit_setresuid(struct trace_event_raw_sys_exit *ctx) { return finish_setid(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_setfsuid")
int exit_setfsuid(struct trace_event_raw_sys_exit *ctx) { return finish_setid(ctx->ret); }

//go:build linux

package sensor

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/procwatch/procwatch/bpf"
)

// hook is one program and where it attaches.
type hook struct {
	prog   string // program name in the object
	group  string // tracepoint group, empty for tp_btf
	name   string // tracepoint or BTF hook name
	btf    bool   // tp_btf program
	legacy bool   // classic tracepoint replacing a tp_btf one in fallback mode
}

var hooks = []hook{
	{prog: bpf.ProcwatchProgBtfSchedExec, name: "sched_process_exec", btf: true},
	{prog: bpf.ProcwatchProgBtfSchedFork, name: "sched_process_fork", btf: true},
	{prog: bpf.ProcwatchProgBtfSchedExit, name: "sched_process_exit", btf: true},
	{prog: bpf.ProcwatchProgTpSchedExec, group: "sched", name: "sched_process_exec", legacy: true},
	{prog: bpf.ProcwatchProgTpSchedFork, group: "sched", name: "sched_process_fork", legacy: true},
	{prog: bpf.ProcwatchProgTpSchedExit, group: "sched", name: "sched_process_exit", legacy: true},
	{prog: bpf.ProcwatchProgEnterExecve, group: "syscalls", name: "sys_enter_execve"},
	{prog: bpf.ProcwatchProgExitExecve, group: "syscalls", name: "sys_exit_execve"},
	{prog: bpf.ProcwatchProgEnterExecveat, group: "syscalls", name: "sys_enter_execveat"},
	{prog: bpf.ProcwatchProgExitExecveat, group: "syscalls", name: "sys_exit_execveat"},
	{prog: bpf.ProcwatchProgEnterSetuid, group: "syscalls", name: "sys_enter_setuid"},
	{prog: bpf.ProcwatchProgExitSetuid, group: "syscalls", name: "sys_exit_setuid"},
	{prog: bpf.ProcwatchProgEnterSetreuid, group: "syscalls", name: "sys_enter_setreuid"},
	{prog: bpf.ProcwatchProgExitSetreuid, group: "syscalls", name: "sys_exit_setreuid"},
	{prog: bpf.ProcwatchProgEnterSetresuid, group: "syscalls", name: "sys_enter_setresuid"},
	{prog: bpf.ProcwatchProgExitSetresuid, group: "syscalls", name: "sys_exit_setresuid"},
	{prog: bpf.ProcwatchProgEnterSetfsuid, group: "syscalls", name: "sys_enter_setfsuid"},
	{prog: bpf.ProcwatchProgExitSetfsuid, group: "syscalls", name: "sys_exit_setfsuid"},
}

// usedIn reports whether h belongs to the given mode.
func (h hook) usedIn(mode string) bool {
	if mode == ModeBTF {
		return !h.legacy
	}
	return !h.btf
}

// checkHost explains, before loading, what this host lacks: kernel BTF
// (for CO-RE) and the BPF ring buffer (Linux 5.8). The ring buffer is
// probed with cilium/ebpf's features package rather than guessed from the
// kernel version, which distributions backport around.
func checkHost() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return errors.New("kernel BTF not found at /sys/kernel/btf/vmlinux: procwatch needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux 5.8 or later; most distribution kernels have it)")
	}
	if err := features.HaveMapType(ebpf.RingBuf); errors.Is(err, ebpf.ErrNotSupported) {
		return errors.New("this kernel has no BPF ring buffer: procwatch needs Linux 5.8 or later")
	}
	// Any other probe error (no permission, say) surfaces, explained, when
	// the programs load.
	return nil
}

// loadCollection loads the BPF objects for one mode.
func loadCollection(mode string, ringBytes int) (*ebpf.Collection, error) {
	spec, err := bpf.LoadProcwatch()
	if err != nil {
		return nil, fmt.Errorf("read embedded BPF object: %w", err)
	}
	spec.Maps[bpf.ProcwatchMapEvents].MaxEntries = uint32(ringBytes)
	if err := spec.Variables["self_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("set self_tgid: %w", err)
	}
	if err := spec.Variables["wakeup_bytes"].Set(uint64(ringBytes / 4)); err != nil {
		return nil, fmt.Errorf("set wakeup_bytes: %w", err)
	}
	for _, h := range hooks {
		if !h.usedIn(mode) {
			delete(spec.Programs, h.prog)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		return nil, explainLoadError(err)
	}
	return coll, nil
}

// explainLoadError turns the kernel's refusals into advice.
func explainLoadError(err error) error {
	var verr *ebpf.VerifierError
	switch {
	case errors.As(err, &verr):
		return fmt.Errorf("load BPF programs: the kernel's verifier refused them (please report this with your kernel version): %w", err)
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("load BPF programs: permission denied: run procwatch as root, or give it CAP_BPF and CAP_PERFMON (sudo setcap cap_bpf,cap_perfmon+ep $(which procwatch)): %w", err)
	default:
		return fmt.Errorf("load BPF programs: %w", err)
	}
}

// open loads the programs, preferring BTF raw tracepoints and falling back
// to classic tracepoints when the kernel refuses them.
func open(ringBytes int, force string) (*ebpf.Collection, string, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, "", fmt.Errorf("raise the locked-memory limit for BPF maps: %w (run as root)", err)
	}
	if err := checkHost(); err != nil {
		return nil, "", err
	}
	switch force {
	case "":
	case ModeBTF, ModeTracepoint:
		coll, err := loadCollection(force, ringBytes)
		return coll, force, err
	default:
		return nil, "", fmt.Errorf("unknown sensor mode %q (want %q or %q)", force, ModeBTF, ModeTracepoint)
	}
	coll, err := loadCollection(ModeBTF, ringBytes)
	if err == nil {
		return coll, ModeBTF, nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		return nil, "", err
	}
	coll, err2 := loadCollection(ModeTracepoint, ringBytes)
	if err2 != nil {
		return nil, "", fmt.Errorf("%w (BTF raw tracepoint mode failed too: %v)", err2, err)
	}
	return coll, ModeTracepoint, nil
}

// attach links every program of the mode to its hook. On failure it
// detaches what it attached and names the missing hook.
func attach(coll *ebpf.Collection, mode string) ([]link.Link, error) {
	var links []link.Link
	for _, h := range hooks {
		if !h.usedIn(mode) {
			continue
		}
		prog := coll.Programs[h.prog]
		var l link.Link
		var err error
		if h.btf {
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		} else {
			l, err = link.Tracepoint(h.group, h.name, prog, nil)
		}
		if err != nil {
			detach(links)
			where := h.group + "/" + h.name
			if h.btf {
				where = "tp_btf/" + h.name
			}
			hint := ""
			if h.group == "syscalls" {
				hint = " (the kernel needs CONFIG_FTRACE_SYSCALLS=y; is tracefs mounted? mount -t tracefs tracefs /sys/kernel/tracing)"
			}
			return nil, fmt.Errorf("attach %s: %w%s", where, err, hint)
		}
		links = append(links, l)
	}
	return links, nil
}

func detach(links []link.Link) {
	for _, l := range links {
		l.Close()
	}
}

package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procwatch/procwatch/bpf"
	"github.com/procwatch/procwatch/event"
)

// Raw event types, mirroring enum event_type in bpf/procwatch.h.
const (
	rawExec       = 1
	rawExecFail   = 2
	rawEscalation = 3
	rawExit       = 4
	rawFork       = 5
)

// Flags, mirroring bpf/procwatch.h.
const (
	flagArgsTrunc   = 1 << 0
	flagExeTrunc    = 1 << 1
	flagOldCreds    = 1 << 3
	flagCwdTrunc    = 1 << 4
	flagExeDeleted  = 1 << 5
	flagOriginTrunc = 1 << 6
	flagScript      = 1 << 7
	flagExeID       = 1 << 8
	flagDirTrunc    = 1 << 9
)

var methodNames = [...]string{1: event.MethodSuidExec, 2: event.MethodSetuid, 3: event.MethodSetreuid, 4: event.MethodSetresuid, 5: event.MethodSetfsuid}

type rawHeader = bpf.ProcwatchEventHdr

const headerSize = int(unsafe.Sizeof(rawHeader{}))

var errShortRecord = errors.New("record shorter than the event header")

// decodeHeader copies the fixed header out of a ring buffer record. The
// layout is the bpf2go-generated mirror of struct event_hdr, so it cannot
// drift from the C side.
func decodeHeader(raw []byte, h *rawHeader) error {
	if len(raw) < headerSize {
		return errShortRecord
	}
	*h = *(*rawHeader)(unsafe.Pointer(unsafe.SliceData(raw)))
	return nil
}

// sections splits the data area by the lengths in the header.
type sections struct {
	exe, origin, fs, filename, args, cwd, tty, cgroup, dir []byte
}

func splitSections(h *rawHeader, data []byte) (sections, error) {
	var s sections
	lens := [...]uint16{h.ExeLen, h.OriginLen, h.FsLen, h.FilenameLen, h.ArgsLen, h.CwdLen, h.TtyLen, h.CgroupLen, h.DirLen}
	dst := [...]*[]byte{&s.exe, &s.origin, &s.fs, &s.filename, &s.args, &s.cwd, &s.tty, &s.cgroup, &s.dir}
	off := 0
	for i, n := range lens {
		end := off + int(n)
		if end > len(data) {
			return s, fmt.Errorf("malformed record: section %d ends at %d past %d bytes", i, end, len(data))
		}
		*dst[i] = data[off:end]
		off = end
	}
	return s, nil
}

// joinPath rebuilds a path the BPF side wrote leaf first as NUL-terminated
// components.
func joinPath(b []byte) event.Text {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return ""
	}
	// Walk the components from the last (the root side) to the first,
	// writing each after a '/'. The result has exactly len(b)+1 bytes.
	out := make([]byte, 0, len(b)+1)
	end := len(b)
	for end > 0 {
		start := bytes.LastIndexByte(b[:end], 0) + 1
		out = append(out, '/')
		out = append(out, b[start:end]...)
		end = start - 1
	}
	return event.Text(out)
}

// truncatedPath marks a path whose top components the BPF side could not
// fit: it starts with "…" instead of "/", so it never passes for a complete
// absolute path (and a rule's path glob does not match it by accident).
func truncatedPath(p event.Text, truncated bool) event.Text {
	if !truncated {
		return p
	}
	return "…" + p
}

// cstr returns the bytes before the first NUL.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// splitArgs turns NUL-separated argv bytes into arguments. A trailing
// argument without its NUL was cut by the capture limit.
func splitArgs(b []byte) []event.Text {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	// One string for the whole argv; the arguments are slices of it, so an
	// exec costs two allocations however many arguments it has.
	all := string(b)
	args := make([]event.Text, 0, strings.Count(all, "\x00")+1)
	for {
		i := strings.IndexByte(all, 0)
		if i < 0 {
			return append(args, event.Text(all))
		}
		args = append(args, event.Text(all[:i]))
		all = all[i+1:]
	}
}

// ttyName turns the kernel's tty name into the /dev path users know:
// "pts3" is /dev/pts/3.
func ttyName(b []byte) event.Text {
	b = cstr(b)
	if len(b) == 0 {
		return ""
	}
	if rest, ok := bytes.CutPrefix(b, []byte("pts")); ok && len(rest) > 0 {
		return event.Text("pts/" + string(rest))
	}
	return event.Text(b)
}

// containerID finds a container runtime's id in a cgroup path: a 64-hex
// component, optionally wrapped as docker-<id>.scope, cri-containerd-<id>,
// crio-<id>, libpod-<id> and the like.
func containerID(cgroup event.Text) string {
	for _, part := range strings.Split(string(cgroup), "/") {
		part = strings.TrimSuffix(part, ".scope")
		if i := strings.LastIndexAny(part, "-:"); i >= 0 {
			part = part[i+1:]
		}
		if len(part) == 64 && isHex(part) {
			return part
		}
	}
	return ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// errnoName names a negative return value, e.g. -2 is "ENOENT".
func errnoName(ret int32) string {
	if ret >= 0 {
		return ""
	}
	if name := unix.ErrnoName(syscall.Errno(-ret)); name != "" {
		return name
	}
	return fmt.Sprintf("errno %d", -ret)
}

// signalName names a signal number, e.g. 11 is "SIGSEGV".
func signalName(sig int) string {
	if name := unix.SignalName(syscall.Signal(sig)); name != "" {
		return name
	}
	return fmt.Sprintf("SIG%d", sig)
}

// absPath makes a requested exec path absolute, lexically (for a failed
// exec there is no file to resolve): against dir, the path the BPF side
// resolved the execveat dirfd to, or else the caller's cwd. An empty
// filename (execveat with AT_EMPTY_PATH) names dir itself. A dirfd the BPF
// side could not resolve stays visible as "<fd N>".
func absPath(filename, cwd, dir event.Text, dirfd int32) event.Text {
	if strings.HasPrefix(string(filename), "/") {
		return event.Text(path.Clean(string(filename)))
	}
	base := cwd
	if dirfd != unix.AT_FDCWD {
		if dir == "" {
			if filename == "" {
				return event.Text(fmt.Sprintf("<fd %d>", dirfd))
			}
			return event.Text(fmt.Sprintf("<fd %d>/%s", dirfd, filename))
		}
		base = dir
	}
	if filename == "" {
		return base
	}
	if base == "" {
		return filename
	}
	return event.Text(path.Join(string(base), string(filename)))
}

// scriptPath names the script of a "#!" exec from the kernel's
// bprm->filename: as requested, made absolute against the cwd, or against
// the directory fd of an execveat (which the kernel writes as
// "/dev/fd/N/NAME", or "/dev/fd/N" for the fd itself).
func scriptPath(filename, cwd, dir event.Text, dirfd int32) event.Text {
	if dirfd != unix.AT_FDCWD && dir != "" {
		prefix := "/dev/fd/" + strconv.Itoa(int(dirfd))
		if rest, ok := strings.CutPrefix(string(filename), prefix); ok && (rest == "" || rest[0] == '/') {
			return absPath(event.Text(strings.TrimPrefix(rest, "/")), cwd, dir, dirfd)
		}
	}
	return absPath(filename, cwd, "", unix.AT_FDCWD)
}

// kernelDev converts the kernel's internal dev_t (major << 20 | minor) to
// the st_dev encoding stat(2) and /proc use.
func kernelDev(d uint32) uint64 {
	return unix.Mkdev(d>>20, d&(1<<20-1))
}

// deleted marks an exe path the way /proc/PID/exe does for a file that is
// unlinked or memory-backed.
func deleted(p event.Text, yes bool) event.Text {
	if !yes || p == "" || strings.HasSuffix(string(p), " (deleted)") {
		return p
	}
	return p + " (deleted)"
}

package exehash

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

func keyOf(st *syscall.Stat_t) Key {
	return Key{
		Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec,
		Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec,
	}
}

// openRegular opens the regular file at path for reading, and when dev or
// ino is set only if it is that file. The path comes from a process and
// may by now name a device, a FIFO or a symlink to one, whose open alone
// can act (a watchdog starts, a tape rewinds, a FIFO blocks): so it is
// first opened with O_PATH, which opens nothing, checked with fstat, and
// only then reopened for reading through /proc/self/fd.
func openRegular(path string, dev, ino uint64) (*os.File, Key, error) {
	pfd, err := syscall.Open(path, unix.O_PATH|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, Key{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(pfd)
	var st syscall.Stat_t
	if err := syscall.Fstat(pfd, &st); err != nil {
		return nil, Key{}, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, Key{}, fmt.Errorf("%s is not a regular file", path)
	}
	if (dev != 0 || ino != 0) && (uint64(st.Dev) != dev || st.Ino != ino) {
		return nil, Key{}, errOtherFile
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(pfd), os.O_RDONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, Key{}, fmt.Errorf("open %s: %w", path, err)
	}
	before, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, Key{}, err
	}
	if before.Dev != uint64(st.Dev) || before.Ino != st.Ino {
		f.Close()
		return nil, Key{}, errOtherFile
	}
	return f, before, nil
}

func fstat(f *os.File) (Key, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return Key{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return Key{}, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return keyOf(&st), nil
}

// statKey stats path (following links, as exec did) and gives its key.
func statKey(path string) (Key, bool) {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return Key{}, false
	}
	return keyOf(&st), true
}

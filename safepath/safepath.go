// Package safepath opens the agent's files and checks the directories
// that lead to them, so that a root daemon never trusts a path another
// user could have prepared: a directory someone else owns or can write to,
// or a symbolic link at the last component (the classic way to make root
// write through a link into /etc/shadow).
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// NoGroup is the allowGID that exempts no group.
const NoGroup = -1

// maxLinks bounds the symbolic links followed while checking a path.
const maxLinks = 40

// UntrustedError names the directory that failed the check and why.
type UntrustedError struct {
	Path   string
	Reason string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("%s %s; fix its owner or mode (chown root, chmod go-w) or choose another path", e.Path, e.Reason)
}

// CheckDir checks every directory on the way to dir, dir included, that
// exists (missing ones are left for the caller to create, and then
// checked again): each must be owned by root or by this process's
// effective uid, and writable by nobody else. The exceptions are a
// directory with the sticky bit (such as /tmp: others cannot replace what
// is in it, and the next component is checked on its own), and group write
// for allowGID (the configured --socket-group). A symbolic link on the way
// must be owned by root or this uid (it sits in a directory already
// checked); its target is checked the same way.
func CheckDir(dir string, allowGID int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	if err := checkOne("/", allowGID); err != nil {
		return err
	}
	resolved := "/"
	parts := split(abs)
	links := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		if name == "." {
			continue
		}
		if name == ".." {
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("check %s: %w", next, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return &UntrustedError{next, "leads through too many symbolic links"}
			}
			if !trustedOwner(fi) {
				return &UntrustedError{next, fmt.Sprintf("is a symbolic link owned by uid %d", owner(fi))}
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("check %s: %w", next, err)
			}
			if filepath.IsAbs(target) {
				resolved = "/"
			}
			parts = append(split(target), parts...)
			continue
		}
		if !fi.IsDir() {
			return &UntrustedError{next, "is not a directory"}
		}
		if err := checkOne(next, allowGID); err != nil {
			return err
		}
		resolved = next
	}
	return nil
}

// CheckParent checks the directories leading to the file at path.
func CheckParent(path string, allowGID int) error {
	return CheckDir(filepath.Dir(path), allowGID)
}

func checkOne(dir string, allowGID int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	if !trustedOwner(fi) {
		return &UntrustedError{dir, fmt.Sprintf("is owned by uid %d, not root", owner(fi))}
	}
	mode := fi.Mode()
	if mode&fs.ModeSticky != 0 {
		return nil
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case mode&0o002 != 0:
		return &UntrustedError{dir, fmt.Sprintf("is writable by others (mode %04o)", mode.Perm())}
	case mode&0o020 != 0 && (allowGID < 0 || st.Gid != uint32(allowGID)):
		return &UntrustedError{dir, fmt.Sprintf("is writable by group %d (mode %04o)", st.Gid, mode.Perm())}
	}
	return nil
}

func owner(fi fs.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Uid }

func trustedOwner(fi fs.FileInfo) bool {
	uid := owner(fi)
	return uid == 0 || uid == uint32(os.Geteuid())
}

func split(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// OpenFile opens path like os.OpenFile but never through a symbolic link
// at the last component (O_NOFOLLOW; the error then says so), and creates
// it with perm. It has os.OpenFile's signature, so it can serve as bbolt's
// Options.OpenFile.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("open %s: it is a symbolic link; refusing to follow it (remove it or choose another path)", path)
	}
	return f, err
}

// CreateOutput opens path for appending, creating it 0600, without
// following a symbolic link, after checking its directory. An existing
// file that is not a regular file, or is owned by someone else, is
// refused; an existing file readable by others is narrowed to 0600.
func CreateOutput(path string) (*os.File, error) {
	if err := CheckParent(path, NoGroup); err != nil {
		return nil, err
	}
	// O_NONBLOCK: a FIFO put there must not hang the agent at start.
	f, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	switch {
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	case !trustedOwner(fi):
		f.Close()
		return nil, &UntrustedError{path, fmt.Sprintf("is owned by uid %d", owner(fi))}
	case fi.Mode().Perm()&0o077 != 0:
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("restrict %s to 0600: %w", path, err)
		}
	}
	return f, nil
}

// CheckFile checks a file the agent trusts for its configuration (the
// rules, which decide what is detected): the directories leading to it as
// CheckDir does, and the file itself, which must be owned by root or this
// uid and writable by no one else. A symbolic link at the last component
// is followed only when root (or this uid) owns it, and its target is
// checked the same way.
func CheckFile(path string) error {
	for range maxLinks {
		abs, err := filepath.Abs(path)
		if err != nil {
			return fmt.Errorf("check %s: %w", path, err)
		}
		if err := CheckParent(abs, NoGroup); err != nil {
			return err
		}
		fi, err := os.Lstat(abs)
		if err != nil {
			return fmt.Errorf("check %s: %w", abs, err)
		}
		if !trustedOwner(fi) {
			return &UntrustedError{abs, fmt.Sprintf("is owned by uid %d, not root", owner(fi))}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if fi.Mode().Perm()&0o022 != 0 {
				return &UntrustedError{abs, fmt.Sprintf("is writable by group or others (mode %04o)", fi.Mode().Perm())}
			}
			return nil
		}
		target, err := os.Readlink(abs)
		if err != nil {
			return fmt.Errorf("check %s: %w", abs, err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(abs), target)
		}
		path = target
	}
	return &UntrustedError{path, "leads through too many symbolic links"}
}

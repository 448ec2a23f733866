package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockHolder finds the process holding a lock on the file at path, by
// looking the file's device and inode up in /proc/locks (bbolt uses flock).
// It returns 0 when the holder cannot be found, for example when
// /proc/locks is not readable or the holder lives in another pid namespace.
func lockHolder(path string) int {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	dev := uint64(st.Dev)
	return findLockHolder(f, unix.Major(dev), unix.Minor(dev), st.Ino)
}

// findLockHolder parses /proc/locks. A line reads, for example,
//
//	1: FLOCK  ADVISORY  WRITE 4242 fd:01:1835023 0 EOF
//
// and a waiter's line has "->" after the number; waiters are not holders.
// Some file systems (btrfs subvolumes, overlayfs) report another device
// there than stat does, so when no line matches device and inode, a single
// holder matching the inode alone is taken.
func findLockHolder(r io.Reader, major, minor uint32, ino uint64) int {
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, ino)
	inoSuffix := ":" + strconv.FormatUint(ino, 10)
	byInode := map[int]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" {
			continue
		}
		for i := 2; i < len(fields); i++ {
			exact := fields[i] == want
			if !exact && !(strings.Count(fields[i], ":") == 2 && strings.HasSuffix(fields[i], inoSuffix)) {
				continue
			}
			pid, err := strconv.Atoi(fields[i-1])
			if err != nil || pid <= 0 {
				continue
			}
			if exact {
				return pid
			}
			byInode[pid] = true
		}
	}
	if len(byInode) == 1 {
		for pid := range byInode {
			return pid
		}
	}
	return 0
}

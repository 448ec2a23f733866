package rules

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// HostMounts describes this host's own view of its files: the mount
// namespace of its init process and the device of its root filesystem.
// The engine compares each event's file identity with it to tell a path
// that names a file from one made up with a private mount namespace, a
// bind mount or a chroot. Zero fields are unknown; the checks that need
// them then fail safe (a skip does not apply).
type HostMounts struct {
	MntNS   uint64 // inode of /proc/1/ns/mnt
	RootDev uint64 // st_dev of pid 1's root directory
}

// DetectHostMounts reads HostMounts from pid 1, or from this process when
// pid 1 cannot be read (not root, or a sandbox that hides it): a daemon
// runs in the host's namespaces unless it was put elsewhere on purpose.
func DetectHostMounts() HostMounts {
	var h HostMounts
	for _, pid := range []string{"1", "self"} {
		ns, err := os.Readlink("/proc/" + pid + "/ns/mnt")
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/"+pid+"/root/", &st); err != nil {
			continue
		}
		h.MntNS = nsInode(ns)
		h.RootDev = uint64(st.Dev)
		return h
	}
	return h
}

// nsInode parses "mnt:[4026531841]".
func nsInode(link string) uint64 {
	i, j := strings.IndexByte(link, '['), strings.IndexByte(link, ']')
	if i < 0 || j <= i {
		return 0
	}
	v, _ := strconv.ParseUint(link[i+1:j], 10, 64)
	return v
}

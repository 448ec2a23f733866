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
	RootDev uint64 // device of pid 1's root mount, in stat(2)'s encoding
}

// DetectHostMounts reads HostMounts from pid 1, or from this process when
// pid 1 cannot be read (not root, or a sandbox that hides it): a daemon
// runs in the host's namespaces unless it was put elsewhere on purpose.
//
// The root device is the root mount's superblock device as mountinfo
// gives it, which is what the sensor reports for a binary (stat(2) on
// btrfs gives a subvolume's own number instead); stat(2) of the root is
// the fallback.
func DetectHostMounts() HostMounts {
	var h HostMounts
	for _, pid := range []string{"1", "self"} {
		ns, err := os.Readlink("/proc/" + pid + "/ns/mnt")
		if err != nil {
			continue
		}
		dev, ok := rootMountDev("/proc/" + pid + "/mountinfo")
		if !ok {
			var st syscall.Stat_t
			if err := syscall.Stat("/proc/"+pid+"/root/", &st); err != nil {
				continue
			}
			dev = uint64(st.Dev)
		}
		h.MntNS = nsInode(ns)
		h.RootDev = dev
		return h
	}
	return h
}

// rootMountDev returns the device ("major:minor", in stat's encoding) of
// the mount at "/" in a mountinfo file: the last one listed, which is on
// top when several are stacked there.
func rootMountDev(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	var dev uint64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != "/" {
			continue
		}
		majS, minS, ok := strings.Cut(f[2], ":")
		major, err1 := strconv.ParseUint(majS, 10, 32)
		minor, err2 := strconv.ParseUint(minS, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		dev = minor&0xff | (major&0xfff)<<8 | (minor&^0xff)<<12 | (major&^0xfff)<<32
		found = true
	}
	return dev, found
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

package rules

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRootMountDev(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mountinfo")
	info := "22 27 0:21 / /proc rw - proc proc rw\n" +
		"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		"30 27 8:17 / /home rw - ext4 /dev/sdb1 rw\n" +
		"31 27 0:300 / / rw - overlay overlay rw\n"
	if err := os.WriteFile(path, []byte(info), 0o600); err != nil {
		t.Fatal(err)
	}
	// The last mount at / is on top; 0:300 in stat's encoding.
	if dev, ok := rootMountDev(path); !ok || dev != 300&0xff|(300&^0xff)<<12 {
		t.Errorf("rootMountDev = %#x, %v", dev, ok)
	}
	if _, ok := rootMountDev(filepath.Join(t.TempDir(), "none")); ok {
		t.Error("a missing file gave a device")
	}
	if nsInode("mnt:[4026531841]") != 4026531841 || nsInode("garbage") != 0 {
		t.Error("nsInode")
	}
}

// TestDetectHostMounts: this process's view is readable, and the root
// device agrees with stat(2) of / on the test machine's filesystems
// (ext4 and the like; btrfs subvolumes would differ, by design).
func TestDetectHostMounts(t *testing.T) {
	h := DetectHostMounts()
	if h.MntNS == 0 || h.RootDev == 0 {
		t.Fatalf("DetectHostMounts = %+v", h)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	var fs syscall.Statfs_t
	btrfs := syscall.Statfs("/", &fs) == nil && fs.Type == 0x9123683e // stat gives the subvolume's device
	if self, _ := os.Readlink("/proc/self/ns/mnt"); !btrfs && nsInode(self) == h.MntNS && !sameDev(h.RootDev, uint64(st.Dev)) {
		t.Errorf("root device %#x, stat of / says %#x", h.RootDev, st.Dev)
	}
}

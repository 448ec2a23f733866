//go:build linux

package sensor

import (
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// tracefsDir is where tracefs lives on current systems, and where the
// sensor mounts it when nothing is mounted there.
const tracefsDir = "/sys/kernel/tracing"

// tracefsMounted reports whether tracefs is reachable where the BPF loader
// looks for it: /sys/kernel/tracing, or the tracing directory of debugfs
// on older systems.
func tracefsMounted() bool {
	for _, dir := range []string{tracefsDir, "/sys/kernel/debug/tracing"} {
		var fs unix.Statfs_t
		if unix.Statfs(dir, &fs) == nil && fs.Type == unix.TRACEFS_MAGIC {
			return true
		}
	}
	return false
}

// ensureTracefs mounts tracefs at /sys/kernel/tracing when it is not
// mounted and the sensor runs as root, the way Tetragon and Cilium mount
// the filesystems they need: the syscall tracepoints are found through it,
// and a fresh machine (or a container, or a private mount namespace) may
// not have it. It says so once, when it mounts. Without root it does
// nothing; attaching then fails with advice.
func ensureTracefs(log *slog.Logger) error {
	if tracefsMounted() || os.Geteuid() != 0 {
		return nil
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it at %s failed: %w; mount it with: mount -t tracefs tracefs %s", tracefsDir, err, tracefsDir)
	}
	log.Info("mounted tracefs at " + tracefsDir + ": it was not mounted, and the sensor's tracepoints are found through it")
	return nil
}

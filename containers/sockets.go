package containers

import (
	"fmt"
	"os"
	"syscall"
)

// DefaultSockets are the runtime API sockets probed when none is given:
// Docker's, under /run and /var/run, and rootful Podman's
// (`podman system service` serves it when started as root).
var DefaultSockets = []string{"/run/docker.sock", "/var/run/docker.sock", "/run/podman/podman.sock"}

// Probe returns a source for every socket in paths that exists, is a unix
// socket and, when requireRoot is set, belongs to root, skipping a path
// that leads to a socket already taken (/var/run is usually /run). The
// API answers with names the cgroup check then trusts, so a socket that
// any user could have created is not asked unless the operator names it.
// Paths that do not exist are skipped silently; the other refusals come
// back as one-line reasons, for the log.
func Probe(paths []string, requireRoot bool) ([]Source, []string) {
	var (
		out     []Source
		refused []string
		seen    = map[[2]uint64]bool{}
	)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			refused = append(refused, fmt.Sprintf("container API socket %s: %v", p, err))
			continue
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&os.ModeSocket == 0:
			refused = append(refused, fmt.Sprintf("container API socket %s: not a unix socket", p))
			continue
		case !ok:
			continue
		case requireRoot && st.Uid != 0:
			refused = append(refused, fmt.Sprintf("container API socket %s: owned by uid %d, not root; name it with --container-socket to use it anyway", p, st.Uid))
			continue
		}
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, NewDockerAPI(p))
	}
	return out, refused
}

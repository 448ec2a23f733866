package containers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// DefaultSockets are the runtime API sockets asked when none is given:
// Docker's, under /run and /var/run, rootful Podman's (`podman system
// service` serves it when started as root), then containerd's and CRI-O's
// CRI sockets.
var DefaultSockets = []string{
	"/run/docker.sock", "/var/run/docker.sock", "/run/podman/podman.sock",
	"/run/containerd/containerd.sock", "/run/crio/crio.sock",
}

// CRIPrefix marks a socket path as a CRI (gRPC) socket; sockets named
// containerd.sock or crio.sock are taken as CRI without it. Any other
// socket is taken to serve the Docker Engine API.
const CRIPrefix = "cri:"

// isCRI tells a CRI socket from a Docker Engine API one, and strips the
// prefix.
func isCRI(p string) (string, bool) {
	if rest, ok := strings.CutPrefix(p, CRIPrefix); ok {
		return rest, true
	}
	base := filepath.Base(p)
	return p, base == "containerd.sock" || base == "crio.sock"
}

// Sources returns a source for each socket path (CRI or Docker Engine API,
// see CRIPrefix), leaving
// out a path whose directory leads to one already listed (/var/run is
// usually /run). The sockets need not exist yet: a runtime started after
// procwatch is found on the next lookup, and a socket that is not there
// answers "not found". With requireRoot, a socket not owned by root is
// refused at every dial: its answers name containers, and a socket any user
// could have created must not be trusted unless the operator names it.
func Sources(paths []string, requireRoot bool) []Source {
	var out []Source
	seen := map[string]bool{}
	for _, p := range paths {
		p, cri := isCRI(p)
		key := p
		if dir, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			key = filepath.Join(dir, filepath.Base(p))
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		if cri {
			c := NewCRI(p)
			c.requireRoot = requireRoot
			out = append(out, c)
			continue
		}
		d := NewDockerAPI(p)
		d.requireRoot = requireRoot
		out = append(out, d)
	}
	return out
}

// errNoSocket is a runtime that is not running: it knows no container.
var errNoSocket = fmt.Errorf("%w: no API socket", ErrNotFound)

// checkSocket is done before every dial: the path must be a unix socket
// and, when required, owned by root.
func checkSocket(path string, requireRoot bool) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return errNoSocket
	}
	if err != nil {
		return fmt.Errorf("container API socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("container API socket %s: not a unix socket", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && requireRoot && st.Uid != 0 {
		return fmt.Errorf("container API socket %s: owned by uid %d, not root; name it with --container-socket to use it anyway", path, st.Uid)
	}
	return nil
}

package containers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultSockets are the runtime API sockets asked when none is given:
// Docker's, under /run and /var/run, and rootful Podman's
// (`podman system service` serves it when started as root).
var DefaultSockets = []string{"/run/docker.sock", "/var/run/docker.sock", "/run/podman/podman.sock"}

// Sources returns a Docker Engine API source for each socket path, leaving
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
		key := p
		if dir, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
			key = filepath.Join(dir, filepath.Base(p))
		}
		if seen[key] {
			continue
		}
		seen[key] = true
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

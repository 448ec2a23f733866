package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// DefaultSocket is where the agent listens unless --socket says otherwise.
const DefaultSocket = "/run/procwatch/procwatch.sock"

// AlreadyRunningError says that a live agent answers on the socket.
type AlreadyRunningError struct{ Path string }

// Error says where the live agent is and what to do about it.
func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("a procwatch agent is already running on %s; stop it first or choose another --socket", e.Path)
}

// Listen creates the agent's unix socket at path. The directory is created
// 0700 and the socket made 0600, so only root (the agent's user) may
// connect; with gid >= 0 the directory becomes 0750 and the socket 0660,
// both owned by that group, to let its members in. A socket file left by a
// dead agent is replaced; a live agent gives *AlreadyRunningError; any other
// file at path is left alone and reported.
func Listen(path string, gid int) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	dirMode, sockMode := os.FileMode(0o700), os.FileMode(0o600)
	if gid >= 0 {
		dirMode, sockMode = 0o750, 0o660
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	if gid >= 0 {
		if err := os.Chown(dir, -1, gid); err != nil {
			return nil, fmt.Errorf("give group %d the socket directory %s: %w", gid, dir, err)
		}
		if err := os.Chmod(dir, dirMode); err != nil {
			return nil, fmt.Errorf("chmod socket directory %s: %w", dir, err)
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, sockMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("give group %d the socket %s: %w", gid, path, err)
		}
	}
	return ln, nil
}

// removeStale deletes a socket file that no process listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket path %s exists and is not a socket; remove it or choose another --socket", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return &AlreadyRunningError{Path: path}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// ServeListener accepts connections on ln and serves each with s until ctx
// ends; it then closes ln and every connection and waits for them.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on agent socket: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Serve(ctx, conn); err != nil {
				log.Debug("agent connection ended", "err", err)
			}
		}()
	}
}

package protocol

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

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/safepath"
)

// DefaultSocket is where the agent listens unless --socket says otherwise.
const DefaultSocket = "/run/procwatch/procwatch.sock"

// AlreadyRunningError says that a live agent answers on the socket.
type AlreadyRunningError struct{ Path string }

// Error says where the live agent is and what to do about it.
func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("a procwatch agent is already running on %s; stop it first or choose another --socket", e.Path)
}

// Listen creates the agent's unix socket at path for the callers a
// allows. With no groups the directory is created 0700 and the socket made
// 0600, so only root (the agent's user) may connect; with a.FullGID alone
// the directory becomes 0750 and the socket 0660, both owned by that group,
// to let its members in. With a.ReadGID the directory is 0711 and the
// socket 0666: anyone may connect, and the server decides from the
// kernel's credentials of each caller (root and --socket-group: full
// control, --socket-read-group: read only, anyone else: refused at once).
//
// Every directory on the way must be owned by root and writable by no one
// else (safepath.CheckDir; group write is allowed for a.FullGID). A socket
// file left by a dead agent is replaced; a live agent gives
// *AlreadyRunningError; any other file at path is left alone and reported.
func Listen(path string, a Access) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	dirMode, sockMode, gid := os.FileMode(0o700), os.FileMode(0o600), -1
	switch {
	case a.ReadGID >= 0:
		dirMode, sockMode = 0o711, 0o666
	case a.FullGID >= 0:
		dirMode, sockMode, gid = 0o750, 0o660, a.FullGID
	}
	if err := safepath.CheckDir(dir, a.FullGID); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	if err := safepath.CheckDir(dir, a.FullGID); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(dir, -1, gid); err != nil {
			return nil, fmt.Errorf("give group %d the socket directory %s: %w", gid, dir, err)
		}
	}
	if a.FullGID >= 0 || a.ReadGID >= 0 {
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
// ends; it then closes ln and every connection and waits for them. An
// accept error (EMFILE when the agent is out of file descriptors, say) is
// logged and retried with a growing pause instead of ending the API. On a
// unix socket each caller is identified by the kernel's credentials and
// checked against s.Access. Callers other than root and the agent's own
// uid share MaxConnections and may hold at most MaxConnectionsPerUID each;
// one more is told the agent is busy and closed. Root is never counted, so
// other users filling the slots cannot lock the administrator out.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	lim := newConnLimits(s.MaxConnections, s.MaxConnectionsPerUID)
	var backoff time.Duration
	var lastBusyLog time.Time
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept on agent socket: %w", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("agent socket: accept failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		peer, known, err := peerOfConn(conn)
		if err != nil {
			log.Warn("agent socket: refusing a connection without credentials", "err", err)
			conn.Close()
			continue
		}
		privileged := !known || peer.UID == 0 || peer.UID == uint32(os.Geteuid())
		if !privileged {
			if why := lim.take(peer.UID); why != "" {
				if now := time.Now(); now.Sub(lastBusyLog) > 10*time.Second {
					lastBusyLog = now
					log.Warn("agent socket: connection limit reached; refusing new connections", "uid", peer.UID, "limit", why)
				}
				go s.refuse(conn, CodeBusy, "the agent refuses more connections: "+why+"; try again later")
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !privileged {
				defer lim.release(peer.UID)
			}
			s.serveSocket(ctx, conn, peer, known, log)
		}()
	}
}

// peerOfConn returns the kernel's credentials of a unix socket's peer;
// known is false for other connections.
func peerOfConn(conn net.Conn) (Peer, bool, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Peer{}, false, nil
	}
	p, err := PeerOf(uc)
	return p, err == nil, err
}

// connLimits counts the connections of unprivileged callers.
type connLimits struct {
	mu           sync.Mutex
	total, max   int
	perUID       map[uint32]int
	maxPerUID    int
	totalMessage string
	uidMessage   string
}

func newConnLimits(total, perUID int) *connLimits {
	if total <= 0 {
		total = DefaultMaxConnections
	}
	if perUID <= 0 {
		perUID = DefaultMaxConnectionsPerUID
	}
	return &connLimits{
		max: total, maxPerUID: perUID, perUID: map[uint32]int{},
		totalMessage: fmt.Sprintf("it already serves %d connections (--max-connections)", total),
		uidMessage:   fmt.Sprintf("this uid already holds %d connections (--max-connections-per-uid)", perUID),
	}
}

// take reserves a connection for uid, or says which limit refuses it.
func (l *connLimits) take(uid uint32) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total >= l.max:
		return l.totalMessage
	case l.perUID[uid] >= l.maxPerUID:
		return l.uidMessage
	}
	l.total++
	l.perUID[uid]++
	return ""
}

func (l *connLimits) release(uid uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perUID[uid]--; l.perUID[uid] <= 0 {
		delete(l.perUID, uid)
	}
}

// serveSocket serves one accepted connection as the caller the kernel
// names, or refuses it.
func (s *Server) serveSocket(ctx context.Context, conn net.Conn, p Peer, known bool, log *slog.Logger) {
	actor, role := api.Self("socket"), RoleFull
	if known {
		if role = s.access().RoleOf(p); role == RoleNone {
			log.Warn("agent socket: refusing a caller outside the socket groups", "uid", p.UID, "pid", p.PID)
			s.refuse(conn, CodeForbidden, fmt.Sprintf("uid %d is not allowed to use this agent (root, --socket-group and --socket-read-group are)", p.UID))
			return
		}
		offStack(func() error { actor = p.Actor(); return nil }) // a user lookup: deep
	}
	if err := s.serve(ctx, conn, actor, role); err != nil {
		log.Debug("agent connection ended", "err", err)
	}
}

// access is s.Access, with the zero value meaning no groups.
func (s *Server) access() Access {
	if s.Access == (Access{}) {
		return NoGroups
	}
	return s.Access
}

// refuse tells a caller why it is turned away, in a frame its client can
// show, and closes the connection. It waits for nothing from the caller.
func (s *Server) refuse(conn net.Conn, code, msg string) {
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	frames, err := encode(message{Type: typeError, Error: &Error{Code: code, Message: msg}}, MaxFrame)
	if err == nil {
		b := net.Buffers(frames)
		b.WriteTo(conn)
	}
}

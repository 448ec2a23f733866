package protocol

import (
	"bytes"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Peer is the other end of a socket connection as the kernel reports it
// (SO_PEERCRED and SO_PEERGROUPS): the credentials the client had when it
// connected. Nothing in it comes from what the client sends.
type Peer struct {
	UID, GID, PID uint32
	Groups        []uint32 // supplementary groups
}

// Role is what a caller may do.
type Role int

// Roles, from none to everything.
const (
	RoleNone Role = iota
	RoleRead      // query and subscribe
	RoleFull      // also change: statuses, skips, monitoring
)

// Access says who may use the socket. Root and the agent's own uid always
// have full control; members of FullGID (primary or supplementary group)
// too; members of ReadGID may query and subscribe only. A negative gid
// names no group.
type Access struct {
	FullGID int
	ReadGID int
}

// NoGroups is the Access of a socket only root may use.
var NoGroups = Access{FullGID: -1, ReadGID: -1}

// RoleOf decides what p may do.
func (a Access) RoleOf(p Peer) Role {
	if p.UID == 0 || p.UID == uint32(os.Geteuid()) {
		return RoleFull
	}
	in := func(gid int) bool {
		return gid >= 0 && (p.GID == uint32(gid) || slices.Contains(p.Groups, uint32(gid)))
	}
	switch {
	case in(a.FullGID):
		return RoleFull
	case in(a.ReadGID):
		return RoleRead
	}
	return RoleNone
}

// Actor turns p into the rules.Actor recorded with the changes it makes.
// When the peer runs in an SSH session (its environment, read from /proc
// while it is connected, has SSH_CONNECTION: `serve --stdio` relaying for
// a remote front end), the SSH login and client address are added; they
// describe the session and are informative, the uid is authoritative.
func (p Peer) Actor() rules.Actor {
	a := rules.Actor{UID: p.UID, PID: p.PID, User: api.UserName(p.UID), Via: "socket"}
	if p.PID != 0 {
		env, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(p.PID), 10) + "/environ")
		if err == nil {
			a.SSHUser, a.SSHFrom = sshSession(func(k string) string { return envValue(env, k) })
		}
	}
	return a
}

// SSHActor is who a `serve --stdio` process answers for: its own uid and
// pid, with the SSH login and client address when sshd started it.
func SSHActor() rules.Actor {
	a := api.Self("stdio")
	a.SSHUser, a.SSHFrom = sshSession(os.Getenv)
	return a
}

// sshSession reads the variables sshd sets for a session: SSH_CONNECTION
// ("client-ip client-port server-ip server-port") and USER.
func sshSession(getenv func(string) string) (user, from string) {
	conn := strings.Fields(getenv("SSH_CONNECTION"))
	if len(conn) < 2 {
		return "", ""
	}
	user = getenv("USER")
	if user == "" {
		user = getenv("LOGNAME")
	}
	return user, net.JoinHostPort(conn[0], conn[1])
}

func envValue(env []byte, key string) string {
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		if k, v, ok := bytes.Cut(kv, []byte{'='}); ok && string(k) == key {
			return string(v)
		}
	}
	return ""
}

var errNotPermitted = errors.New("not permitted")

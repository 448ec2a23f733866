//go:build !linux

package protocol

import (
	"errors"
	"net"
)

// PeerOf needs the kernel's SO_PEERCRED, which only Linux has; the agent
// (the only caller) runs where the sensor does. Front ends on other
// systems reach agents as clients and never ask.
func PeerOf(conn *net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("peer credentials need Linux")
}

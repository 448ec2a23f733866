package protocol

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestSSHSession(t *testing.T) {
	tests := []struct {
		env        map[string]string
		user, from string
	}{
		{map[string]string{"SSH_CONNECTION": "203.0.113.7 52144 10.0.0.1 22", "USER": "alice"}, "alice", "203.0.113.7:52144"},
		{map[string]string{"SSH_CONNECTION": "2001:db8::7 40000 2001:db8::1 22", "LOGNAME": "bob"}, "bob", "[2001:db8::7]:40000"},
		{map[string]string{"USER": "carol"}, "", ""}, // not an SSH session
		{map[string]string{"SSH_CONNECTION": "garbage"}, "", ""},
	}
	for _, tt := range tests {
		user, from := sshSession(func(k string) string { return tt.env[k] })
		if user != tt.user || from != tt.from {
			t.Errorf("%v: %q %q, want %q %q", tt.env, user, from, tt.user, tt.from)
		}
	}
}

// TestSSHActorIsTheProcess: `serve --stdio` answers for its own uid and
// pid, with the session sshd described.
func TestSSHActorIsTheProcess(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "198.51.100.2 6000 10.0.0.1 22")
	t.Setenv("USER", "dave")
	a := SSHActor()
	if a.UID != uint32(os.Getuid()) || a.PID != uint32(os.Getpid()) || a.Via != "stdio" || a.SSHUser != "dave" || a.SSHFrom != "198.51.100.2:6000" {
		t.Errorf("SSHActor = %+v", a)
	}
}

// TestPeerOfIsTheKernelsWord: the credentials of a real socket peer are
// this process's, whatever it might claim.
func TestPeerOfIsTheKernelsWord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("unix", path)
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	conn, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p, err := PeerOf(conn)
	if err != nil {
		t.Fatal(err)
	}
	if p.UID != uint32(os.Getuid()) || p.GID != uint32(os.Getgid()) || p.PID != uint32(os.Getpid()) {
		t.Errorf("PeerOf = %+v, want this process", p)
	}
	if a := p.Actor(); a.Via != "socket" || a.UID != p.UID || a.PID != p.PID {
		t.Errorf("Actor = %+v", a)
	}
}

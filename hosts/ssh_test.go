package hosts

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// syncBuffer is a bytes.Buffer safe to write from a process and read from
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSSHTransport reaches a procwatch on this machine through a real
// sshd on 127.0.0.1 with throwaway host and user keys: the transport
// command is `ssh ... root@127.0.0.1 procwatch ... serve --stdio`, and
// Status, Skips, AddSkip and Incidents go over it. A second host with a
// key sshd does not accept is unreachable with ssh's own reason.
//
// It needs root (sshd, root login) and OpenSSH; it skips without them
// unless PROCWATCH_REQUIRE_BPF=1 (set by CI), which makes it fail instead.
func TestSSHTransport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd: not in -short mode")
	}
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
			t.Fatalf("PROCWATCH_REQUIRE_BPF=1 but "+format, args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		skip("not root")
	}
	tools := map[string]string{}
	for _, name := range []string{"/usr/sbin/sshd", "ssh", "ssh-keygen"} {
		p, err := exec.LookPath(name)
		if err != nil {
			skip("%s not found (install openssh-server and openssh-client)", name)
		}
		tools[filepath.Base(name)] = p
	}

	dir := t.TempDir()
	keygen := func(name string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command(tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-C", "procwatch-test", "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		return p
	}
	hostKey, userKey, strangerKey := keygen("host_key"), keygen("user_key"), keygen("stranger_key")
	pub, err := os.ReadFile(userKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PidFile %s
LogLevel VERBOSE
`, hostKey, authorized, filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatal(err)
	}
	port := freePort(t)
	var sshdLog syncBuffer
	sshd := exec.Command(tools["sshd"], "-D", "-e", "-f", config, "-p", fmt.Sprint(port))
	sshd.Stdout, sshd.Stderr = &sshdLog, &sshdLog
	if err := sshd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	sshdDone := make(chan struct{})
	go func() { sshd.Wait(); close(sshdDone) }()
	t.Cleanup(func() {
		sshd.Process.Signal(syscall.SIGTERM)
		select {
		case <-sshdDone:
		case <-time.After(5 * time.Second):
			sshd.Process.Kill()
			<-sshdDone
		}
	})
	waitListening(t, port, sshdDone, &sshdLog)

	bin := filepath.Join(dir, "procwatch")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/procwatch/procwatch").CombinedOutput(); err != nil {
		t.Fatalf("build procwatch: %v\n%s", err, out)
	}
	sshCmd := func(key string) string {
		return fmt.Sprintf("%s -i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR root@127.0.0.1 "+
			"%s --db %s --socket %s serve --stdio",
			tools["ssh"], key, port, bin, filepath.Join(dir, "remote.db"), filepath.Join(dir, "remote.sock"))
	}

	h := FromSpec(Spec{Name: "over-ssh", Command: sshCmd(userKey)}, Options{MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second})
	h.Start(t.Context())
	defer h.Close()
	waitStateOr(t, h, Connected, &sshdLog)

	st, err := h.Status(t.Context())
	if err != nil {
		t.Fatalf("Status over ssh: %v", err)
	}
	if want, _ := os.Hostname(); st.Host != want || st.Time.IsZero() {
		t.Errorf("Status over ssh = %+v, want host %q", st, want)
	}
	added, _, err := h.AddSkip(t.Context(), rules.Skip{Kind: rules.SkipCommand, Value: "ssh-test-cmd", Note: "over ssh"})
	if err != nil || added.ID == "" {
		t.Fatalf("AddSkip over ssh = %+v, %v", added, err)
	}
	skips, err := h.Skips(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range skips {
		found = found || s.ID == added.ID && s.Value == "ssh-test-cmd" && s.Source == rules.SourceAdded
	}
	if !found {
		t.Errorf("Skips over ssh lacks the added skip: %+v", skips)
	}
	if _, err := h.Incidents(t.Context(), api.Query{Limit: 10}); err != nil {
		t.Errorf("Incidents over ssh: %v", err)
	}
	if !strings.Contains(sshdLog.String(), "Accepted publickey for root") {
		t.Errorf("sshd did not log the key login:\n%s", sshdLog.String())
	}

	// A key sshd does not know: unreachable, and ssh says why.
	bad := FromSpec(Spec{Name: "bad-key", Command: sshCmd(strangerKey)}, Options{MinBackoff: time.Minute})
	bad.Start(t.Context())
	defer bad.Close()
	c := waitStateOr(t, bad, Unreachable, &sshdLog)
	if !strings.Contains(c.Reason, "Permission denied") || !strings.Contains(c.Reason, "exit status 255") {
		t.Errorf("bad key: reason %q, want ssh's permission denied and exit status 255", c.Reason)
	}
}

func waitStateOr(t *testing.T, h *Host, st State, log *syncBuffer) Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c := h.Conn()
		if c.State == st {
			return c
		}
		select {
		case <-h.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("host %s never %s; last %+v\nsshd log:\n%s", h.Name(), st, h.Conn(), log.String())
	return Conn{}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, port int, exited <-chan struct{}, log *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("sshd does not listen on port %d:\n%s", port, log.String())
}

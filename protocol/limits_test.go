package protocol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
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

// eventually polls cond for up to 20 s: the machine may be slow, and what
// is asserted is that it happens, not how fast.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAcceptSurvivesFdExhaustion runs a server in a child process whose
// file descriptor limit leaves room for only a few connections, opens many
// more, and checks that the server logs the accept errors, keeps going,
// and answers once the connections are gone.
func TestAcceptSurvivesFdExhaustion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	child := exec.Command(os.Args[0], "-test.run=^TestHelperLowFdServer$")
	child.Env = append(os.Environ(), "PROCWATCH_HELPER_SOCKET="+path)
	var stderr syncBuffer
	child.Stderr = &stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		child.Process.Kill()
		child.Wait()
	})
	eventually(t, "the child listens", func() bool { return strings.Contains(stderr.String(), "listening") })

	var conns []net.Conn
	for range 40 {
		c, err := net.Dial("unix", path)
		if err != nil {
			break // the backlog is full: enough
		}
		conns = append(conns, c)
	}
	eventually(t, "the server logs an accept error:\n"+stderr.String(), func() bool {
		return strings.Contains(stderr.String(), "accept failed; retrying")
	})
	if !strings.Contains(stderr.String(), "too many open files") {
		t.Errorf("the log does not name EMFILE:\n%s", stderr.String())
	}
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "the server answers again", func() bool {
		c, err := Dial(path)
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.Status(context.Background())
		return err == nil
	})
}

// TestHelperLowFdServer is the child of TestAcceptSurvivesFdExhaustion; it
// does nothing in a normal run.
func TestHelperLowFdServer(t *testing.T) {
	path := os.Getenv("PROCWATCH_HELPER_SOCKET")
	if path == "" {
		return
	}
	ln, err := Listen(path, NoGroups)
	if err != nil {
		t.Fatal(err)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	lim := syscall.Rlimit{Cur: uint64(len(fds) + 4), Max: uint64(len(fds) + 4)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // ends when the parent closes stdin
		os.Stdin.Read(make([]byte, 1))
		cancel()
	}()
	log.Info("listening", "fd_limit", lim.Cur)
	srv := &Server{Service: newRecordingService(), Logger: log, HelloTimeout: time.Minute}
	if err := srv.ServeListener(ctx, ln); err != nil {
		t.Fatal(err)
	}
}

// runAs starts a copy of the test binary as uid:gid running helper, with
// env, and returns its stdout lines as they come; the helper ends when the
// test does.
func runAs(t *testing.T, uid, gid uint32, helper string, env ...string) <-chan string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent-test-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self := filepath.Join(dir, "agent.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^"+helper+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the helper ended early")
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("the helper said nothing")
	}
	return ""
}

// TestConnectionLimits: unprivileged callers share --max-connections and
// each uid gets at most --max-connections-per-uid; one more is told the
// agent is busy. Root is never counted, so it still gets in.
func TestConnectionLimits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as other uids")
	}
	base := t.TempDir()
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	path := filepath.Join(base, "run", "agent.sock")
	ln, err := Listen(path, Access{FullGID: -1, ReadGID: nobody})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Service: newRecordingService(), MaxConnections: 3, MaxConnectionsPerUID: 2, Access: Access{FullGID: -1, ReadGID: nobody}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	a := runAs(t, nobody, nobody, "TestHelperHoldConnections", "PROCWATCH_HELPER_SOCKET="+path, "PROCWATCH_HELPER_N=3")
	for i, want := range []string{"ok", "ok", "busy: the agent refuses more connections: this uid already holds 2"} {
		if got := nextLine(t, a); !strings.HasPrefix(got, want) {
			t.Errorf("uid 65534, connection %d: %q, want %q", i+1, got, want)
		}
	}
	b := runAs(t, nobody-1, nobody, "TestHelperHoldConnections", "PROCWATCH_HELPER_SOCKET="+path, "PROCWATCH_HELPER_N=2")
	for i, want := range []string{"ok", "busy: the agent refuses more connections: it already serves 3"} {
		if got := nextLine(t, b); !strings.HasPrefix(got, want) {
			t.Errorf("uid 65533, connection %d: %q, want %q", i+1, got, want)
		}
	}
	for range 5 {
		c := dial(t, path)
		if _, err := c.Status(context.Background()); err != nil {
			t.Errorf("root refused while others fill the slots: %v", err)
		}
	}
}

// TestHelperHoldConnections opens PROCWATCH_HELPER_N connections, prints
// "ok" or the error for each, and holds them until stdin closes. It does
// nothing in a normal run.
func TestHelperHoldConnections(t *testing.T) {
	path := os.Getenv("PROCWATCH_HELPER_SOCKET")
	if path == "" || os.Getenv("PROCWATCH_HELPER_N") == "" {
		return
	}
	var n int
	fmt.Sscan(os.Getenv("PROCWATCH_HELPER_N"), &n)
	for range n {
		c, err := Dial(path)
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				fmt.Printf("%s: %s\n", pe.Code, pe.Message)
			} else {
				fmt.Println(err)
			}
			continue
		}
		defer c.Close()
		fmt.Println("ok")
	}
	os.Stdin.Read(make([]byte, 1))
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	svc := newRecordingService()
	path := startServer(t, &Server{Service: svc, IdleTimeout: 300 * time.Millisecond})
	idle := dial(t, path)
	busy := dial(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := busy.Subscribe(ctx, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-idle.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("an idle connection stayed open")
	}
	if err := idle.Err(); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Errorf("idle connection ended with %v, want the idle reason", err)
	}
	time.Sleep(time.Second) // several idle timeouts
	if _, err := busy.Status(context.Background()); err != nil {
		t.Errorf("a connection with a subscription running was closed: %v", err)
	}
}

// TestSubscriptionFloodIsBounded: an agent that pushes updates faster
// than the caller takes them costs the client at most MaxPendingBytes;
// the rest is counted as dropped, and the caller learns how much.
func TestSubscriptionFloodIsBounded(t *testing.T) {
	old := MaxPendingBytes
	MaxPendingBytes = 1 << 20
	defer func() { MaxPendingBytes = old }()
	a, b := net.Pipe()
	defer b.Close()
	const floods = 2000
	go func() {
		fmt.Fprintf(b, `{"type":"hello","version":%d,"software":"procwatch","role":"server"}`+"\n", Version)
		br := bufio.NewReader(b)
		br.ReadBytes('\n') // hello
		br.ReadBytes('\n') // subscribe, id 1
		fmt.Fprintln(b, `{"type":"response","id":1,"result":{}}`)
		big := strings.Repeat("y", 60<<10)
		for i := range floods {
			// Distinct incidents, so the mailbox cannot merge them.
			if _, err := fmt.Fprintf(b, `{"type":"update","id":1,"update":{"incidents":[{"id":"%016x","summary":"%s"}]}}`+"\n", i+1, big); err != nil {
				return
			}
		}
		fmt.Fprintln(b, `{"type":"end","id":1}`)
	}()
	c, err := NewClient(a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	ch, err := c.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Take nothing until the flood (about 120 MB) has been read.
	time.Sleep(100 * time.Millisecond)
	eventually(t, "the flood is read", func() bool {
		runtime.ReadMemStats(&ms)
		c.mu.Lock()
		defer c.mu.Unlock()
		_, open := c.calls[1]
		return !open
	})
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapInuse) - int64(base); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB while the caller took nothing", grew>>20)
	}
	var kept, dropped uint64
	var newest rules.ID
	for u := range ch {
		kept += uint64(len(u.Incidents))
		dropped += u.Dropped
		for _, in := range u.Incidents {
			newest = max(newest, in.ID)
		}
	}
	if kept+dropped != floods || dropped == 0 {
		t.Errorf("kept %d and dropped %d of %d updates", kept, dropped, floods)
	}
	// Drop-oldest: the last update the agent sent is among those kept.
	if newest != floods {
		t.Errorf("newest incident kept is %v, want the last one sent (%d)", newest, floods)
	}
}

// TestIncidentsCapPerRequest: an answer stops at the server's cap and says
// so; the client returns what came with ErrTruncated.
const nobody = 65534

func TestIncidentsCapPerRequest(t *testing.T) {
	svc := newRecordingService()
	for i := range 5 {
		svc.incidents = append(svc.incidents, sampleIncident(i, 10))
	}
	c := dial(t, startServer(t, &Server{Service: svc, MaxIncidents: 3}))
	for _, limit := range []int{0, 4} {
		got, err := c.Incidents(context.Background(), api.Query{Limit: limit})
		if len(got) != 3 || !errors.Is(err, ErrTruncated) {
			t.Errorf("limit %d: %d incidents, %v; want 3 and ErrTruncated", limit, len(got), err)
		}
	}
	if got, err := c.Incidents(context.Background(), api.Query{Limit: 2}); len(got) != 2 || err != nil {
		t.Errorf("limit 2 under the cap: %d incidents, %v", len(got), err)
	}
}

// gateWriter blocks every Write until the test opens the gate.
type gateWriter struct {
	gate chan struct{}
	n    atomic.Int64
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.gate
	g.n.Add(int64(len(p)))
	return len(p), nil
}

// TestSlowExportWriterHoldsUpNothing: the export's output is written off
// the connection's reader, under a window of acknowledged chunks, so a
// stalled output neither stops other calls on the connection nor makes
// the client buffer the export; the bytes arrive raw and complete.
func TestSlowExportWriterHoldsUpNothing(t *testing.T) {
	svc := newRecordingService()
	svc.export = bytes.Repeat([]byte(`{"id":"0000000000000001","rule":"r"}`+"\n"), 200_000) // about 7 MB
	c := dial(t, startServer(t, &Server{Service: svc}))
	w := &gateWriter{gate: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := c.Export(context.Background(), api.Query{}, "ndjson", w)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the export is under way, its output stalled
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status while an export's output is stalled: %v", err)
	}
	close(w.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w.n.Load() != int64(len(svc.export)) {
		t.Errorf("wrote %d bytes, want %d", w.n.Load(), len(svc.export))
	}
}

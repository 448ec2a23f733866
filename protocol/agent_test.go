package protocol

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// startServer listens on a socket in a temp dir and serves svc there.
func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := Listen(path, NoGroups)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return path
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTripEveryMethod(t *testing.T) {
	svc := newRecordingService()
	for i := range 5 {
		svc.incidents = append(svc.incidents, sampleIncident(i, 10))
	}
	c := dial(t, startServer(t, &Server{Service: svc}))
	ctx := context.Background()

	q := api.Query{MinSeverity: rules.SeverityMedium, Type: "bin-execution", Rule: "r1", Status: rules.StatusOpen,
		Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Grep: "x€y", Limit: 9}
	got, err := c.Incidents(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, svc.incidents) {
		t.Errorf("incidents differ:\n got %+v\nwant %+v", got, svc.incidents)
	}
	if a := svc.arg("incidents"); !reflect.DeepEqual(a, q) {
		t.Errorf("query arrived as %+v, want %+v", a, q)
	}

	since := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	n, err := c.Noise(ctx, since, 12)
	if err != nil || len(n.Commands) != 1 || n.Commands[0].Count != 7 || n.Paths[0].Value != "/usr/sbin/cron" {
		t.Errorf("noise = %+v, %v", n, err)
	}
	if a := svc.arg("noise").([]any); !a[0].(time.Time).Equal(since) || a[1] != 12 {
		t.Errorf("noise args = %v", a)
	}

	ids := []rules.ID{1, 0xffffffffffffffff}
	if err := c.SetStatus(ctx, ids, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	if a := svc.arg("set_status").([]any); !reflect.DeepEqual(a[0], ids) || a[1] != rules.StatusAcknowledged {
		t.Errorf("set_status args = %v", a)
	}

	skips, err := c.Skips(ctx)
	want, _ := svc.Skips(ctx)
	if err != nil || !reflect.DeepEqual(skips, want) {
		t.Errorf("skips = %+v, %v; want %+v", skips, err, want)
	}

	sk := rules.Skip{Kind: rules.SkipUser, Value: "backup", Rule: "r1", Note: "nightly job", AddedBy: "alice"}
	if cnt, err := c.PreviewSkip(ctx, sk); err != nil || cnt != 3 {
		t.Errorf("preview = %d, %v", cnt, err)
	}
	added, masked, err := c.AddSkip(ctx, sk)
	if err != nil || masked != 4 || added.ID != "new-skip" || added.Note != "nightly job" {
		t.Errorf("add = %+v, %d, %v", added, masked, err)
	}
	if a := svc.arg("add_skip"); !reflect.DeepEqual(a, sk) {
		t.Errorf("add_skip arg = %+v", a)
	}
	if cnt, err := c.RemoveSkip(ctx, "s1"); err != nil || cnt != 5 || svc.arg("remove_skip") != "s1" {
		t.Errorf("remove = %d, %v", cnt, err)
	}

	rs, err := c.Rules(ctx)
	if err != nil || len(rs) != 1 || rs[0].Name != "r1" || rs[0].Severity.Success != rules.SeverityHigh {
		t.Errorf("rules = %+v, %v", rs, err)
	}
	for _, on := range []bool{false, true} {
		if err := c.SetMonitoring(ctx, on); err != nil || svc.arg("set_monitoring") != on {
			t.Errorf("set monitoring %v: %v (arg %v)", on, err, svc.arg("set_monitoring"))
		}
	}
	st, err := c.Status(ctx)
	wantSt, _ := svc.Status(ctx)
	if err != nil || !reflect.DeepEqual(st, wantSt) {
		t.Errorf("status = %+v, %v; want %+v", st, err, wantSt)
	}
}

func TestServiceErrorsComeBackAsErrors(t *testing.T) {
	svc := newRecordingService()
	svc.failWith = errors.New("open store /x: disk on fire")
	c := dial(t, startServer(t, &Server{Service: svc}))
	_, err := c.Status(context.Background())
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeFailed || err.Error() != "open store /x: disk on fire" {
		t.Fatalf("error = %#v", err)
	}
	if _, err := c.Subscribe(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("subscribe error = %v", err)
	}
	// The connection is still usable after errors.
	svc.mu.Lock()
	svc.failWith = nil
	svc.mu.Unlock()
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLargeIncidentListIsSplitIntoFrames(t *testing.T) {
	svc := newRecordingService()
	for i := range 300 {
		svc.incidents = append(svc.incidents, sampleIncident(i, 8<<10)) // ~2.4 MiB in all
	}
	c := dial(t, startServer(t, &Server{Service: svc}))
	got, err := c.Incidents(context.Background(), api.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, svc.incidents) {
		t.Fatalf("got %d incidents, want %d identical ones", len(got), len(svc.incidents))
	}
}

func TestExportStreamsChunksAndProgress(t *testing.T) {
	svc := newRecordingService()
	var b bytes.Buffer
	for i := range 40000 {
		b.WriteString(`{"n":`)
		b.WriteString(strings.Repeat("7", i%50+1))
		b.WriteString("}\n")
	}
	svc.export = b.Bytes()
	c := dial(t, startServer(t, &Server{Service: svc}))
	var mu sync.Mutex
	var last [2]int
	ctx := api.WithExportProgress(context.Background(), func(done, total int) {
		mu.Lock()
		last = [2]int{done, total}
		mu.Unlock()
	})
	var out bytes.Buffer
	q := api.Query{Rule: "r9"}
	n, err := c.Export(ctx, q, "ndjson", &out)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 || !bytes.Equal(out.Bytes(), svc.export) {
		t.Fatalf("export: n=%d, %d bytes, want 10 and %d identical bytes", n, out.Len(), len(svc.export))
	}
	if mu.Lock(); last != [2]int{10, 10} {
		t.Errorf("last progress = %v, want [10 10]", last)
	}
	mu.Unlock()
	if a := svc.arg("export").([]any); !reflect.DeepEqual(a[0], q) || a[1] != "ndjson" {
		t.Errorf("export args = %v", a)
	}
	if _, err := c.Export(context.Background(), q, "xml", &out); err == nil {
		t.Error("export with a bad format did not fail")
	}
}

func TestSubscribeStreamsAndCancels(t *testing.T) {
	svc := newRecordingService()
	c := dial(t, startServer(t, &Server{Service: svc}))
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := c.Subscribe(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	if svc.arg("subscribe") != rules.ID(42) {
		t.Errorf("after = %v", svc.arg("subscribe"))
	}
	inc := sampleIncident(1, 10)
	svc.updates <- api.Update{Incidents: []rules.Incident{inc}, Dropped: 3}
	select {
	case u := <-ch:
		if len(u.Incidents) != 1 || !reflect.DeepEqual(u.Incidents[0], inc) || u.Dropped != 3 {
			t.Errorf("update = %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no update")
	}
	cancel()
	select {
	case <-svc.subEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the client's context did not end the subscription on the server")
	}
	for range ch {
	}
}

func TestSubscriptionEndClosesClientChannel(t *testing.T) {
	svc := newRecordingService()
	c := dial(t, startServer(t, &Server{Service: svc}))
	ch, err := c.Subscribe(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	close(svc.updates)
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("got an update, want the channel closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the server ended the subscription")
	}
}

// rawConn does the client's half of the hello by hand.
func rawConn(t *testing.T, path string, version int) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	hello := readMsg(t, br)
	if hello.Type != typeHello || hello.Version != Version {
		t.Fatalf("server hello = %+v", hello)
	}
	b, _ := json.Marshal(message{Type: typeHello, Version: version, Software: "test"})
	conn.Write(append(b, '\n'))
	return conn, br
}

func readMsg(t *testing.T, br *bufio.Reader) message {
	t.Helper()
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("frame %q: %v", line, err)
	}
	return m
}

func TestVersionMismatch(t *testing.T) {
	path := startServer(t, &Server{Service: newRecordingService()})
	t.Run("server rejects a newer client", func(t *testing.T) {
		conn, br := rawConn(t, path, Version+1)
		m := readMsg(t, br)
		if m.Type != typeError || m.Error == nil || m.Error.Code != CodeVersionMismatch ||
			!strings.Contains(m.Error.Message, fmt.Sprintf("agent speaks %d, client speaks %d", Version, Version+1)) {
			t.Fatalf("got %+v", m)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Error("server kept the connection open")
		}
		conn.Close()
	})
	t.Run("client rejects a newer server", func(t *testing.T) {
		a, b := net.Pipe()
		go func() {
			fmt.Fprintf(b, `{"type":"hello","version":%d,"software":"procwatch","role":"server"}`+"\n", Version+1)
			bufio.NewReader(b).ReadBytes('\n')
		}()
		_, err := NewClient(a)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeVersionMismatch || !strings.Contains(err.Error(), fmt.Sprintf("agent speaks %d, client speaks %d", Version+1, Version)) {
			t.Fatalf("err = %v", err)
		}
		b.Close()
	})
	t.Run("first frame must be a hello", func(t *testing.T) {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		readMsg(t, br)
		conn.Write([]byte(`{"type":"request","id":1,"method":"status"}` + "\n"))
		if m := readMsg(t, br); m.Error == nil || m.Error.Code != CodeBadFrame {
			t.Fatalf("got %+v", m)
		}
	})
}

func TestMalformedAndOversizedFrames(t *testing.T) {
	path := startServer(t, &Server{Service: newRecordingService()})
	conn, br := rawConn(t, path, Version)
	cases := []struct {
		name  string
		frame string
		code  string
		id    uint64
	}{
		{"not JSON", "this is not json", CodeBadFrame, 0},
		{"truncated JSON", `{"type":"request","id":3,`, CodeBadFrame, 0},
		{"not a request", `{"type":"update","id":4}`, CodeBadFrame, 4},
		{"unknown method", `{"type":"request","id":5,"method":"format_disk"}`, CodeUnknownMethod, 5},
		{"bad params", `{"type":"request","id":6,"method":"set_monitoring","params":{"on":"yes"}}`, CodeBadParams, 6},
		{"oversized", `{"type":"request","id":7,"method":"status","params":"` + strings.Repeat("x", 2*MaxFrame) + `"}`, CodeFrameTooLarge, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn.Write([]byte(tc.frame + "\n"))
			m := readMsg(t, br)
			if m.Error == nil || m.Error.Code != tc.code || m.ID != tc.id {
				t.Fatalf("got %+v (error %+v), want code %s id %d", m, m.Error, tc.code, tc.id)
			}
			// The connection still answers a good request.
			conn.Write([]byte(`{"type":"request","id":100,"method":"status"}` + "\n"))
			if m := readMsg(t, br); m.ID != 100 || m.Error != nil {
				t.Fatalf("after %s: %+v", tc.name, m)
			}
		})
	}
}

func TestStuckClientIsDisconnectedWithoutBlockingOthers(t *testing.T) {
	svc := newRecordingService()
	path := startServer(t, &Server{Service: svc, WriteTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	conn, br := rawConn(t, path, Version)
	if uc, ok := conn.(*net.UnixConn); ok {
		uc.SetReadBuffer(4096)
	}
	conn.Write([]byte(`{"type":"request","id":1,"method":"subscribe","params":{"after":"0000000000000000"}}` + "\n"))
	if m := readMsg(t, br); m.Type != typeResponse || m.ID != 1 || m.Error != nil {
		t.Fatalf("subscribe answer %+v", m)
	}
	// The stuck client never reads again. Feed updates until the server
	// gives up on it; each send must complete, or the producer is stuck.
	big := api.Update{Incidents: []rules.Incident{sampleIncident(1, 64<<10)}}
	other := dial(t, path)
	deadline := time.After(20 * time.Second)
	for sent := 0; ; sent++ {
		select {
		case svc.updates <- big:
		case <-svc.subEnded:
			if _, err := other.Status(context.Background()); err != nil {
				t.Fatalf("another client failed after the stuck one was dropped: %v", err)
			}
			return
		case <-deadline:
			t.Fatalf("stuck client still connected after %d updates", sent)
		}
		if sent%20 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := other.Status(ctx)
			cancel()
			if err != nil {
				t.Fatalf("another client blocked by the stuck one: %v", err)
			}
		}
	}
}

func TestListenReplacesStaleSocketAndRefusesLiveOne(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "procwatch.sock")
	ln, err := Listen(path, NoGroups)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600 | os.ModeSocket} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}
	if _, err := Listen(path, NoGroups); !errors.As(err, new(*AlreadyRunningError)) {
		t.Fatalf("second Listen: %v, want AlreadyRunningError", err)
	}
	// A dead agent leaves its socket file behind.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("socket file gone; the test needs it stale")
	}
	ln2, err := Listen(path, NoGroups)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()

	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, []byte("keep"), 0o600)
	if _, err := Listen(plain, NoGroups); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen on a plain file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Error("plain file was touched")
	}
}

func TestClientFailsPendingCallsWhenConnectionDies(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		fmt.Fprintf(b, `{"type":"hello","version":%d,"software":"procwatch","role":"server"}`+"\n", Version)
		br := bufio.NewReader(b)
		br.ReadBytes('\n') // hello
		br.ReadBytes('\n') // the request
		b.Close()
	}()
	c, err := NewClient(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err == nil {
		t.Fatal("status on a dead connection succeeded")
	}
	if _, err := c.Rules(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after the end: %v, want ErrClosed", err)
	}
}

func TestListenWithGroup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "procwatch.sock")
	gid := os.Getgid()
	ln, err := Listen(path, Access{FullGID: gid, ReadGID: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for p, want := range map[string]os.FileMode{dir: 0o750 | os.ModeDir, path: 0o660 | os.ModeSocket} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode(), want, err)
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Gid) != gid {
			t.Errorf("%s: group %v, want %d", p, fi.Sys(), gid)
		}
	}
}

func TestIncidentTooLargeForAFrameGetsAnError(t *testing.T) {
	svc := newRecordingService()
	svc.incidents = []rules.Incident{sampleIncident(1, 10), sampleIncident(2, MaxFrame)}
	c := dial(t, startServer(t, &Server{Service: svc}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Incidents(ctx, api.Query{})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "frame limit") {
		t.Fatalf("err = %v (ctx %v), want a frame limit error", err, ctx.Err())
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("connection unusable afterwards: %v", err)
	}
}

func TestHalfCloseStillAnswersPendingRequests(t *testing.T) {
	svc := newRecordingService()
	path := startServer(t, &Server{Service: svc})
	conn, br := rawConn(t, path, Version)
	conn.Write([]byte(`{"type":"request","id":1,"method":"subscribe"}` + "\n" +
		`{"type":"request","id":2,"method":"status"}` + "\n"))
	conn.(*net.UnixConn).CloseWrite()
	got := map[string]bool{}
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			break
		}
		var m message
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprintf("%s/%d", m.Type, m.ID)] = true
	}
	for _, want := range []string{"response/1", "response/2", "end/1"} {
		if !got[want] {
			t.Errorf("no %s frame after the client closed its side; got %v", want, got)
		}
	}
}

func TestClientGivesUpOnASilentServer(t *testing.T) {
	old := clientHelloTimeout
	clientHelloTimeout = 200 * time.Millisecond
	defer func() { clientHelloTimeout = old }()
	r, w := io.Pipe() // no deadlines, like stdio or ssh
	silent := struct {
		io.Reader
		io.Writer
		io.Closer
	}{r, io.Discard, r}
	_ = w
	_, err := NewClient(silent)
	if err == nil || !strings.Contains(err.Error(), "no hello") {
		t.Fatalf("err = %v", err)
	}
}

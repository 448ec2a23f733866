package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

// fakeEngine is a real HTTP server on a unix socket that answers the two
// Docker Engine API calls the client makes. It counts inspects and can hold
// them until released, which is how the tests see that Enrich never waits.
type fakeEngine struct {
	t      testing.TB
	socket string
	engine string // "Engine" (Docker) or "Podman Engine"

	mu       sync.Mutex
	known    map[string]inspectReply
	inspects map[string]int
	hold     chan struct{} // when set, inspects wait for it to close
	arrived  chan string   // each inspect's id, as it arrives
}

func newFakeEngine(t testing.TB, engine string) *fakeEngine {
	f := &fakeEngine{
		t: t, engine: engine, known: map[string]inspectReply{}, inspects: map[string]int{},
		arrived: make(chan string, 100),
	}
	f.socket = filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		f.release()
		srv.Close()
	})
	return f
}

func (f *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	if f.engine == "Podman Engine" {
		w.Header().Set("Libpod-Api-Version", "4.3.1")
		w.Header().Set("Server", "Libpod/4.3.1 (linux)")
	} else {
		w.Header().Set("Server", "Docker/27.0.1 (linux)")
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/containers/")
	id, ok2 := strings.CutSuffix(id, "/json")
	if !ok || !ok2 {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.inspects[id]++
	hold := f.hold
	rep, known := f.known[id]
	f.mu.Unlock()
	f.arrived <- id
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if !known {
		http.Error(w, `{"message":"no such container"}`, http.StatusNotFound)
		return
	}
	json.NewEncoder(w).Encode(rep)
}

func (f *fakeEngine) holdInspects() {
	f.mu.Lock()
	f.hold = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeEngine) release() {
	f.mu.Lock()
	if f.hold != nil {
		close(f.hold)
		f.hold = nil
	}
	f.mu.Unlock()
}

func (f *fakeEngine) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inspects[id]
}

// addContainer makes the engine know id, with its init at pid, and writes
// that pid's cgroup file under procRoot.
func (f *fakeEngine) addContainer(procRoot, id, name, image string, pid int) string {
	var r inspectReply
	r.ID, r.Name, r.Config.Image, r.State.Pid = id, "/"+name, image, pid
	f.mu.Lock()
	f.known[id] = r
	f.mu.Unlock()
	cg := "/libpod_parent/libpod-" + id
	dir := filepath.Join(procRoot, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	content := "4:memory:/x\n0::" + cg + "/init.scope\n"
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return cg
}

func testID(n int) string { return fmt.Sprintf("%064x", n+0xabc0) }

func newTestCache(t *testing.T, f *fakeEngine, procRoot string, mod func(*Config)) *Cache {
	cfg := Config{Sources: []Source{NewDockerAPI(f.socket)}, ProcRoot: procRoot}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond; the generous limit only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// enrichNow runs Enrich and fails if it has not returned while the engine
// holds every inspect: a miss must not wait for the runtime.
func enrichNow(t *testing.T, c *Cache, ev *event.Event) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.Enrich(ev); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Enrich blocked on the runtime")
	}
}

func TestMissDoesNotBlockAndLaterEventsCarryTheAnswer(t *testing.T) {
	f := newFakeEngine(t, "Podman Engine")
	proc := t.TempDir()
	id := testID(1)
	cg := f.addContainer(proc, id, "web-1", "localhost/app:v2", 4242)
	c := newTestCache(t, f, proc, nil)
	f.holdInspects()

	first := &event.Event{ContainerID: id, Cgroup: event.Text(cg)}
	enrichNow(t, c, first)
	<-f.arrived // the lookup is under way, held by the engine
	if first.ContainerName != "" || first.ContainerRuntime != "" {
		t.Fatalf("a miss was enriched: %+v", first)
	}
	second := &event.Event{ContainerID: id, Cgroup: event.Text(cg + "/sub")}
	enrichNow(t, c, second) // still pending: no second lookup
	f.release()
	waitFor(t, "the answer", func() bool { return c.Stats().Found == 1 })

	later := &event.Event{ContainerID: id, Cgroup: event.Text(cg + "/a/b")}
	c.Enrich(later)
	if later.ContainerName != "web-1" || later.ContainerImage != "localhost/app:v2" || later.ContainerRuntime != "podman" {
		t.Errorf("later event: name %q image %q runtime %q", later.ContainerName, later.ContainerImage, later.ContainerRuntime)
	}
	if n := f.count(id); n != 1 {
		t.Errorf("engine asked %d times, want 1", n)
	}
}

func TestNegativeCache(t *testing.T) {
	f := newFakeEngine(t, "Engine")
	id := testID(2)
	c := newTestCache(t, f, t.TempDir(), func(cfg *Config) { cfg.NegativeTTL = time.Hour })
	ev := &event.Event{ContainerID: id, Cgroup: "/docker/" + event.Text(id)}
	c.Enrich(ev)
	waitFor(t, "not found", func() bool { return c.Stats().NotFound == 1 })
	for range 100 {
		c.Enrich(ev)
	}
	if n := f.count(id); n != 1 {
		t.Errorf("an unknown container was asked about %d times within the negative TTL, want 1", n)
	}
	if ev.ContainerName != "" {
		t.Errorf("unknown container got name %q", ev.ContainerName)
	}

	// Past the TTL it is asked again.
	c2 := newTestCache(t, f, t.TempDir(), func(cfg *Config) { cfg.NegativeTTL = time.Nanosecond })
	c2.Enrich(ev)
	waitFor(t, "first answer", func() bool { return c2.Stats().NotFound == 1 })
	c2.Enrich(ev)
	waitFor(t, "second answer", func() bool { return c2.Stats().NotFound == 2 })
}

func TestCacheBound(t *testing.T) {
	f := newFakeEngine(t, "Engine")
	proc := t.TempDir()
	c := newTestCache(t, f, proc, func(cfg *Config) { cfg.MaxEntries = 3 })
	for i := range 5 {
		id := testID(100 + i)
		f.addContainer(proc, id, fmt.Sprint("c", i), "busybox", 1000+i)
		c.Enrich(&event.Event{ContainerID: id, Cgroup: "/libpod_parent/libpod-" + event.Text(id)})
	}
	waitFor(t, "every lookup", func() bool { return c.Stats().Lookups == 5 })
	st := c.Stats()
	if st.Cached != 3 || st.Evicted != 2 {
		t.Errorf("cached %d evicted %d, want 3 and 2", st.Cached, st.Evicted)
	}
	// The most recent is kept and enriched, with Docker's image normalised.
	ev := &event.Event{ContainerID: testID(104), Cgroup: "/libpod_parent/libpod-" + event.Text(testID(104))}
	c.Enrich(ev)
	if ev.ContainerName != "c4" || ev.ContainerImage != "docker.io/library/busybox:latest" || ev.ContainerRuntime != "docker" {
		t.Errorf("kept entry: %q %q %q", ev.ContainerName, ev.ContainerImage, ev.ContainerRuntime)
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	f := newFakeEngine(t, "Engine")
	c := newTestCache(t, f, t.TempDir(), func(cfg *Config) { cfg.Workers, cfg.Queue = 1, 1 })
	f.holdInspects()
	c.Enrich(&event.Event{ContainerID: testID(200)})
	<-f.arrived                                      // the one worker is busy
	c.Enrich(&event.Event{ContainerID: testID(201)}) // queued
	enrichNow(t, c, &event.Event{ContainerID: testID(202)})
	if d := c.Stats().Dropped; d != 1 {
		t.Errorf("dropped %d, want 1", d)
	}
	f.release()
	waitFor(t, "the queued lookups", func() bool { return c.Stats().Lookups == 2 })
	// The dropped one is asked on its next event.
	c.Enrich(&event.Event{ContainerID: testID(202)})
	waitFor(t, "the retried lookup", func() bool { return c.Stats().Lookups == 3 })
}

func TestTimeoutCountsAsFailure(t *testing.T) {
	f := newFakeEngine(t, "Engine")
	c := newTestCache(t, f, t.TempDir(), func(cfg *Config) { cfg.Timeout = 20 * time.Millisecond })
	f.holdInspects()
	c.Enrich(&event.Event{ContainerID: testID(300)})
	waitFor(t, "the timeout", func() bool { return c.Stats().Failed == 1 })
}

// A host process in a cgroup it named after a real container must not be
// given that container's name.
func TestForeignCgroupIsNotEnriched(t *testing.T) {
	f := newFakeEngine(t, "Engine")
	proc := t.TempDir()
	id := testID(400)
	cg := f.addContainer(proc, id, "db", "postgres:16", 77)
	c := newTestCache(t, f, proc, nil)
	c.Enrich(&event.Event{ContainerID: id, Cgroup: event.Text(cg)})
	waitFor(t, "the answer", func() bool { return c.Stats().Found == 1 })
	for _, fake := range []string{
		"/user.slice/user-1000.slice/user@1000.service/" + id,
		cg + "x",
		"/libpod_parent",
	} {
		ev := &event.Event{ContainerID: id, Cgroup: event.Text(fake)}
		c.Enrich(ev)
		if ev.ContainerName != "" {
			t.Errorf("cgroup %s was given container %q", fake, ev.ContainerName)
		}
	}
	if u := c.Stats().Unverified; u != 3 {
		t.Errorf("unverified %d, want 3", u)
	}
}

func TestNotRunningIsNotTrusted(t *testing.T) {
	f := newFakeEngine(t, "Engine")
	proc := t.TempDir()
	id := testID(500)
	f.addContainer(proc, id, "gone", "alpine", 0)
	c := newTestCache(t, f, proc, nil)
	ev := &event.Event{ContainerID: id, Cgroup: "/libpod_parent/libpod-" + event.Text(id)}
	c.Enrich(ev)
	waitFor(t, "the answer", func() bool { return c.Stats().NotRunning == 1 })
	c.Enrich(ev)
	if ev.ContainerName != "" {
		t.Errorf("a container whose cgroup could not be checked was named %q", ev.ContainerName)
	}
	// Once it runs, it is named: "not running" is remembered for a second
	// only, since a container's first process is seen while it is created.
	// It is asked again without waiting for an event.
	f.addContainer(proc, id, "started", "alpine", 4343)
	waitFor(t, "the recheck", func() bool { return c.Stats().Found == 1 })
	c.Enrich(ev)
	if ev.ContainerName != "started" {
		t.Errorf("after the recheck: name %q", ev.ContainerName)
	}
}

func TestInspectRefusesBadIDs(t *testing.T) {
	f := newFakeEngine(t, "Engine")
	d := NewDockerAPI(f.socket)
	for _, id := range []string{"", "abc", "../../version", strings.Repeat("A", 64), strings.Repeat("a", 63) + "/"} {
		if _, err := d.Inspect(context.Background(), id); err == nil {
			t.Errorf("Inspect(%q) succeeded", id)
		}
	}
	if f.count("") != 0 || len(f.inspects) != 0 {
		t.Errorf("a bad id reached the engine: %v", f.inspects)
	}
}

func TestNormalizeImage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nginx", "docker.io/library/nginx:latest"},
		{"nginx:1.27", "docker.io/library/nginx:1.27"},
		{"me/app", "docker.io/me/app:latest"},
		{"localhost/pw-busybox:test", "localhost/pw-busybox:test"},
		{"localhost/x", "localhost/x:latest"},
		{"quay.io/org/img:v1", "quay.io/org/img:v1"},
		{"registry:5000/img", "registry:5000/img:latest"},
		{"nginx@sha256:abcd", "docker.io/library/nginx@sha256:abcd"},
		{"sha256:abcd", "sha256:abcd"},
		{strings.Repeat("f", 64), strings.Repeat("f", 64)},
		{"", ""},
	}
	for _, tc := range tests {
		if got := NormalizeImage(tc.in); got != tc.want {
			t.Errorf("NormalizeImage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSources(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "a.sock")
	f := newFakeEngine(t, "Engine")
	os.Rename(f.socket, sock)
	linkDir := filepath.Join(t.TempDir(), "run")
	os.Symlink(dir, linkDir)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	id := testID(600)

	srcs := Sources([]string{sock, filepath.Join(linkDir, "a.sock"), filepath.Join(dir, "missing"), file}, false)
	if len(srcs) != 3 || srcs[0].String() != sock {
		t.Fatalf("sources %v, want 3 (the linked directory leads to the same socket)", srcs)
	}
	if _, err := srcs[1].Inspect(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("a socket that is not there: %v, want not found", err)
	}
	if _, err := srcs[2].Inspect(context.Background(), id); err == nil || !strings.Contains(err.Error(), "not a unix socket") {
		t.Errorf("a regular file: %v", err)
	}
	if _, err := srcs[0].Inspect(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("a live engine that does not know the id: %v", err)
	}
	cri := Sources([]string{"/run/containerd/containerd.sock", "cri:" + sock, "/x/crio.sock", "/run/docker.sock"}, true)
	kinds := ""
	for _, s := range cri {
		kinds += fmt.Sprintf("%T ", s)
	}
	if kinds != "*containers.CRI *containers.CRI *containers.CRI *containers.DockerAPI " {
		t.Errorf("kinds %s", kinds)
	}
	if os.Getuid() == 0 {
		os.Chown(sock, 1000, 1000)
		_, err := Sources([]string{sock}, true)[0].Inspect(context.Background(), id)
		if err == nil || !strings.Contains(err.Error(), "not root") {
			t.Errorf("a socket owned by uid 1000 was asked: %v", err)
		}
		if n := f.count(id); n != 1 {
			t.Errorf("engine asked %d times, want 1 (only by the unchecked source)", n)
		}
	}
}

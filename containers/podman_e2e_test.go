package containers_test

// The end-to-end test: a real Podman container, the real sensor (BPF, as
// root), the pipeline with the container cache asking Podman's Docker
// Engine API socket, and the rules. Without root, BPF or Podman it skips,
// unless PROCWATCH_REQUIRE_BPF=1 (CI), where it fails instead.

import (
	"archive/tar"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/containers"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/store"
)

// podmanFlags run containers on this VM's hybrid cgroups (see docs/containers.md).
var podmanFlags = []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}

func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("PROCWATCH_REQUIRE_BPF") == "1" {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("%s: %v", what, err)
}

func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", append(append([]string{}, podmanFlags...), args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// rootfsTar writes a tiny root filesystem: busybox (static), the applet
// links the container's command needs, and the probe program.
func rootfsTar(t *testing.T, dir string) string {
	t.Helper()
	probe := filepath.Join(dir, "probe")
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", probe, "testdata/probe.c").CombinedOutput(); err != nil {
		t.Fatalf("build the probe (needs gcc and static libc, Debian build-essential): %v: %s", err, out)
	}
	path := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, d := range []string{"bin/", "tmp/", "proc/", "sys/", "dev/", "etc/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755})
	}
	addFile := func(name, from string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(b))})
		tw.Write(b)
	}
	addFile("bin/busybox", "/bin/busybox")
	addFile("bin/pw-probe", probe)
	for _, applet := range []string{"sh", "sleep"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox"})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// servePodmanAPI runs `podman system service` on a socket in dir.
func servePodmanAPI(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "podman.sock")
	args := append(append([]string{}, podmanFlags...), "system", "service", "--time=0", "unix://"+sock)
	cmd := exec.Command("podman", args...)
	logf, _ := os.Create(filepath.Join(dir, "service.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("podman system service: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	for i := 0; ; i++ {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return sock
		}
		if i > 3000 {
			log, _ := os.ReadFile(filepath.Join(dir, "service.log"))
			t.Fatalf("podman system service made no socket in 30s: %s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const e2eRules = `version: 1
rules:
  - name: probe-in-e2e-image
    type: bin-execution
    match: {paths: [/bin/pw-probe], images: ["localhost/procwatch-e2e:*"]}
    severity: {success: high}
  - name: probe-in-other-image
    type: bin-execution
    match: {paths: [/bin/pw-probe], images: ["docker.io/**"]}
    severity: {success: low}
`

// e2ePipeline is the real sensor, rules, store and container cache, run
// as the agent runs them, with a subscription to what comes out.
type e2ePipeline struct {
	cache   *containers.Cache
	local   *pipeline.Local
	store   *store.Store
	updates <-chan api.Update
	ctx     context.Context
}

func startPipeline(t *testing.T, dir, rulesYAML string, sockets ...string) *e2ePipeline {
	t.Helper()
	rulesPath := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rulesPath, []byte(rulesYAML), 0o600)
	set, err := rules.LoadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "procwatch.db"), store.Options{BatchInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := sensor.New(sensor.Config{})
	need(t, "load the sensor (root and BPF)", err)
	t.Cleanup(func() { src.Close() })
	cache, err := containers.New(containers.Config{Sources: containers.Sources(sockets, true)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	local, err := pipeline.New(pipeline.Config{
		Host: "e2e", Store: st, Source: src, Rules: rules.NewEngine(set, rules.EngineOptions{Host: "e2e"}),
		Containers: cache, Tick: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- local.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	})
	updates, err := local.Subscribe(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; !src.Running(); i++ {
		if i > 3000 {
			t.Fatal("the sensor did not attach in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &e2ePipeline{cache: cache, local: local, store: st, updates: updates, ctx: ctx}
}

// checkIncidents asserts that the named exec raised a probe-in-e2e-image
// incident carrying the container's context, and that the images selector
// for another image matched no named event.
func checkIncidents(t *testing.T, e *e2ePipeline, id string, named *event.Event, name, image, runtime string) {
	t.Helper()
	if err := e.store.Flush(); err != nil {
		t.Fatal(err)
	}
	incs, err := e.local.Incidents(e.ctx, api.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, inc := range incs {
		p := inc.Process
		if p.ContainerID != id {
			continue
		}
		if inc.Rule == "probe-in-other-image" && p.ContainerImage != "" {
			t.Errorf("docker.io/** matched image %q", p.ContainerImage)
		}
		if inc.Rule == "probe-in-e2e-image" && slices.Equal(p.Args, named.Args) {
			found = true
			if p.ContainerName != event.Text(name) || p.ContainerImage != event.Text(image) || p.ContainerRuntime != runtime {
				t.Errorf("incident: name %q image %q runtime %q; want %q %q %q", p.ContainerName, p.ContainerImage, p.ContainerRuntime, name, image, runtime)
			}
		}
	}
	if !found {
		t.Errorf("no probe-in-e2e-image incident for the named exec %q among %d incidents", named.Args, len(incs))
	}
	if s := e.cache.Stats(); s.Found < 1 || s.Unverified != 0 {
		t.Errorf("cache stats %+v: want a found container and nothing unverified", s)
	}
}

func TestPodmanContainerIsNamed(t *testing.T) {
	if os.Geteuid() != 0 {
		need(t, "run as root", fmt.Errorf("euid %d", os.Geteuid()))
	}
	for _, bin := range []string{"podman", "runc", "gcc"} {
		_, err := exec.LookPath(bin)
		need(t, bin+" (Debian packages podman, runc, build-essential)", err)
	}
	_, err := os.Stat("/bin/busybox")
	need(t, "/bin/busybox (Debian package busybox-static)", err)

	dir := t.TempDir()
	// This VM's hybrid cgroups reject Podman's default ulimits; the
	// setting is given here so the test does not depend on the host's file.
	conf := filepath.Join(dir, "containers.conf")
	os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o600)
	t.Setenv("CONTAINERS_CONF", conf)

	tag := fmt.Sprint(os.Getpid())
	image := "localhost/procwatch-e2e:" + tag
	podman(t, "import", rootfsTar(t, dir), image)
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	sock := servePodmanAPI(t, dir)

	e := startPipeline(t, dir, e2eRules, sock)
	cache, updates := e.cache, e.updates

	name := "procwatch-e2e-" + tag
	id := podman(t, "run", "-d", "--network", "none", "--name", name, image, "/bin/sleep", "600")
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", "-t", "0", name).Run() })

	// Exec the probe until an exec of it arrives named: the first one only
	// starts the lookup, a later one carries the answer.
	var named *event.Event
	var unnamed int
	for attempt := 0; named == nil; attempt++ {
		if attempt == 60 {
			t.Fatalf("no exec in container %s carried its name after 60 tries (%d without); cache %+v", id, unnamed, cache.Stats())
		}
		podman(t, "exec", name, "/bin/pw-probe", fmt.Sprint("attempt-", attempt))
		named, unnamed = waitProbe(t, updates, id, fmt.Sprint("attempt-", attempt), unnamed)
	}
	t.Logf("named after %d exec(s) without a name; cache %+v", unnamed, cache.Stats())
	if named.ContainerName != event.Text(name) || named.ContainerImage != event.Text(image) || named.ContainerRuntime != "podman" {
		t.Errorf("event: name %q image %q runtime %q; want %q %q podman", named.ContainerName, named.ContainerImage, named.ContainerRuntime, name, image)
	}

	// The incident of the named exec carries the same, and the images
	// selector told the two rules apart.
	checkIncidents(t, e, id, named, name, image, "podman")
}

// waitProbe reads updates until the exec of the probe with the given
// argument arrives, and returns it when it carries a container name.
func waitProbe(t *testing.T, updates <-chan api.Update, id, arg string, unnamed int) (*event.Event, int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatal("the subscription ended")
			}
			for i := range u.Events {
				ev := &u.Events[i]
				if ev.Type != event.TypeExec || len(ev.Args) < 2 || string(ev.Args[1]) != arg || !strings.HasSuffix(string(ev.Exe), "pw-probe") {
					continue
				}
				if ev.ContainerID != id {
					t.Fatalf("the probe's exec has container id %q, want %q (cgroup %q)", ev.ContainerID, id, ev.Cgroup)
				}
				if ev.ContainerName == "" {
					return nil, unnamed + 1
				}
				return &ev.Event, unnamed
			}
		case <-timeout:
			t.Fatalf("the exec of the probe (%s) never arrived", arg)
		}
	}
}

package containers_test

// The CRI end-to-end test: containerd (Debian's, with its CRI plugin) run by
// the test on its own socket, root and state directories; a pod and a
// container created through CRI from a local image (no registry), and the
// real sensor and pipeline asking containerd about the container over CRI.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/procwatch/procwatch/event"
)

// containerdConfig keeps everything under dir. restrict_oom_score_adj: the
// pause container asks for oom_score_adj -998, which needs
// CAP_SYS_RESOURCE, which root lacks on some VMs (this one).
const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
[grpc]
  address = "%[1]s/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[2]s"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[1]s/cni/bin"
    conf_dir = "%[1]s/cni/net.d"
`

// startContainerd runs containerd on a socket in dir until the test ends.
func startContainerd(t *testing.T, dir, sandboxImage string) string {
	t.Helper()
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(containerdConfig, dir, sandboxImage)), 0o600)
	logf, _ := os.Create(filepath.Join(dir, "containerd.log"))
	cmd := exec.Command("containerd", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("containerd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	sock := filepath.Join(dir, "containerd.sock")
	for i := 0; ; i++ {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return sock
		}
		if i > 3000 {
			log, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd made no socket in 30s: %s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// criImage imports the test's root filesystem into containerd's CRI
// namespace through Podman (import, then save as an OCI archive).
func criImage(t *testing.T, dir, sock, image string) {
	t.Helper()
	podman(t, "import", "--change", `CMD=["/bin/sleep","1000000"]`, rootfsTar(t, dir), image)
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	archive := filepath.Join(dir, "image.tar")
	podman(t, "save", "--format", "oci-archive", "-o", archive, image)
	name := image[:strings.LastIndexByte(image, ':')] // without the tag
	out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "import", "--base-name", name, archive).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images import: %v: %s", err, out)
	}
}

func TestCRIContainerIsNamed(t *testing.T) {
	if os.Geteuid() != 0 {
		need(t, "run as root", fmt.Errorf("euid %d", os.Geteuid()))
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "podman", "gcc"} {
		_, err := exec.LookPath(bin)
		need(t, bin+" (Debian packages containerd, runc, podman, build-essential)", err)
	}
	_, err := os.Stat("/bin/busybox")
	need(t, "/bin/busybox (Debian package busybox-static)", err)

	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o600)
	t.Setenv("CONTAINERS_CONF", conf)
	tag := fmt.Sprint("cri-", os.Getpid())
	image := "localhost/procwatch-e2e:" + tag
	sock := startContainerd(t, dir, image)
	criImage(t, dir, sock, image)

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // after the pod's removal below
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	pod := "pw-pod-" + tag
	labels := map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": "pw-ns"}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: pod, Namespace: "pw-ns", Uid: tag},
		Labels:   labels,
		// The node's network: no CNI needed.
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
		}},
	}
	e := startPipeline(t, dir, e2eRules, sock)

	sb, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		// Before containerd stops: removing the pod stops its shim and
		// unmounts its root filesystems, so the test directory can go.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	cr, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sb.PodSandboxId, SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "probe"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"/bin/sleep", "600"},
			Labels:   labels,
		},
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	id := cr.ContainerId

	var named *event.Event
	var unnamed int
	for attempt := 0; named == nil; attempt++ {
		if attempt == 60 {
			t.Fatalf("no exec in container %s carried its name after 60 tries (%d without); cache %+v", id, unnamed, e.cache.Stats())
		}
		arg := fmt.Sprint("attempt-", attempt)
		resp, err := rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"/bin/pw-probe", arg}, Timeout: 30})
		if err != nil || resp.ExitCode != 0 {
			t.Fatalf("ExecSync: %v %v", err, resp)
		}
		named, unnamed = waitProbe(t, e.updates, id, arg, unnamed)
	}
	t.Logf("named after %d exec(s) without a name; cache %+v", unnamed, e.cache.Stats())
	name := "pw-ns/" + pod + "/probe"
	if named.ContainerName != event.Text(name) || named.ContainerImage != event.Text(image) || named.ContainerRuntime != "containerd" {
		t.Errorf("event: name %q image %q runtime %q; want %q %q containerd", named.ContainerName, named.ContainerImage, named.ContainerRuntime, name, image)
	}
	checkIncidents(t, e, id, named, name, image, "containerd")
}

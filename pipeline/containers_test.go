package pipeline

import (
	"context"
	"os"
	"testing"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
)

// tableNamer names containers from a fixed table, the way containers.Cache
// does once its lookups have answered, and counts what it was asked.
type tableNamer struct {
	names map[string][2]string
	asked int
}

func (n *tableNamer) Enrich(ev *event.Event) {
	n.asked++
	if v, ok := n.names[ev.ContainerID]; ok {
		ev.ContainerName, ev.ContainerImage, ev.ContainerRuntime = event.Text(v[0]), event.Text(v[1]), "podman"
	}
}

func (n *tableNamer) Stats() event.ContainerStats {
	return event.ContainerStats{Sources: []string{"/run/podman/podman.sock"}, Found: uint64(len(n.names))}
}

// The container is named before the rules judge the event, so an images
// selector sees the image and the incident carries name, image and runtime.
func TestContainersAreNamedBeforeTheRules(t *testing.T) {
	namer := &tableNamer{names: map[string][2]string{"c1": {"web", "docker.io/library/nginx:1.27"}}}
	h := newHarness(t, func(c *Config) { c.Containers = namer })
	const imageRules = `version: 1
rules:
  - name: nginx-exec
    type: bin-execution
    match: {images: ["**/nginx:*"]}
    severity: {success: high}
`
	if err := os.WriteFile(h.path, []byte(imageRules), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.reload(); err != nil {
		t.Fatal(err)
	}
	h.waitRunning(t)
	host := execEvent("/usr/bin/id", "host")
	h.source.emit(t, host)
	in := execEvent("/usr/bin/id", "in-nginx")
	in.ContainerID = "c1"
	h.source.emit(t, in)
	other := execEvent("/usr/bin/id", "in-other")
	other.ContainerID = "c2"
	other.ContainerImage = "docker.io/library/redis:7" // as if named earlier
	h.source.emit(t, other)

	if namer.asked != 2 {
		t.Errorf("the namer was asked %d times, want 2 (events outside containers are not asked about)", namer.asked)
	}
	incs := h.incidents(t, api.Query{})
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want 1: %+v", len(incs), incs)
	}
	p := incs[0].Process
	if p.ContainerName != "web" || p.ContainerImage != "docker.io/library/nginx:1.27" || p.ContainerRuntime != "podman" {
		t.Errorf("incident process: name %q image %q runtime %q", p.ContainerName, p.ContainerImage, p.ContainerRuntime)
	}
	st, err := h.local.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Containers == nil || st.Containers.Found != 1 || st.Containers.Sources[0] != "/run/podman/podman.sock" {
		t.Errorf("status containers: %+v", st.Containers)
	}
}

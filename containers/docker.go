package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ErrNotFound is what a source answers for a container it does not run.
var ErrNotFound = errors.New("no such container")

// maxBody bounds how much of an API answer is read: an inspect carries the
// container's environment and labels, which its creator chooses.
const maxBody = 1 << 20

// Container is what a runtime says about one container.
type Container struct {
	Name    string // without Docker's leading "/"
	Image   string // the reference it was started from, normalised (see NormalizeImage)
	Runtime string // "docker" or "podman"
	// InitPID is the container's first process on the host, 0 when the
	// container is not running. Its cgroup anchors the cgroup check.
	InitPID int
}

// Source answers container lookups. DockerAPI is the implementation; the
// cache's tests use others to count and delay calls.
type Source interface {
	Inspect(ctx context.Context, id string) (Container, error)
	String() string // for logs and status: the socket path
}

// DockerAPI is a Docker Engine API client over a unix socket. Podman serves
// the same API and says so in its headers, which is how Runtime is told.
type DockerAPI struct {
	socket      string
	client      *http.Client
	requireRoot bool // see Sources
}

// NewDockerAPI returns a client for the API socket at path. Nothing is
// dialled until the first Inspect.
func NewDockerAPI(path string) *DockerAPI {
	d := &DockerAPI{socket: path}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if err := checkSocket(path, d.requireRoot); err != nil {
				return nil, err
			}
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}
	d.client = &http.Client{Transport: tr}
	return d
}

func (d *DockerAPI) String() string { return d.socket }

// inspectReply is the part of GET /containers/{id}/json used here.
type inspectReply struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Config struct {
		Image string `json:"Image"`
	} `json:"Config"`
	Image     string `json:"Image"`     // the image id
	ImageName string `json:"ImageName"` // Podman only
	State     struct {
		Pid int `json:"Pid"`
	} `json:"State"`
}

// Inspect asks the runtime about the container with the given full id.
func (d *DockerAPI) Inspect(ctx context.Context, id string) (Container, error) {
	if !ValidID(id) {
		return Container{}, fmt.Errorf("inspect %.80q: not a 64-hex container id", id)
	}
	var r inspectReply
	h, err := d.get(ctx, "/containers/"+id+"/json", &r)
	if err != nil {
		return Container{}, err
	}
	if r.ID != id {
		return Container{}, fmt.Errorf("inspect %s on %s: the answer is about container %.80q", id, d.socket, r.ID)
	}
	image := r.Config.Image
	if image == "" {
		image = r.ImageName
	}
	if image == "" {
		image = r.Image
	}
	return Container{
		Name:    strings.TrimPrefix(r.Name, "/"),
		Image:   NormalizeImage(image),
		Runtime: runtimeOf(h),
		InitPID: r.State.Pid,
	}, nil
}

// runtimeOf names the engine from an answer's headers: Podman's carry
// Libpod-Api-Version and "Server: Libpod/...", Docker's "Server: Docker/...".
// Asking /version instead would cost a third of a second on Podman, which
// runs its OCI runtime and conmon to answer it.
func runtimeOf(h http.Header) string {
	if h.Get("Libpod-Api-Version") != "" || strings.HasPrefix(h.Get("Server"), "Libpod") {
		return "podman"
	}
	return "docker"
}

// get fetches path and decodes its JSON into out, returning the answer's
// headers. 404 is ErrNotFound.
func (d *DockerAPI) get(ctx context.Context, path string, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://container-runtime"+path, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, d.socket, err)
	}
	resp, err := d.client.Do(req)
	if errors.Is(err, errNoSocket) {
		return nil, errNoSocket
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, d.socket, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxBody)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, body)
		return nil, ErrNotFound
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(body, 512))
		return nil, fmt.Errorf("GET %s on %s: %s: %s", path, d.socket, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		return nil, fmt.Errorf("GET %s on %s: decode the answer: %w", path, d.socket, err)
	}
	return resp.Header, nil
}

// ValidID reports whether id is a full container id: 64 lowercase hex
// digits, the only form the sensor takes from a cgroup path. Anything
// else is refused before it reaches a URL.
func ValidID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NormalizeImage writes an image reference the way Podman already reports
// it, so one `images` glob fits both runtimes: Docker reports what the
// user typed ("nginx", "nginx:1.27", "me/app"), which becomes
// "docker.io/library/nginx:latest", "docker.io/library/nginx:1.27",
// "docker.io/me/app:latest". A reference that names a registry (a first
// component with a "." or ":", or "localhost") keeps it; an image id
// ("sha256:...", or 64 hex digits) is left as it is.
func NormalizeImage(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "sha256:") || ValidID(ref) {
		return ref
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	if hasDigest {
		return name + "@" + digest
	}
	last := name[strings.LastIndexByte(name, '/')+1:]
	if !strings.Contains(last, ":") {
		name += ":latest"
	}
	return name
}

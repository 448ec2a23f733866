package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the kubelet puts on every container it creates through CRI.
const (
	labelPodName      = "io.kubernetes.pod.name"
	labelPodNamespace = "io.kubernetes.pod.namespace"
)

// CRI asks a Container Runtime Interface server (containerd's CRI plugin,
// CRI-O) about containers, over gRPC on a unix socket.
type CRI struct {
	socket      string
	requireRoot bool // see Sources

	once    sync.Once
	conn    *grpc.ClientConn
	connErr error

	mu      sync.Mutex
	runtime string // from Version, on the first success
}

// NewCRI returns a client for the CRI socket at path. Nothing is dialled
// until the first Inspect.
func NewCRI(path string) *CRI { return &CRI{socket: path} }

func (c *CRI) String() string { return "cri:" + c.socket }

func (c *CRI) client() (runtimeapi.RuntimeServiceClient, error) {
	c.once.Do(func() {
		dial := func(ctx context.Context, _ string) (net.Conn, error) {
			if err := checkSocket(c.socket, c.requireRoot); err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.socket)
		}
		c.conn, c.connErr = grpc.NewClient("passthrough:///cri",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(dial),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxBody)))
	})
	if c.connErr != nil {
		return nil, fmt.Errorf("CRI socket %s: %w", c.socket, c.connErr)
	}
	return runtimeapi.NewRuntimeServiceClient(c.conn), nil
}

// Inspect asks for the container's status, verbose so that the answer
// carries its init pid.
func (c *CRI) Inspect(ctx context.Context, id string) (Container, error) {
	if !ValidID(id) {
		return Container{}, fmt.Errorf("inspect %.80q: not a 64-hex container id", id)
	}
	// A runtime that is not there knows no container; say so without
	// waiting for gRPC to give up connecting.
	if err := checkSocket(c.socket, c.requireRoot); err != nil {
		return Container{}, err
	}
	rs, err := c.client()
	if err != nil {
		return Container{}, err
	}
	resp, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound, codes.Unimplemented: // Unimplemented: containerd with its CRI plugin off
		return Container{}, ErrNotFound
	default:
		return Container{}, fmt.Errorf("CRI ContainerStatus on %s: %w", c.socket, err)
	}
	st := resp.GetStatus()
	if st.GetId() != id {
		return Container{}, fmt.Errorf("CRI ContainerStatus %s on %s: the answer is about container %.80q", id, c.socket, st.GetId())
	}
	rt, err := c.runtimeName(ctx, rs)
	if err != nil {
		return Container{}, err
	}
	return Container{
		Name:    criName(st),
		Image:   criImage(st),
		Runtime: rt,
		InitPID: criPID(resp.GetInfo()),
	}, nil
}

// criName is the container's name, led by its pod's namespace and name
// when the kubelet labelled it: "default/web-7d9f/nginx".
func criName(st *runtimeapi.ContainerStatus) string {
	name := st.GetMetadata().GetName()
	pod, ns := st.GetLabels()[labelPodName], st.GetLabels()[labelPodNamespace]
	if pod != "" {
		name = pod + "/" + name
		if ns != "" {
			name = ns + "/" + name
		}
	}
	return name
}

// criImage prefers the reference the container was created from; some
// runtimes report only an image id there, so the resolved ref follows.
func criImage(st *runtimeapi.ContainerStatus) string {
	img := st.GetImage().GetImage()
	if img == "" || strings.HasPrefix(img, "sha256:") || ValidID(img) {
		if ref := st.GetImageRef(); ref != "" {
			img = ref
		}
	}
	return NormalizeImage(img)
}

// criPID reads the init pid from the verbose info, which containerd and
// CRI-O both give as JSON under "info" with a "pid" member.
func criPID(info map[string]string) int {
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil {
		return 0
	}
	return v.Pid
}

// runtimeName asks Version once: "containerd" or "cri-o".
func (c *CRI) runtimeName(ctx context.Context, rs runtimeapi.RuntimeServiceClient) (string, error) {
	c.mu.Lock()
	rt := c.runtime
	c.mu.Unlock()
	if rt != "" {
		return rt, nil
	}
	v, err := rs.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", fmt.Errorf("CRI Version on %s: %w", c.socket, err)
	}
	rt = strings.ToLower(v.GetRuntimeName())
	if rt == "" {
		return "", errors.New("CRI Version on " + c.socket + ": no runtime name")
	}
	c.mu.Lock()
	c.runtime = rt
	c.mu.Unlock()
	return rt, nil
}

// Close closes the gRPC connection, if one was made. Call it once the
// source is no longer asked (Cache.Close does).
func (c *CRI) Close() error {
	c.once.Do(func() { c.connErr = errors.New("closed") }) // no dial after Close
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

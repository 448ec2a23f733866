// Package containers names the container a process runs in. The sensor
// finds a container's 64-hex id in the process's cgroup path; this package
// asks the container runtime's own API which container that is (its name,
// its image and which runtime runs it) and keeps the answers in a bounded
// cache, so an event is enriched by a map lookup and never waits for a
// socket.
//
// The lookup speaks the Docker Engine API over a unix socket, which both
// Docker (/run/docker.sock) and Podman (`podman system service`,
// /run/podman/podman.sock) serve, or CRI over gRPC, which containerd and
// CRI-O serve; see docs/containers.md.
//
// What an attacker controls: the name, the image reference and the labels
// of a container are chosen by whoever started it, so they are reported as
// Text (exact bytes, escaped for display) and the package never lets them
// decide anything alone. The id comes from the kernel's cgroup path, which a
// process inside a container cannot choose; but a host user with a
// delegated cgroup can create a directory named like any container id, so
// an answer is applied only to events whose cgroup path lies under the
// container's own cgroup (that of its init process, read from /proc when
// the answer arrives).
package containers

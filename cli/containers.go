package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/containers"
	"github.com/procwatch/procwatch/daemon"
)

func addContainerFlags(root *cobra.Command, opts *Options) {
	root.PersistentFlags().StringArrayVar(&opts.ContainerSockets, "container-socket", nil,
		"container runtime socket that names containers: Docker Engine API (Docker, Podman's `podman system service`) or, for containerd.sock, crio.sock or a cri: prefix, CRI; repeat for several, `none` turns lookups off (default: the Docker, Podman, containerd and CRI-O sockets under /run, root-owned only)")
}

// openContainers builds the container-name cache the pipeline asks before
// the rules (daemon.OpenContainers), or returns nil when there is no
// sensor or lookups are off.
func openContainers(opts *Options, log *slog.Logger, withSensor bool) *containers.Cache {
	if !withSensor {
		return nil
	}
	return daemon.OpenContainers(opts.ContainerSockets, log)
}

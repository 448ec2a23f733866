package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/containers"
	"github.com/procwatch/procwatch/pipeline"
)

func addContainerFlags(root *cobra.Command, opts *Options) {
	root.PersistentFlags().StringArrayVar(&opts.ContainerSockets, "container-socket", nil,
		"container runtime socket that names containers: Docker Engine API (Docker, Podman's `podman system service`) or, for containerd.sock, crio.sock or a cri: prefix, CRI; repeat for several, `none` turns lookups off (default: the Docker, Podman, containerd and CRI-O sockets under /run, root-owned only)")
}

// openContainers builds the container-name cache the pipeline asks before
// the rules, or returns nil when there is no sensor or lookups are off.
// Sockets named on the command line are trusted whoever owns them; the
// default ones only when owned by root (see docs/containers.md).
func openContainers(opts *Options, log *slog.Logger, withSensor bool) *containers.Cache {
	if !withSensor {
		return nil
	}
	paths, requireRoot := opts.ContainerSockets, false
	for _, p := range paths {
		if p == "none" {
			log.Info("container lookups off (--container-socket none): events in containers carry their id only")
			return nil
		}
	}
	if len(paths) == 0 {
		paths, requireRoot = containers.DefaultSockets, true
	}
	c, err := containers.New(containers.Config{Sources: containers.Sources(paths, requireRoot), Logger: log})
	if err != nil {
		log.Warn("container lookups off", "err", err)
		return nil
	}
	log.Info("naming containers through their runtime's API", "sockets", c.Stats().Sources)
	return c
}

var _ pipeline.ContainerNamer = (*containers.Cache)(nil)

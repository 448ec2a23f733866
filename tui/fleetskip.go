package tui

import (
	"context"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/rules"
)

// FleetSkipper is a host that belongs to a NATS fleet (fleet.Host): besides
// a skip for itself it can add one for every host of the fleet. When the
// incident's host is one, the skip confirmation asks "this host or the
// whole fleet".
type FleetSkipper interface {
	AddFleetSkip(ctx context.Context, s rules.Skip) (key string, err error)
}

// fleetSkipAddedMsg reports a fleet-wide skip stored in the fleet's bucket.
type fleetSkipAddedMsg struct {
	skip rules.Skip
	key  string
	err  error
}

// fleetSkipper returns the fleet of the targets' first host, if it has one.
func fleetSkipper(to []target) FleetSkipper {
	if len(to) == 0 {
		return nil
	}
	fs, _ := to[0].svc.(FleetSkipper)
	return fs
}

func addFleetSkip(ctx context.Context, fs FleetSkipper, s rules.Skip) tea.Cmd {
	return func() tea.Msg {
		key, err := fs.AddFleetSkip(ctx, s)
		return fleetSkipAddedMsg{skip: s, key: key, err: err}
	}
}

// fleetSkipAdded says where a fleet skip went; the agents apply it and
// their masked incidents arrive through the stream.
func (m *Model) fleetSkipAdded(msg fleetSkipAddedMsg) {
	if msg.err != nil {
		m.setErr("add fleet skip", msg.err)
		return
	}
	m.setMsg("Skipped %s on the whole fleet (key %s): every agent applies it within a second", describeSkip(msg.skip), msg.key)
}

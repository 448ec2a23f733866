package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/rules"
)

// Host is one fleet host as a api.Service, so the TUI and the CLI use
// it as they use a local pipeline or an SSH host. Incidents come from the
// stream (so a host that is down still shows its history); status from
// its status messages; every other call goes to its control service.
type Host struct {
	c    *Client
	name string
	// live asks the host for its event stream while a subscription runs.
	live bool
}

// Host returns name's service. With live, a subscription also holds a
// lease on the host's live events and forwards them.
func (c *Client) Host(name string, live bool) *Host { return &Host{c: c, name: name, live: live} }

// Name is the host's fleet name.
func (h *Host) Name() string { return h.name }

// Conn reports the host as the Hosts screen shows it: connected while its
// status arrives, unreachable ("stale") once it stops for StaleAfter.
func (h *Host) Conn() hosts.Conn {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	hs := c.hosts[h.name]
	if hs == nil || hs.lastSeen.IsZero() {
		since := time.Now()
		if hs != nil {
			since = hs.firstSeen
		}
		return hosts.Conn{State: hosts.Unreachable, Reason: "stale: no status received", Since: since}
	}
	if age := time.Since(hs.lastSeen); age > c.opts.StaleAfter {
		return hosts.Conn{State: hosts.Unreachable, Since: hs.lastSeen,
			Reason: fmt.Sprintf("stale: last status %s (%s ago)", hs.lastSeen.Format("15:04:05"), age.Round(time.Second))}
	}
	return hosts.Conn{State: hosts.Connected, Since: hs.firstSeen, Connects: 1}
}

// PushesStatus tells the TUI that the host's status comes with its
// subscription, from its status messages, so it never polls the host's
// control service for it (tui.StatusPusher).
func (h *Host) PushesStatus() bool { return true }

// Subscribe implements api.Service: incidents of the stream after
// after, then new versions and status as they arrive, and live events
// while the subscription lasts (when asked for).
func (h *Host) Subscribe(ctx context.Context, after rules.ID) (<-chan api.Update, error) {
	box := api.NewMailbox(0, 0)
	replay, st := h.c.watch(h.name, box, after)
	if st != nil {
		box.Put(api.Update{Status: st}) // the latest status first; the next come as they arrive
	}
	out := make(chan api.Update, 1)
	if h.live {
		go h.holdLease(ctx, box)
	}
	go func() {
		defer close(out)
		defer h.c.unwatch(h.name, box)
		for len(replay) > 0 {
			n := min(len(replay), 256)
			select {
			case out <- api.Update{Incidents: replay[:n]}:
			case <-ctx.Done():
				return
			}
			replay = replay[n:]
		}
		for {
			select {
			case <-box.Ready():
				u, ok := box.Take()
				if !ok {
					continue
				}
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// holdLease renews the host's live-event lease while ctx lasts and puts
// the events it publishes in box.
func (h *Host) holdLease(ctx context.Context, box *api.Mailbox) {
	sub, err := h.c.nc.Subscribe(EventsSubject(h.name), func(m *nats.Msg) {
		var lm LiveMsg
		if json.Unmarshal(m.Data, &lm) == nil {
			box.Put(api.Update{Events: lm.Events, Dropped: lm.Dropped})
		}
	})
	if err != nil {
		return
	}
	defer sub.Unsubscribe()
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h.c.Call(cctx, h.name, OpLive, LeaseRequest{Seconds: int(2 * leaseRenew / time.Second)}, nil)
		cancel()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

const leaseRenew = 10 * time.Second

// Incidents implements api.Service from the stream.
func (h *Host) Incidents(ctx context.Context, q api.Query) ([]rules.Incident, error) {
	var out []rules.Incident
	for _, inc := range h.c.Incidents(h.name) {
		if q.Matches(&inc) {
			out = append(out, inc)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
	}
	return out, nil
}

// Noise implements api.Service.
func (h *Host) Noise(ctx context.Context, since time.Time, limit int) (api.Noise, error) {
	var n api.Noise
	err := h.c.Call(ctx, h.name, OpNoise, NoiseRequest{Since: since, Limit: limit}, &n)
	return n, err
}

// SetStatus implements api.Service.
func (h *Host) SetStatus(ctx context.Context, ids []rules.ID, st rules.Status) error {
	return h.c.Call(ctx, h.name, OpSetStatus, SetStatusRequest{IDs: ids, Status: st}, nil)
}

// Skips implements api.Service.
func (h *Host) Skips(ctx context.Context) ([]rules.Skip, error) {
	var s []rules.Skip
	err := h.c.Call(ctx, h.name, OpSkips, nil, &s)
	return s, err
}

// PreviewSkip implements api.Service.
func (h *Host) PreviewSkip(ctx context.Context, s rules.Skip) (int, error) {
	var r CountReply
	err := h.c.Call(ctx, h.name, OpSkipPreview, s, &r)
	return r.Count, err
}

// AddSkip implements api.Service: a skip of this host only, added
// through its control service.
func (h *Host) AddSkip(ctx context.Context, s rules.Skip) (rules.Skip, int, error) {
	var r SkipAddReply
	err := h.c.Call(ctx, h.name, OpSkipAdd, s, &r)
	return r.Skip, r.Masked, err
}

// AddFleetSkip adds s for every host of the fleet (the TUI's "whole
// fleet" answer); it returns the key in PROCWATCH_SKIPS.
func (h *Host) AddFleetSkip(ctx context.Context, s rules.Skip) (string, error) {
	return h.c.AddFleetSkip(ctx, "", s)
}

// RemoveSkip implements api.Service.
func (h *Host) RemoveSkip(ctx context.Context, id string) (int, error) {
	var r CountReply
	err := h.c.Call(ctx, h.name, OpSkipRemove, SkipRemoveRequest{ID: id}, &r)
	return r.Count, err
}

// Rules implements api.Service.
func (h *Host) Rules(ctx context.Context) ([]rules.Rule, error) {
	var r []rules.Rule
	err := h.c.Call(ctx, h.name, OpRules, nil, &r)
	return r, err
}

// SetMonitoring implements api.Service.
func (h *Host) SetMonitoring(ctx context.Context, on bool) error {
	op := OpMonitorOff
	if on {
		op = OpMonitorOn
	}
	return h.c.Call(ctx, h.name, op, nil, nil)
}

// Status implements api.Service: the host's own answer.
func (h *Host) Status(ctx context.Context) (api.Status, error) {
	var s api.Status
	err := h.c.Call(ctx, h.name, OpStatus, nil, &s)
	return s, err
}

// Export implements api.Service from the stream's incidents.
func (h *Host) Export(ctx context.Context, q api.Query, format string, w io.Writer) (int, error) {
	incs, err := h.Incidents(ctx, q)
	if err != nil {
		return 0, err
	}
	switch format {
	case "json":
		if incs == nil {
			incs = []rules.Incident{}
		}
		return len(incs), json.NewEncoder(w).Encode(incs)
	case "ndjson":
		enc := json.NewEncoder(w)
		for i := range incs {
			if err := enc.Encode(&incs[i]); err != nil {
				return i, err
			}
		}
		return len(incs), nil
	}
	return 0, fmt.Errorf("export: unknown format %q (want json or ndjson)", format)
}

var _ api.Service = (*Host)(nil)

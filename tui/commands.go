package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/suggest"
)

// Every call to the service runs in one of these commands and comes back as
// a message, so Update never waits on the pipeline or a socket.

const callTimeout = 10 * time.Second

type (
	incidentsMsg struct {
		host int
		list []rules.Incident
		err  error
	}
	statusMsg struct {
		host int
		st   api.Status
		conn *hosts.Conn // the connection, for hosts that report one
		err  error
		poll bool // re-arm the poll after handling
		// pushed: the host's status comes with its subscription; this
		// message carries its connection state only.
		pushed bool
	}
	// statusesMsg is the poll's answer of every host.
	statusesMsg struct{ list []statusMsg }
	rulesMsg    struct {
		host int
		list []rules.Rule
		err  error
	}
	skipsMsg struct {
		host int
		list []rules.Skip
		err  error
	}
	noiseMsg struct {
		host   int
		list   []suggest.Suggestion
		window time.Duration
	}
	statusSetMsg struct {
		status  rules.Status
		results []hostResult // ids holds the incidents of each host
	}
	skipPreviewMsg struct {
		offer   skipOffer
		results []hostResult // n: open incidents it would mask
	}
	skipAddedMsg struct {
		results []hostResult // skip: as stored; n: incidents masked
	}
	skipRemovedMsg struct {
		results []hostResult // skip: the removed one; n: incidents unmasked
		undo    bool
	}
	monitoringMsg struct {
		on      bool
		results []hostResult
	}
	exportedMsg struct {
		path  string
		count int
		err   error
	}
	statusPollMsg  struct{}
	resubscribeMsg struct{ host int }
)

// target is one host an action goes to.
type target struct {
	host int
	svc  api.Service
	ids  []rules.ID  // for set_status: this host's incidents
	skip *rules.Skip // for remove_skip: this host's skip
}

// hostResult is what one host answered to an action sent to several.
type hostResult struct {
	host int
	ids  []rules.ID
	skip rules.Skip
	n    int
	err  error
}

// onHosts runs fn for every target at once, each with its own timeout, and
// returns the results in target order.
func onHosts(ctx context.Context, targets []target, fn func(context.Context, target) hostResult) []hostResult {
	out := make([]hostResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			c, cancel := call(ctx)
			defer cancel()
			out[i] = fn(c, t)
			out[i].host = t.host
		})
	}
	wg.Wait()
	return out
}

func call(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, callTimeout)
}

func loadIncidents(ctx context.Context, t target, limit int, users *userCache) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		list, err := t.svc.Incidents(c, api.Query{Limit: limit})
		var uids []uint32
		for i := range list {
			uids = eventUIDs(&list[i].Process, uids)
		}
		users.resolve(uids)
		return incidentsMsg{host: t.host, list: list, err: err}
	}
}

// StatusPusher is implemented by a service whose subscription carries
// its status as it changes (a fleet host's status messages): the UI then
// never asks it for its status, it only reads its connection state.
type StatusPusher interface{ PushesStatus() bool }

func pushesStatus(svc api.Service) bool {
	p, ok := svc.(StatusPusher)
	return ok && p.PushesStatus()
}

// loadStatus asks a host for its status; conn, when set, reports the
// host's connection, read here rather than in Update.
func loadStatus(ctx context.Context, t target, conn func() hosts.Conn, poll bool) tea.Cmd {
	return func() tea.Msg { return fetchStatus(ctx, t, conn, poll, callTimeout) }
}

func fetchStatus(ctx context.Context, t target, conn func() hosts.Conn, poll bool, timeout time.Duration) statusMsg {
	msg := statusMsg{host: t.host, poll: poll}
	if conn != nil {
		c := conn()
		msg.conn = &c
	}
	if pushesStatus(t.svc) {
		msg.pushed = true
		return msg
	}
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg.st, msg.err = t.svc.Status(c)
	return msg
}

// pollTimeout bounds one host's answer to the status poll, so a host that
// hangs delays the others' status by at most that.
const pollTimeout = 5 * time.Second

// pollStatuses asks every host for its status at once and returns all the
// answers in one message, so that 200 hosts cost the UI one Update a
// second, not 200.
func pollStatuses(ctx context.Context, ts []target, conns []func() hosts.Conn) tea.Cmd {
	return func() tea.Msg {
		out := statusesMsg{list: make([]statusMsg, len(ts))}
		var wg sync.WaitGroup
		for i, t := range ts {
			wg.Go(func() { out.list[i] = fetchStatus(ctx, t, conns[i], false, pollTimeout) })
		}
		wg.Wait()
		return out
	}
}

func pollStatusLater() tea.Cmd {
	return tea.Tick(statusPollEvery, func(time.Time) tea.Msg { return statusPollMsg{} })
}

func loadRules(ctx context.Context, t target) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		list, err := t.svc.Rules(c)
		return rulesMsg{host: t.host, list: list, err: err}
	}
}

func loadSkips(ctx context.Context, t target) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		list, err := t.svc.Skips(c)
		return skipsMsg{host: t.host, list: list, err: err}
	}
}

// suggestNoise turns the open incidents of one host seen in the window
// into suggested skips, most incidents first. The incidents are the UI's
// own (a snapshot taken in Update); the work runs here, off the loop.
func suggestNoise(host int, incs []*rules.Incident, window time.Duration) tea.Cmd {
	return func() tea.Msg {
		list := make([]rules.Incident, len(incs))
		for i, in := range incs {
			list[i] = *in
		}
		return noiseMsg{host: host, list: suggest.FromIncidents(list, 200), window: window}
	}
}

// setStatus changes the status of each target's ids on that target.
func setStatus(ctx context.Context, targets []target, st rules.Status) tea.Cmd {
	return func() tea.Msg {
		return statusSetMsg{status: st, results: onHosts(ctx, targets, func(c context.Context, t target) hostResult {
			return hostResult{ids: t.ids, err: t.svc.SetStatus(c, t.ids, st)}
		})}
	}
}

// previewSkip asks each of the offer's hosts how many open incidents its
// skip would mask.
func previewSkip(ctx context.Context, o skipOffer) tea.Cmd {
	return func() tea.Msg {
		return skipPreviewMsg{offer: o, results: onHosts(ctx, o.to, func(c context.Context, t target) hostResult {
			n, err := t.svc.PreviewSkip(c, o.skip)
			return hostResult{skip: o.skip, n: n, err: err}
		})}
	}
}

func addSkip(ctx context.Context, targets []target, s rules.Skip) tea.Cmd {
	return func() tea.Msg {
		return skipAddedMsg{results: onHosts(ctx, targets, func(c context.Context, t target) hostResult {
			added, n, err := t.svc.AddSkip(c, s)
			if err != nil {
				added = s
			}
			return hostResult{skip: added, n: n, err: err}
		})}
	}
}

// removeSkip removes each target's skip from that target.
func removeSkip(ctx context.Context, targets []target, undo bool) tea.Cmd {
	return func() tea.Msg {
		return skipRemovedMsg{undo: undo, results: onHosts(ctx, targets, func(c context.Context, t target) hostResult {
			n, err := t.svc.RemoveSkip(c, t.skip.ID)
			return hostResult{skip: *t.skip, n: n, err: err}
		})}
	}
}

func setMonitoring(ctx context.Context, targets []target, on bool) tea.Cmd {
	return func() tea.Msg {
		return monitoringMsg{on: on, results: onHosts(ctx, targets, func(c context.Context, t target) hostResult {
			return hostResult{err: t.svc.SetMonitoring(c, on)}
		})}
	}
}

// exportFileName builds a file name from the host and time. The host comes
// from the pipeline, so it is escaped like any process string and then
// stripped of anything a file name should not hold.
func exportFileName(host string, at time.Time) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, event.DisplayString(host))
	safe = strings.Trim(safe, ".")
	if safe == "" {
		safe = "host"
	}
	if len(safe) > 64 {
		safe = safe[:64]
	}
	return fmt.Sprintf("procwatch-incidents-%s-%s.json", safe, at.UTC().Format("20060102T150405Z"))
}

// exportIncidents writes exactly the incidents on screen (after filter and
// sort) as one JSON array, in the same JSON form as `procwatch export`.
// The file is created with mode 0600 and never overwrites another file.
func exportIncidents(dir, host string, at time.Time, list []rules.Incident) tea.Cmd {
	return func() tea.Msg {
		name := filepath.Join(dir, exportFileName(host, at))
		data, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return exportedMsg{err: fmt.Errorf("encode incidents: %w", err)}
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return exportedMsg{err: fmt.Errorf("create export file: %w", err)}
		}
		_, werr := f.Write(append(data, '\n'))
		cerr := f.Close()
		if werr != nil || cerr != nil {
			os.Remove(name)
			if werr == nil {
				werr = cerr
			}
			return exportedMsg{err: fmt.Errorf("write %s: %w", name, werr)}
		}
		return exportedMsg{path: name, count: len(list)}
	}
}

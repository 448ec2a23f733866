package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/service"
)

// Every call to the service runs in one of these commands and comes back as
// a message, so Update never waits on the pipeline or a socket.

const callTimeout = 10 * time.Second

type (
	incidentsMsg struct {
		list []rules.Incident
		err  error
	}
	statusMsg struct {
		st   service.Status
		err  error
		poll bool // re-arm the poll after handling
	}
	rulesMsg struct {
		list []rules.Rule
		err  error
	}
	skipsMsg struct {
		list []rules.Skip
		err  error
	}
	noiseMsg struct {
		noise  service.Noise
		window time.Duration
		err    error
	}
	statusSetMsg struct {
		ids    []rules.ID
		status rules.Status
		err    error
	}
	skipPreviewMsg struct {
		skip  rules.Skip
		count int
		err   error
	}
	skipAddedMsg struct {
		skip   rules.Skip
		masked int
		err    error
	}
	skipRemovedMsg struct {
		skip     rules.Skip
		unmasked int
		undo     bool
		err      error
	}
	monitoringMsg struct {
		on  bool
		err error
	}
	exportedMsg struct {
		path  string
		count int
		err   error
	}
	statusPollMsg  struct{}
	resubscribeMsg struct{}
)

func call(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, callTimeout)
}

func loadIncidents(ctx context.Context, svc service.Service, limit int, users *userCache) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		list, err := svc.Incidents(c, service.Query{Limit: limit})
		var uids []uint32
		for i := range list {
			uids = eventUIDs(&list[i].Process, uids)
		}
		users.resolve(uids)
		return incidentsMsg{list: list, err: err}
	}
}

func loadStatus(ctx context.Context, svc service.Service, poll bool) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		st, err := svc.Status(c)
		return statusMsg{st: st, err: err, poll: poll}
	}
}

func pollStatusLater() tea.Cmd {
	return tea.Tick(statusPollEvery, func(time.Time) tea.Msg { return statusPollMsg{} })
}

func loadRules(ctx context.Context, svc service.Service) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		list, err := svc.Rules(c)
		return rulesMsg{list: list, err: err}
	}
}

func loadSkips(ctx context.Context, svc service.Service) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		list, err := svc.Skips(c)
		return skipsMsg{list: list, err: err}
	}
}

func loadNoise(ctx context.Context, svc service.Service, now time.Time, window time.Duration) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		n, err := svc.Noise(c, now.Add(-window), 100)
		return noiseMsg{noise: n, window: window, err: err}
	}
}

func setStatus(ctx context.Context, svc service.Service, ids []rules.ID, st rules.Status) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		return statusSetMsg{ids: ids, status: st, err: svc.SetStatus(c, ids, st)}
	}
}

func previewSkip(ctx context.Context, svc service.Service, s rules.Skip) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		n, err := svc.PreviewSkip(c, s)
		return skipPreviewMsg{skip: s, count: n, err: err}
	}
}

func addSkip(ctx context.Context, svc service.Service, s rules.Skip) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		added, n, err := svc.AddSkip(c, s)
		return skipAddedMsg{skip: added, masked: n, err: err}
	}
}

func removeSkip(ctx context.Context, svc service.Service, s rules.Skip, undo bool) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		n, err := svc.RemoveSkip(c, s.ID)
		return skipRemovedMsg{skip: s, unmasked: n, undo: undo, err: err}
	}
}

func setMonitoring(ctx context.Context, svc service.Service, on bool) tea.Cmd {
	return func() tea.Msg {
		c, cancel := call(ctx)
		defer cancel()
		return monitoringMsg{on: on, err: svc.SetMonitoring(c, on)}
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
	}, sensor.DisplayString(host))
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

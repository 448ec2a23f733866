package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// recordingService answers every Service method from fixed data and records
// what it was asked, so tests can check that requests arrive intact.
type recordingService struct {
	mu    sync.Mutex
	calls []string
	args  map[string]any

	incidents []rules.Incident
	export    []byte
	updates   chan api.Update // fed by the test for Subscribe
	subEnded  chan struct{}   // closed when a subscription's ctx ends
	failWith  error
}

func newRecordingService() *recordingService {
	return &recordingService{
		args:     map[string]any{},
		updates:  make(chan api.Update),
		subEnded: make(chan struct{}),
	}
}

func (f *recordingService) record(method string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	f.args[method] = arg
	return f.failWith
}

func (f *recordingService) arg(method string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.args[method]
}

func (f *recordingService) Subscribe(ctx context.Context, after rules.ID) (<-chan api.Update, error) {
	if err := f.record("subscribe", after); err != nil {
		return nil, err
	}
	out := make(chan api.Update)
	go func() {
		defer close(out)
		defer close(f.subEnded)
		for {
			select {
			case u, ok := <-f.updates:
				if !ok {
					return
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

func (f *recordingService) Incidents(ctx context.Context, q api.Query) ([]rules.Incident, error) {
	if err := f.record("incidents", q); err != nil {
		return nil, err
	}
	return f.incidents, nil
}

func (f *recordingService) Noise(ctx context.Context, since time.Time, limit int) (api.Noise, error) {
	if err := f.record("noise", []any{since, limit}); err != nil {
		return api.Noise{}, err
	}
	return api.Noise{
		Commands: []api.NoiseEntry{{Value: "cron", Rule: "r1", Count: 7}},
		Paths:    []api.NoiseEntry{{Value: "/usr/sbin/cron", Count: 7}},
	}, nil
}

func (f *recordingService) SetStatus(ctx context.Context, ids []rules.ID, st rules.Status) error {
	return f.record("set_status", []any{ids, st})
}

func (f *recordingService) Skips(ctx context.Context) ([]rules.Skip, error) {
	if err := f.record("skips", nil); err != nil {
		return nil, err
	}
	return []rules.Skip{
		{Kind: rules.SkipCommand, Value: "cron", Source: rules.SourceRulesFile},
		{ID: "s1", Kind: rules.SkipPath, Value: "/opt/x", Rule: "r1", Source: rules.SourceAdded, Note: "noisy", AddedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), AddedBy: "root"},
	}, nil
}

func (f *recordingService) PreviewSkip(ctx context.Context, s rules.Skip) (int, error) {
	if err := f.record("preview_skip", s); err != nil {
		return 0, err
	}
	return 3, nil
}

func (f *recordingService) AddSkip(ctx context.Context, s rules.Skip) (rules.Skip, int, error) {
	if err := f.record("add_skip", s); err != nil {
		return rules.Skip{}, 0, err
	}
	s.ID = "new-skip"
	return s, 4, nil
}

func (f *recordingService) RemoveSkip(ctx context.Context, id string) (int, error) {
	if err := f.record("remove_skip", id); err != nil {
		return 0, err
	}
	return 5, nil
}

func (f *recordingService) Rules(ctx context.Context) ([]rules.Rule, error) {
	if err := f.record("rules", nil); err != nil {
		return nil, err
	}
	return []rules.Rule{{Name: "r1", Type: rules.TypeBinExecution, Severity: rules.OutcomeSeverity{Success: rules.SeverityHigh}}}, nil
}

func (f *recordingService) SetMonitoring(ctx context.Context, on bool) error {
	return f.record("set_monitoring", on)
}

func (f *recordingService) Status(ctx context.Context) (api.Status, error) {
	if err := f.record("status", nil); err != nil {
		return api.Status{}, err
	}
	return api.Status{Host: "h1", Monitoring: true, RulesPath: "/etc/procwatch/rules.yaml",
		OpenBySev: map[string]int{"high": 2}, Sensor: event.Stats{Exec: 10, Mode: "test"},
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, nil
}

func (f *recordingService) Export(ctx context.Context, q api.Query, format string, w io.Writer) (int, error) {
	if err := f.record("export", []any{q, format}); err != nil {
		return 0, err
	}
	if format != "ndjson" {
		return 0, errors.New("unknown format")
	}
	progress := api.ExportProgress(ctx)
	const pieces = 10
	step := len(f.export) / pieces
	for i := range pieces {
		end := (i + 1) * step
		if i == pieces-1 {
			end = len(f.export)
		}
		if _, err := w.Write(f.export[i*step : end]); err != nil {
			return i, err
		}
		if progress != nil {
			progress(i+1, pieces)
		}
	}
	return pieces, nil
}

// sampleIncident builds an incident with a non-UTF-8 argument and argsLen
// bytes of arguments, to make frames large.
func sampleIncident(i int, argsLen int) rules.Incident {
	t := time.Date(2026, 3, 4, 5, 6, 7, i, time.UTC)
	return rules.Incident{
		ID: rules.ID(1000 + i), Time: t, Host: "h1", Rule: "r1", Type: rules.TypeBinExecution,
		Outcome: event.Success, Severity: rules.SeverityHigh, Summary: event.Text(fmt.Sprintf("incident %d", i)),
		Status: rules.StatusOpen, Count: uint64(i + 1), FirstSeen: t, LastSeen: t,
		Process: event.Event{
			Type: event.TypeExec, Time: t, PID: uint32(i), Exe: "/usr/bin/x\xff",
			Args:     []event.Text{"x", event.Text(strings.Repeat("a", argsLen)), "\x1b[31m"},
			ExitCode: event.Int(0), NewUID: event.Uint32(0),
		},
	}
}

package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/store"
)

// stopSource is an event source that runs until fail is sent an error.
type stopSource struct {
	running chan struct{}
	fail    chan error
}

func (s *stopSource) Run(ctx context.Context, _ func(*event.Event)) error {
	close(s.running)
	select {
	case err := <-s.fail:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stopSource) Stats() event.Stats { return event.Stats{Mode: "test"} }

// startDaemon runs a daemon on src in a temp dir; it returns the socket
// path, the database path and Run's result.
func startDaemon(t *testing.T, ctx context.Context, src *stopSource) (string, string, <-chan error) {
	t.Helper()
	dir := t.TempDir()
	sock, db := filepath.Join(dir, "run", "procwatch.sock"), filepath.Join(dir, "state", "procwatch.db")
	rulesFile := filepath.Join(dir, "rules.yaml")
	b, err := os.ReadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rulesFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Logger: log, Stdout: io.Discard,
			Pipeline: PipelineConfig{RulesPath: rulesFile, RulesLabel: rulesFile, DBPath: db, Store: store.Options{Logger: log},
				Source: src, ContainerSockets: []string{"none"}},
			Socket: sock, Access: protocol.NoGroups, MaxConnections: 4, MaxConnectionsPerUID: 4, IdleTimeout: time.Minute,
		})
	}()
	select {
	case <-src.running:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}
	return sock, db, done
}

// TestRunStopsEveryPartWhenOneFails: a sensor that dies stops the socket
// server too, and Run names the part that failed.
func TestRunStopsEveryPartWhenOneFails(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(cancel context.CancelFunc, src *stopSource)
		wantErr string // empty: a clean stop
	}{
		{"sensor fails", func(_ context.CancelFunc, s *stopSource) { s.fail <- errors.New("ring buffer gone") }, "pipeline: sensor: ring buffer gone"},
		{"sensor ends", func(_ context.CancelFunc, s *stopSource) { s.fail <- nil }, "pipeline: sensor: sensor stopped unexpectedly"},
		{"signal", func(cancel context.CancelFunc, _ *stopSource) { cancel() }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src := &stopSource{running: make(chan struct{}), fail: make(chan error, 1)}
			sock, db, done := startDaemon(t, ctx, src)
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatalf("socket not served while running: %v", err)
			}
			c.Close()
			tt.stop(cancel, src)
			var runErr error
			select {
			case runErr = <-done:
			case <-time.After(time.Minute):
				t.Fatal("Run did not return after a part stopped")
			}
			if tt.wantErr == "" && runErr != nil || tt.wantErr != "" && (runErr == nil || !strings.Contains(runErr.Error(), tt.wantErr)) {
				t.Fatalf("Run = %v, want %q", runErr, tt.wantErr)
			}
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				t.Error("the socket still answers after Run returned")
			}
			// The database was closed: it opens again at once.
			st, err := store.Open(db, store.Options{})
			if err != nil {
				t.Fatalf("database not released: %v", err)
			}
			st.Close()
		})
	}
}

package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/metrics"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// BenchmarkHandle measures the sensor's side of the pipeline: one event
// judged by the engine, queued for the store and appended to the batch of
// two subscribers that read concurrently. One event in ten raises or
// updates an incident.
func BenchmarkHandle(b *testing.B) { benchHandle(b, nil) }

// BenchmarkHandleWithMetrics is BenchmarkHandle with the agent's
// --metrics-addr observer: the evaluation is timed and every incident
// counted.
func BenchmarkHandleWithMetrics(b *testing.B) {
	m, err := metrics.New(metrics.Sources{Status: func() (api.Status, error) { return api.Status{}, nil }})
	if err != nil {
		b.Fatal(err)
	}
	benchHandle(b, m)
}

func benchHandle(b *testing.B, obs Observer) {
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	set, err := rules.Parse("bench.yaml", []byte(testRules))
	if err != nil {
		b.Fatal(err)
	}
	l, err := New(Config{Host: "bench", Store: st, Rules: rules.NewEngine(set, rules.EngineOptions{}),
		Observer: obs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	for range 2 {
		ch, _ := l.Subscribe(ctx, 0)
		go func() {
			for range ch {
			}
		}()
	}
	benign := execEvent("/usr/bin/true", "x")
	bad := make([]*event.Event, 64)
	for i := range bad {
		bad[i] = execEvent("/tmp/payload", fmt.Sprint(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if i%10 == 0 {
			l.handle(bad[(i/10)%len(bad)])
		} else {
			l.handle(benign)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	cancel()
	<-done
}

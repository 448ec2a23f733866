package tui

import (
	"context"
	"io"
	"slices"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
)

// loadRate is the event rate the load benchmarks push through the UI.
const loadRate = 5000

// filledModel returns a model whose streams are full and which sits on the
// exec stream, as after minutes at a high event rate.
func filledModel(b *testing.B) *Model {
	m := New(b.Context(), newFake(), testOptions())
	m.resize(160, 48)
	pid := uint32(1)
	for range 40 {
		u := servicetest.LoadBatch(t0, pid, 1000)
		pid += 1000
		box := newInbox(1<<20, 1<<20)
		box.port(0, m.hosts[0].gen).put(u)
		for b := box.take(); len(b.items) > 0; b = box.take() {
			m.apply(b)
		}
	}
	m.switchTo(screenExec)
	return m
}

// BenchmarkTick measures one drain tick at 5,000 events/s: the 250 events
// of a 50 ms tick applied to the model, then the frame rendered. cpu-% is
// the share of one core the UI loop needs for the event flow alone.
func BenchmarkTick(b *testing.B) {
	m := filledModel(b)
	m.opts.Tick = 50 * time.Millisecond
	const perTick = loadRate / 20
	batches := make([]api.Update, 64)
	for i := range batches {
		batches[i] = servicetest.LoadBatch(t0, uint32(1_000_000+i*perTick), perTick)
	}
	box := newInbox(1<<20, 1<<20)
	i := 0
	for b.Loop() {
		box.port(0, m.hosts[0].gen).put(batches[i%len(batches)])
		i++
		m.Update(frameMsg{batch: box.take()})
		_ = m.View()
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp*20/1e9*100, "cpu-%")
}

// BenchmarkKeypress measures handling one key (moving the selection) and
// rendering the next frame on full 10,000-row streams.
func BenchmarkKeypress(b *testing.B) {
	m := filledModel(b)
	keys := []tea.KeyPressMsg{{Code: 'k', Text: "k"}, {Code: 'j', Text: "j"}}
	i := 0
	for b.Loop() {
		m.Update(keys[i%2])
		i++
		_ = m.View()
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUILoad runs the whole program (renderer included) while a fake
// service publishes 5,000 events/s in 20 ms batches. cpu-% is the process's
// CPU time over 3 s of wall time with nobody typing, publisher and garbage
// collector included. Then it presses a key every 50 ms: key-*-ms is the
// time from sending a key until Update and View have run for it (the
// renderer flushes that frame within the next 1/60 s).
// Run it with a fixed count: go test ./tui -run '^$' -bench UILoad -benchtime 200x
func BenchmarkUILoad(b *testing.B) {
	f := newFake()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	opts := testOptions()
	opts.Tick = 50 * time.Millisecond
	opts.NoStatusPoll = false
	m := New(ctx, f, opts)
	inspected := make(chan time.Time, 1)
	p := tea.NewProgram(probe{m}, tea.WithContext(ctx), tea.WithInput(nil), tea.WithOutput(io.Discard),
		tea.WithWindowSize(160, 48), tea.WithColorProfile(colorprofile.ANSI256), tea.WithoutSignals())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run()
	}()

	// Prebuilt batches keep the publisher cheap, so the CPU figure is
	// mostly the UI's.
	const perBatch = loadRate / 50
	batches := make([]api.Update, 100)
	for i := range batches {
		batches[i] = servicetest.LoadBatch(t0, uint32(i*perBatch), perBatch)
	}
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				f.Publish(batches[i%len(batches)])
			}
		}
	}()
	p.Send(tea.KeyPressMsg{Code: '2', Text: "2"})
	time.Sleep(2 * time.Second) // let the streams fill

	// CPU with the load flowing and nobody typing.
	startCPU, startWall := cpuTime(), time.Now()
	time.Sleep(3 * time.Second)
	cpu, wall := cpuTime()-startCPU, time.Since(startWall)

	// Latency of keys pressed while the load flows.
	var lat []time.Duration
	keys := []tea.KeyPressMsg{{Code: 'k', Text: "k"}, {Code: 'j', Text: "j"}}
	i := 0
	for b.Loop() {
		sent := time.Now()
		p.Send(keys[i%2])
		i++
		p.Send(inspect{fn: func(*Model) { inspected <- time.Now() }, done: make(chan struct{})})
		lat = append(lat, (<-inspected).Sub(sent))
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-pubDone
	<-done

	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "key-p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "key-p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "key-max-ms")
	b.ReportMetric(float64(cpu)/float64(wall)*100, "cpu-%")
	var rows int
	for _, s := range m.streams {
		rows += s.rows.Len()
	}
	b.ReportMetric(float64(rows), "rows-kept")
}

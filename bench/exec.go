// Package bench measures what the sensor costs the host: the exec storm
// benchmark of `procwatch bench exec` runs a fork/exec storm without and
// then with the sensor, side by side in one run, and reports ratios.
package bench

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/sensor"
)

//go:embed storm.c
var stormSource []byte

// ExecConfig sets up the exec storm benchmark.
type ExecConfig struct {
	Workers  int           // concurrent fork/exec loops
	Duration time.Duration // length of each phase
	Rounds   int           // without/with pairs; the figures are their sums
	Sensor   sensor.Config
}

// ExecResult holds the measured figures of one benchmark run.
type ExecResult struct {
	Workers         int
	Duration        time.Duration
	Rounds          int
	Mode            string
	RateWithout     float64 // processes per second without the sensor
	RateWith        float64 // processes per second with the sensor consuming
	Ratio           float64 // RateWith / RateWithout
	Expected        uint64  // execs and exits the storm made while monitored
	Captured        uint64  // of those, events the sensor delivered
	Drops           uint64
	Events          uint64 // every event the sensor handled, forks included
	CPUPerEvent     time.Duration
	PeakRSSBytes    int64
	RingBufferBytes int
}

// BuildNoop compiles the storm/no-op program with gcc into dir.
func BuildNoop(dir string) (string, error) {
	src := filepath.Join(dir, "storm.c")
	if err := os.WriteFile(src, stormSource, 0o600); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "procwatch-noop")
	out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build the static no-op binary with gcc (install Debian's build-essential): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// storm runs the load generator for one phase and returns how many no-op
// processes completed.
func storm(ctx context.Context, bin string, workers int, d time.Duration) (uint64, error) {
	out, err := exec.CommandContext(ctx, bin, "storm", strconv.Itoa(workers), strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Output()
	if err != nil {
		return 0, fmt.Errorf("run storm: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("storm output %q: %w", out, err)
	}
	return n, nil
}

// RunExec runs the benchmark. The sensor runs in this process and the storm
// in a child, so this process's CPU time while monitored is the sensor's.
func RunExec(ctx context.Context, cfg ExecConfig) (ExecResult, error) {
	res := ExecResult{Workers: cfg.Workers, Duration: cfg.Duration, Rounds: cfg.Rounds}
	dir, err := os.MkdirTemp("", "procwatch-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin, err := BuildNoop(dir)
	if err != nil {
		return res, err
	}

	s, err := sensor.New(cfg.Sensor)
	if err != nil {
		return res, err
	}
	defer s.Close()
	res.Mode = s.Mode()
	res.RingBufferBytes = s.Stats().BufferBytes

	var execs, exits, events atomic.Uint64
	pids := make(map[uint32]bool) // storm pids whose exec was seen; reader goroutine only
	handle := func(ev *event.Event) {
		events.Add(1)
		if string(ev.Exe) != bin {
			return
		}
		switch ev.Type {
		case event.TypeExec:
			// The workers exec the binary too when they start; count only
			// no-op runs, which have no arguments beyond argv[0].
			if len(ev.Args) == 1 {
				pids[ev.PID] = true
				execs.Add(1)
			}
		case event.TypeExit:
			if pids[ev.PID] {
				delete(pids, ev.PID)
				exits.Add(1)
			}
		}
	}

	var without, with uint64
	var cpu time.Duration
	for r := 0; r < cfg.Rounds; r++ {
		n, err := storm(ctx, bin, cfg.Workers, cfg.Duration)
		if err != nil {
			return res, err
		}
		without += n

		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(runCtx, handle) }()
		for !s.Running() {
			time.Sleep(time.Millisecond)
		}
		before := cpuTime()
		n, err = storm(ctx, bin, cfg.Workers, cfg.Duration)
		// Let the reader drain what the storm left in the ring buffer.
		for i := 0; i < 200 && (execs.Load() < with+n || exits.Load() < with+n); i++ {
			time.Sleep(5 * time.Millisecond)
		}
		cpu += cpuTime() - before
		stop()
		if rerr := <-done; rerr != nil {
			return res, rerr
		}
		if err != nil {
			return res, err
		}
		with += n
	}

	secs := cfg.Duration.Seconds() * float64(cfg.Rounds)
	res.RateWithout = float64(without) / secs
	res.RateWith = float64(with) / secs
	if res.RateWithout > 0 {
		res.Ratio = res.RateWith / res.RateWithout
	}
	res.Expected = 2 * with
	res.Captured = execs.Load() + exits.Load()
	st := s.Stats()
	res.Drops = st.Drops
	res.Events = events.Load()
	if res.Events > 0 {
		res.CPUPerEvent = cpu / time.Duration(res.Events)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	res.PeakRSSBytes = ru.Maxrss * 1024
	return res, nil
}

// cpuTime is this process's CPU time so far (user and system, children
// excluded). It sums the scheduler's exact on-CPU time of every thread from
// /proc/self/task/*/schedstat: getrusage on a kernel with tick-based
// accounting charges whole ticks to whoever runs when the tick fires, which
// skews the figure for a process that wakes briefly and often. It falls back
// to getrusage where schedstat is missing.
func cpuTime() time.Duration {
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var total time.Duration
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		total += time.Duration(ns)
	}
	if total > 0 {
		return total
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report formats the result for people, with the targets next to the figures.
func (r ExecResult) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exec storm: %d workers, %d round(s) of %s without and with the sensor (mode %s, ring buffer %d MiB)\n",
		r.Workers, r.Rounds, r.Duration, r.Mode, r.RingBufferBytes>>20)
	fmt.Fprintf(&b, "  throughput without sensor  %8.0f execs/s\n", r.RateWithout)
	fmt.Fprintf(&b, "  throughput with sensor     %8.0f execs/s\n", r.RateWith)
	fmt.Fprintf(&b, "  ratio                      %8.3f   (target >= 0.95)\n", r.Ratio)
	pct := 0.0
	if r.Expected > 0 {
		pct = 100 * float64(r.Captured) / float64(r.Expected)
	}
	fmt.Fprintf(&b, "  captured                   %d of %d exec+exit events (%.2f%%, target 100%%)\n", r.Captured, r.Expected, pct)
	fmt.Fprintf(&b, "  drops                      %8d   (target 0)\n", r.Drops)
	fmt.Fprintf(&b, "  sensor CPU per event       %8.2f µs (user+system over %d events, target <= 3 µs)\n", float64(r.CPUPerEvent.Nanoseconds())/1000, r.Events)
	fmt.Fprintf(&b, "  sensor peak RSS            %8.1f MiB (target <= 64 MiB)\n", float64(r.PeakRSSBytes)/(1<<20))
	return b.String()
}

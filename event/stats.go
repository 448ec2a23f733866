package event

// Sensor states, for Stats.State: what the sensor really does, so that no
// screen or status says "monitoring" when nothing is watched.
const (
	// SensorAttached: the BPF programs are attached and events flow.
	SensorAttached = "attached"
	// SensorOff: no programs attached, by choice (monitoring switched
	// off, or a pipeline that runs without a sensor for queries only).
	SensorOff = "off"
	// SensorFailed: a sensor was wanted but could not load, attach or
	// keep reading; Stats.Error says why and what to do.
	SensorFailed = "failed"
)

// Stats counts what the sensor saw and lost. Every consumer shows it, so a
// lost event is never silent.
type Stats struct {
	// State is SensorAttached, SensorOff or SensorFailed.
	State string `json:"state"`
	// Error is why the sensor failed (State SensorFailed): one line saying
	// what failed and what to do.
	Error string `json:"error,omitempty"`

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

// ContainerStats counts the container lookups behind the container_name,
// container_image and container_runtime fields, so an event that lacks
// them says why: not asked yet, not found, failed, or not verified.
type ContainerStats struct {
	// Sources are the runtime API sockets asked, in order.
	Sources []string `json:"sources"`
	// Cached is how many containers (found or not) the cache holds now.
	Cached int `json:"cached"`
	// Lookups counts questions sent to the runtimes; Found, NotFound and
	// Failed (error or timeout) split their answers.
	Lookups  uint64 `json:"lookups"`
	Found    uint64 `json:"found"`
	NotFound uint64 `json:"not_found"`
	Failed   uint64 `json:"failed"`
	// NotRunning counts answers about a container with no running init
	// (being created, or stopped): it cannot be checked, so it is not
	// named, and it is asked about again a second later.
	NotRunning uint64 `json:"not_running"`
	// Dropped counts misses not looked up because every worker was busy
	// and the queue full; a later event of the container asks again.
	Dropped uint64 `json:"dropped"`
	// Evicted counts cache entries dropped to stay within the bound.
	Evicted uint64 `json:"evicted"`
	// Unverified counts events not enriched because their cgroup is not
	// under the container's own (see docs/containers.md).
	Unverified uint64 `json:"unverified"`
}

package rules

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/procwatch/procwatch/event"
)

// Incident is what a rule raises: an event worth an operator's attention,
// with the rule that judged it and how often it repeated. The JSON names are
// a contract shared by export, `procwatch incidents --json` and the agent
// protocol.
type Incident struct {
	ID       ID            `json:"id"`
	Time     time.Time     `json:"time"` // when the incident was first raised
	Host     string        `json:"host"`
	Rule     string        `json:"rule"`
	Type     string        `json:"type"` // the rule type, e.g. "root-escalation"
	Outcome  event.Outcome `json:"outcome"`
	Severity Severity      `json:"severity"`
	Summary  event.Text    `json:"summary"` // one human line; quotes process strings, so bytes are kept exactly
	Status   Status        `json:"status"`
	Process  event.Event   `json:"process"`

	// Dedup: repeats within the window update one incident instead of
	// raising another (see the engine's dedupKey for what a repeat is).
	Count     uint64    `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`

	// Fate is how the incident's process ended, once it has: set on a
	// root-escalation incident when the escalated process exits.
	Fate *event.Fate `json:"fate,omitempty"`

	// History is the audit trail of triage: every acknowledge, mask and
	// re-open, oldest first, with who asked as the kernel reported it.
	History []Change `json:"history,omitempty"`

	// Floods: a rule with aggregate raises at most 16 incidents per user
	// and scope (the root of its paths entry that matched, such as "/tmp",
	// or "fs:tmpfs" for a filesystems entry) in a dedup window; the execs
	// past that gather into one flood incident, which alone has these
	// fields. Distinct counts its different binaries (up to 16,384; Count
	// keeps counting every exec) and Sample holds the first ten of their
	// paths. Process is its first exec.
	Distinct uint64       `json:"distinct,omitempty"`
	Sample   []event.Text `json:"sample,omitempty"`
	Scope    string       `json:"scope,omitempty"`
}

// Change is one triage change to an incident: when, from which status to
// which, and who asked.
type Change struct {
	Time time.Time `json:"time"`
	From Status    `json:"from"`
	To   Status    `json:"to"`
	By   Actor     `json:"by"`
	// Skip is the id of the added skip whose adding (masked) or removal
	// (re-opened) made the change; empty for a status set by hand.
	Skip string `json:"skip,omitempty"`
}

// Actor is who asked for a change. UID and PID come from the kernel
// (SO_PEERCRED on the agent's socket, the process's own ids for a local
// pipeline or for `serve --stdio`), never from what a client says; User is
// the uid's name when the agent could look it up. Over `serve --stdio` run
// by sshd, SSHUser and SSHFrom name the SSH login and the client address
// taken from the environment sshd set for that session.
type Actor struct {
	UID     uint32 `json:"uid"`
	PID     uint32 `json:"pid,omitempty"`
	User    string `json:"user,omitempty"`
	SSHUser string `json:"ssh_user,omitempty"`
	SSHFrom string `json:"ssh_from,omitempty"`
	Via     string `json:"via,omitempty"` // socket, stdio or local
}

// String names the actor for logs and a skip's added_by, e.g.
// "alice (uid 1000, pid 4242, ssh alice from 10.0.0.5)".
func (a Actor) String() string {
	name := a.User
	if name == "" {
		name = "uid " + strconv.FormatUint(uint64(a.UID), 10)
	}
	s := name + " (uid " + strconv.FormatUint(uint64(a.UID), 10)
	if a.PID != 0 {
		s += ", pid " + strconv.FormatUint(uint64(a.PID), 10)
	}
	if a.SSHUser != "" {
		s += ", ssh " + a.SSHUser
		if a.SSHFrom != "" {
			s += " from " + a.SSHFrom
		}
	}
	return s + ")"
}

// Status is where an incident stands in triage.
type Status string

// Incident statuses. Masked means a skip added later covers it.
const (
	StatusOpen         Status = "open"
	StatusAcknowledged Status = "acknowledged"
	StatusMasked       Status = "masked"
)

// ID identifies an incident. IDs are unique within a host and ordered by
// the time the incident was raised, so a store can key by them and a client
// can resume "after the last id I saw". The upper 64 bits are never needed:
// an ID is the raise time in Unix nanoseconds, bumped by one on collision.
// Its text form is 16 lowercase hex digits, which sorts like the number.
type ID uint64

var lastID atomic.Uint64

// NewID returns an ID for an incident raised at t, strictly greater than
// every ID this process handed out before.
func NewID(t time.Time) ID {
	want := uint64(max(t.UnixNano(), 0)) // a clock before 1970 must not wrap
	for {
		prev := lastID.Load()
		next := want
		if next <= prev {
			next = prev + 1
		}
		if lastID.CompareAndSwap(prev, next) {
			return ID(next)
		}
	}
}

// Bytes returns the big-endian key form of id, which sorts by time.
func (id ID) Bytes() []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return b[:]
}

// String returns the 16-hex-digit text form.
func (id ID) String() string { return hex.EncodeToString(id.Bytes()) }

// MarshalText implements encoding.TextMarshaler, so JSON carries the text form.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the 16-hex-digit text form.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses the text form of an ID.
func ParseID(s string) (ID, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("incident id %q: want 16 hex digits", s)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return 0, fmt.Errorf("incident id %q: want 16 hex digits", s)
	}
	return ID(binary.BigEndian.Uint64(b)), nil
}

// Severity ranks incidents. The zero value is SeverityNone, which means "raise
// nothing"; the others order from Info (lowest) to Critical.
type Severity uint8

// Severities in increasing order.
const (
	SeverityNone Severity = iota
	SeverityInfo
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"none", "info", "low", "medium", "high", "critical"}

// String returns the name used in rules.yaml and JSON.
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// ParseSeverity reads a severity name as written in rules.yaml.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if n == name {
			return Severity(i), nil
		}
	}
	return SeverityNone, fmt.Errorf("unknown severity %q (want info, low, medium, high, critical or none)", name)
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ExpendableFirst orders incidents for a view that must let some go to
// stay bounded (the fleet UI's window): masked ones first, then
// acknowledged ones, then open ones of the lowest severity, oldest first
// within each. It is the order of the store's count retention, so a flood
// of low incidents pushes out its own kind before an open high or
// critical one.
func ExpendableFirst(a, b *Incident) int {
	if c := cmp.Compare(statusRank(a.Status), statusRank(b.Status)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Severity, b.Severity); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	return strings.Compare(a.Host, b.Host)
}

func statusRank(s Status) int {
	switch s {
	case StatusMasked:
		return 0
	case StatusAcknowledged:
		return 1
	}
	return 2
}

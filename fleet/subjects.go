package fleet

import (
	"fmt"
	"regexp"
	"strings"
)

// Names every fleet member agrees on. They are part of the contract in
// docs/fleet.md: a change here is a protocol change (v2 subjects).
const (
	// StreamName is the JetStream stream holding every host's incidents.
	StreamName = "PROCWATCH_INCIDENTS"
	// SkipsBucket is the key-value bucket of fleet-wide and per-host skips.
	SkipsBucket = "PROCWATCH_SKIPS"
	// ServiceName is the micro service every agent runs, one instance a host.
	ServiceName = "procwatch"
	// subjectPrefix starts every procwatch subject.
	subjectPrefix = "procwatch.v1."
	// IncidentsWildcard matches every host's incident subject; the stream
	// captures it.
	IncidentsWildcard = subjectPrefix + "*.incidents"
	// StatusWildcard matches every host's status subject.
	StatusWildcard = subjectPrefix + "*.status"
	// HeaderRevision carries an incident message's revision.
	HeaderRevision = "Procwatch-Revision"
)

// hostRe is what a host name may be: one subject token, so that neither a
// dot nor a wildcard can make one host's subject reach another's.
var hostRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckHost refuses a host name that cannot be one subject token.
func CheckHost(host string) error {
	if !hostRe.MatchString(host) {
		return fmt.Errorf("host name %q cannot be used on NATS: want 1-64 letters, digits, '-' or '_' (no dots; give --host-name)", host)
	}
	return nil
}

// DefaultHost turns a machine's hostname into a fleet host name: the part
// before the first dot.
func DefaultHost(hostname string) string {
	h, _, _ := strings.Cut(hostname, ".")
	return h
}

// IncidentsSubject is where host publishes its incidents.
func IncidentsSubject(host string) string { return subjectPrefix + host + ".incidents" }

// StatusSubject is where host publishes its status once a second.
func StatusSubject(host string) string { return subjectPrefix + host + ".status" }

// EventsSubject is where host publishes live events while a lease holds.
func EventsSubject(host string) string { return subjectPrefix + host + ".events" }

// controlPrefix starts host's control subjects:
// procwatch.v1.<host>.control.<operation>.<caller>. The last token names
// the caller; the account layout of docs/fleet.md lets each operator
// publish only with its own name there, so the server vouches for it.
func controlPrefix(host string) string { return subjectPrefix + host + ".control" }

// ControlSubject is the subject of one control operation on host, called
// by caller.
func ControlSubject(host, op, caller string) string {
	return controlPrefix(host) + "." + op + "." + caller
}

// hostOfSubject returns the host token of a procwatch.v1.<host>.* subject.
func hostOfSubject(subj string) (string, bool) {
	rest, ok := strings.CutPrefix(subj, subjectPrefix)
	if !ok {
		return "", false
	}
	host, _, ok := strings.Cut(rest, ".")
	return host, ok && host != ""
}

// callerToken makes an identity usable as a subject token. Characters a
// token cannot hold become '_'.
func callerToken(id string) string {
	if id == "" {
		return "anonymous"
	}
	b := []byte(id)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '@':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

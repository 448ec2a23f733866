package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Noise counters answer "which commands and paths raise the most incidents
// since T" without reading the incidents. Each incident that is not masked
// adds one to six counters: its command and its path, each in the minute,
// the hour and the day (UTC) of its Time. A query adds up minutes until the
// next full hour, hours until the next full day, then days, so it reads a
// few thousand counters at most whatever the number of incidents, and is
// exact to the minute (since is rounded down to its minute).
//
// Key: resolution (1: 'm', 'h' or 'd') + period number since the Unix epoch
// (4, big-endian) + kind (1: 'c' command, 'p' path) + value + 0x00 + rule.
// Values come from C strings and cannot hold 0x00, so the first 0x00 ends
// the value whatever the rule's name holds.
const (
	resMinute = 'm'
	resHour   = 'h'
	resDay    = 'd'

	kindCommand = 'c'
	kindPath    = 'p'
)

var resolutions = [...]struct {
	res    byte
	period int64 // seconds
}{{resMinute, 60}, {resHour, 3600}, {resDay, 86400}}

// forNoiseKeys calls fn with each noise counter key of inc. The slice is
// reused between calls.
func forNoiseKeys(inc *rules.Incident, fn func([]byte)) {
	cmd, path := noiseValues(inc)
	sec := inc.Time.Unix()
	if sec < 0 {
		sec = 0
	}
	var buf [256]byte
	for _, r := range resolutions {
		for _, kv := range [2]struct {
			kind  byte
			value string
		}{{kindCommand, cmd}, {kindPath, path}} {
			if kv.value == "" {
				continue
			}
			k := buf[:0]
			k = append(k, r.res)
			k = binary.BigEndian.AppendUint32(k, uint32(sec/r.period))
			k = append(k, kv.kind)
			k = append(k, kv.value...)
			k = append(k, 0)
			k = append(k, inc.Rule...)
			fn(k)
		}
	}
}

// noiseValues returns the command (the exe's base name, or comm when the
// exe is unknown) and the path (the exe) an incident is counted under.
func noiseValues(inc *rules.Incident) (cmd, path string) {
	path = string(inc.Process.Exe)
	if path != "" {
		cmd = path[strings.LastIndexByte(path, '/')+1:]
	}
	if cmd == "" {
		cmd = string(inc.Process.Comm)
	}
	return cmd, path
}

// Noise counts incidents raised since a time (zero: all stored), by command
// and by path, each list most first and cut to limit entries (0: all).
// Masked incidents are not counted: a skip already silences them. Entries
// are per rule, so each one names a skip that would silence it.
func (s *Store) Noise(since time.Time, limit int) (api.Noise, error) {
	type key struct {
		kind  byte
		value string
		rule  string
	}
	sums := map[key]int{}
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketNoise).Cursor()
		for _, span := range noiseSpans(since) {
			from := binary.BigEndian.AppendUint32([]byte{span.res}, span.from)
			for k, v := c.Seek(from); k != nil && k[0] == span.res; k, v = c.Next() {
				if len(k) < 6 || len(v) != 8 {
					continue
				}
				if binary.BigEndian.Uint32(k[1:5]) >= span.to {
					break
				}
				rest := k[6:]
				value, rule, _ := bytes.Cut(rest, []byte{0})
				sums[key{k[5], string(value), string(rule)}] += int(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	if err != nil {
		return api.Noise{}, fmt.Errorf("count noise: %w", err)
	}
	out := api.Noise{Commands: []api.NoiseEntry{}, Paths: []api.NoiseEntry{}}
	for k, n := range sums {
		e := api.NoiseEntry{Value: k.value, Rule: k.rule, Count: n}
		switch k.kind {
		case kindCommand:
			out.Commands = append(out.Commands, e)
		case kindPath:
			out.Paths = append(out.Paths, e)
		}
	}
	out.Commands = topNoise(out.Commands, limit)
	out.Paths = topNoise(out.Paths, limit)
	return out, nil
}

// topNoise sorts most first (then by value and rule, for a stable order)
// and keeps limit entries.
func topNoise(es []api.NoiseEntry, limit int) []api.NoiseEntry {
	slices.SortFunc(es, func(a, b api.NoiseEntry) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if c := strings.Compare(a.Value, b.Value); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	if limit > 0 && len(es) > limit {
		es = es[:limit]
	}
	return es
}

type noiseSpan struct {
	res      byte
	from, to uint32 // period numbers, to exclusive
}

// noiseSpans splits [since, forever) into minutes up to the next full hour,
// hours up to the next full day, and days.
func noiseSpans(since time.Time) []noiseSpan {
	const forever = ^uint32(0)
	if since.IsZero() || since.Unix() <= 0 {
		return []noiseSpan{{resDay, 0, forever}}
	}
	minute := since.Unix() / 60
	hour := (minute + 59) / 60
	day := (hour + 23) / 24
	return []noiseSpan{
		{resMinute, uint32(minute), uint32(hour * 60)},
		{resHour, uint32(hour), uint32(day * 24)},
		{resDay, uint32(day), forever},
	}
}

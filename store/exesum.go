package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// SetExeSHA256 gives stored incidents the SHA-256 of their binary once it
// is known: sums maps incident ids to hex sums. Only incidents without an
// exe_sha256 are changed (a sum once given is never replaced); ids not
// stored (evicted) are passed over. The queued incidents are committed
// first, so an incident raised just before is found. It returns the
// incidents it changed, as stored, for the front ends.
//
// The pipeline calls it from its background hash updater, never on the
// event path. A repeat of the incident queued later keeps the sum: see
// upsert.
func (s *Store) SetExeSHA256(sums map[rules.ID]string) ([]rules.Incident, error) {
	if len(sums) == 0 {
		return nil, nil
	}
	if err := s.Flush(); err != nil {
		return nil, fmt.Errorf("set exe_sha256: %w", err)
	}
	var changed []rules.Incident
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.update(func(tx *bolt.Tx) error {
		changed = changed[:0]
		w := s.newWriteTx(tx)
		for id, sum := range sums {
			var inc rules.Incident
			key, found, err := w.load(id, &inc)
			if err != nil {
				return err
			}
			if !found || inc.Process.ExeSHA256 != "" || sum == "" {
				continue
			}
			inc.Process.ExeSHA256 = sum
			if err := w.putRecord(key, &inc); err != nil {
				return err
			}
			changed = append(changed, inc)
		}
		return w.finish()
	})
	if err != nil {
		return nil, fmt.Errorf("set exe_sha256 of %d incidents: %w", len(sums), err)
	}
	return changed, nil
}

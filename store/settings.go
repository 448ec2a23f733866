package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Setting names in bucketSettings.
var (
	keyMonitoring     = []byte("monitoring")      // 1 byte: 1 on, 0 off
	keyMonitoringBy   = []byte("monitoring_by")   // JSON api.MonitoringSwitch: who switched it last
	keyRetentionAge   = []byte("retention_age")   // int64 nanoseconds, big-endian
	keyRetentionCount = []byte("retention_count") // int64, big-endian
)

// Monitoring reports whether monitoring is switched on. A new database says
// yes: procwatch watches unless someone switched it off.
func (s *Store) Monitoring() (bool, error) {
	on := true
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSettings).Get(keyMonitoring); len(v) == 1 {
			on = v[0] == 1
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read monitoring setting: %w", err)
	}
	return on, nil
}

// SetMonitoring stores whether monitoring is on, so the choice outlives a
// restart of the agent.
func (s *Store) SetMonitoring(on bool) error {
	v := []byte{0}
	if on {
		v[0] = 1
	}
	if err := s.putSetting(keyMonitoring, v); err != nil {
		return fmt.Errorf("store monitoring setting: %w", err)
	}
	return nil
}

// SetMonitoringBy is SetMonitoring that also records who switched it.
func (s *Store) SetMonitoringBy(on bool, by *rules.Actor) error {
	if err := s.SetMonitoring(on); err != nil || by == nil {
		return err
	}
	raw, err := json.Marshal(api.MonitoringSwitch{On: on, Time: time.Now(), By: *by})
	if err == nil {
		err = s.putSetting(keyMonitoringBy, raw)
	}
	if err != nil {
		return fmt.Errorf("store who switched monitoring: %w", err)
	}
	return nil
}

// MonitoringSwitch returns who last switched monitoring, or nil.
func (s *Store) MonitoringSwitch() (*api.MonitoringSwitch, error) {
	var sw *api.MonitoringSwitch
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSettings).Get(keyMonitoringBy)
		if v == nil {
			return nil
		}
		sw = &api.MonitoringSwitch{}
		return json.Unmarshal(v, sw)
	})
	if err != nil {
		return nil, fmt.Errorf("read who switched monitoring: %w", err)
	}
	return sw, nil
}

// Retention returns the retention limits in force: age (<0: forever) and
// count (<0: unlimited).
func (s *Store) Retention() (age time.Duration, count int) {
	return time.Duration(s.retAge.Load()), int(s.retCount.Load())
}

// SetRetention stores new retention limits (0 restores a default; <0 turns
// a limit off) and applies them at once. Options given to Open still take
// precedence in the process that gave them.
func (s *Store) SetRetention(age time.Duration, count int) error {
	return s.setRetention(&age, &count)
}

// SetRetentionAge stores and applies a new age limit, leaving the count
// limit as it is (0 restores the default; <0 keeps incidents forever).
func (s *Store) SetRetentionAge(age time.Duration) error { return s.setRetention(&age, nil) }

// SetRetentionCount stores and applies a new count limit, leaving the age
// limit as it is (0 restores the default; <0 is unlimited).
func (s *Store) SetRetentionCount(count int) error { return s.setRetention(nil, &count) }

// setRetention stores the limits given (nil leaves one as stored), then
// applies what is now in force.
func (s *Store) setRetention(age *time.Duration, count *int) error {
	if age != nil {
		if err := s.putSetting(keyRetentionAge, binary.BigEndian.AppendUint64(nil, uint64(*age))); err != nil {
			return fmt.Errorf("store retention setting: %w", err)
		}
	}
	if count != nil {
		if err := s.putSetting(keyRetentionCount, binary.BigEndian.AppendUint64(nil, uint64(int64(*count)))); err != nil {
			return fmt.Errorf("store retention setting: %w", err)
		}
	}
	if err := s.resolveRetention(); err != nil {
		return err
	}
	if err := s.enforceRetention(time.Now()); err != nil {
		return fmt.Errorf("apply retention: %w", err)
	}
	return nil
}

func (s *Store) storedRetention() (age time.Duration, count int, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		if v := b.Get(keyRetentionAge); len(v) == 8 {
			age = time.Duration(int64(binary.BigEndian.Uint64(v)))
		}
		if v := b.Get(keyRetentionCount); len(v) == 8 {
			count = int(int64(binary.BigEndian.Uint64(v)))
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read retention settings: %w", err)
	}
	return age, count, nil
}

func (s *Store) putSetting(key, val []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSettings).Put(key, val)
	})
}

package store

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// TestReadersDuringStorm runs queries, noise counts, replays and exports
// while two writers put a storm of incidents, and checks every answer is
// consistent: newest first, never more than was committed, and growing.
func TestReadersDuringStorm(t *testing.T) {
	s, _ := openTemp(t, Options{BatchInterval: 5 * time.Millisecond, RetentionAge: -1})
	const perWriter = 20000
	var writers sync.WaitGroup
	var stop atomic.Bool
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range perWriter {
				s.Put(fixture(baseTime.Add(time.Duration(i)*time.Millisecond), w*perWriter+i))
			}
		}()
	}
	var readers sync.WaitGroup
	fail := make(chan string, 16)
	reader := func(name string, fn func() (int, error)) {
		readers.Add(1)
		go func() {
			defer readers.Done()
			last := 0
			for !stop.Load() {
				n, err := fn()
				if err != nil {
					fail <- name + ": " + err.Error()
					return
				}
				if n < last {
					fail <- name + ": saw fewer incidents than before"
					return
				}
				last = n
			}
		}()
	}
	reader("query", func() (int, error) {
		incs, err := s.Query(api.Query{MinSeverity: rules.SeverityHigh, Limit: 100})
		for i := 1; i < len(incs); i++ {
			if incs[i-1].ID <= incs[i].ID {
				return 0, errString("not newest first")
			}
		}
		return 0, err
	})
	reader("count", func() (int, error) {
		n, err := s.Count()
		return n, err
	})
	reader("noise", func() (int, error) {
		noise, err := s.Noise(time.Time{}, 0)
		total := 0
		for _, e := range noise.Commands {
			total += e.Count
		}
		return total, err
	})
	reader("after", func() (int, error) {
		n := 0
		var prev rules.ID
		err := s.After(0, func(inc *rules.Incident) error {
			if inc.ID <= prev {
				return errString("replay not ascending")
			}
			prev = inc.ID
			n++
			return nil
		})
		return n, err
	})
	writers.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	readers.Wait()
	close(fail)
	for msg := range fail {
		t.Error(msg)
	}
	if n, _ := s.Count(); n != 2*perWriter {
		t.Errorf("Count = %d, want %d", n, 2*perWriter)
	}
	if st := s.Stats(); st.Dropped != 0 || st.Committed != 2*perWriter {
		t.Errorf("Stats = %+v", st)
	}
	checkCounters(t, s)
}

type errString string

func (e errString) Error() string { return string(e) }

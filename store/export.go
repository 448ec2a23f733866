package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// Export formats.
const (
	FormatJSON   = "json"   // one JSON array, one incident per line inside it
	FormatNDJSON = "ndjson" // one incident per line, for log pipelines
)

// progressEvery is how often, at most, Export reports progress.
const progressEvery = 100 * time.Millisecond

// Export writes the incidents matching q to w, newest first, as "json" (an
// array) or "ndjson" (one object a line), and returns how many it wrote.
// Each incident is exactly what json.Marshal gives for rules.Incident, the
// form docs/incident.schema.json describes. progress, when not nil, is
// called every 100ms or so and once at the end with the number written and
// the total (0 when it is not known in advance: with filters other than
// Limit, counting first would cost a second pass). When damage made it
// skip incidents it still writes a complete document of the others and
// returns a *DamagedError.
func (s *Store) Export(q api.Query, format string, w io.Writer, progress func(done, total int)) (int, error) {
	if format != FormatJSON && format != FormatNDJSON {
		return 0, fmt.Errorf("export: unknown format %q (want json or ndjson)", format)
	}
	total := 0
	if unfiltered(q) {
		n, err := s.Count()
		if err != nil {
			return 0, fmt.Errorf("export: %w", err)
		}
		total = n
		if q.Limit > 0 && q.Limit < total {
			total = q.Limit
		}
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	buf := make([]byte, 0, 4096)
	n := 0
	lastReport := time.Now()
	if format == FormatJSON {
		buf = append(buf, '[')
	}
	err := s.Each(q, func(inc *rules.Incident) error {
		if format == FormatJSON {
			if n > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '\n')
		}
		buf = appendIncidentJSON(buf, inc)
		if format == FormatNDJSON {
			buf = append(buf, '\n')
		}
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		buf = buf[:0]
		n++
		if progress != nil && n%1024 == 0 {
			if now := time.Now(); now.Sub(lastReport) >= progressEvery {
				lastReport = now
				progress(n, total)
			}
		}
		return nil
	})
	// Damage skipped some incidents: finish the document with the others
	// and return the warning.
	var damaged *DamagedError
	if err != nil && !errors.As(err, &damaged) {
		return n, fmt.Errorf("export after %d incidents: %w", n, err)
	}
	if format == FormatJSON {
		if n > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, ']', '\n')
	}
	if _, err := bw.Write(buf); err != nil {
		return n, fmt.Errorf("export: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("export: write: %w", err)
	}
	if progress != nil {
		progress(n, n)
	}
	if damaged != nil {
		return n, damaged
	}
	return n, nil
}

// unfiltered reports whether q selects every incident (up to its Limit).
func unfiltered(q api.Query) bool {
	q.Limit = 0
	return q == api.Query{}
}

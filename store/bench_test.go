package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// The benchmarks work on a database of a million realistic incidents (exe,
// five args, four ancestors, cwd, cgroup), spread over the last ten days,
// from 300 different programs and 3 rules, with a skewed severity mix: half
// info, 30% low, 15% medium, 4% high, 1% critical. The database is built
// once, by the first benchmark that needs it, outside the timed part. They
// only run with -bench:
//
//	go test ./store/ -run '^$' -bench . -timeout 30m
const benchN = 1_000_000

var (
	benchOnce sync.Once
	benchDir  string
	benchDB   *Store
	benchErr  error
)

// benchPool is a set of incident templates; fillBench stamps one with a
// fresh id and time, so generating input costs little next to storing it.
var benchPool = func() []rules.Incident {
	pool := make([]rules.Incident, 4096)
	for i := range pool {
		pool[i] = fixture(baseTime, i)
		exe := fmt.Sprintf("/usr/lib/app%d/bin/tool%d", i%50, i%300)
		pool[i].Process.Exe, pool[i].Process.Filename = event.Text(exe), event.Text(exe)
		pool[i].Process.Comm = event.Text(filepath.Base(exe))
		switch r := i % 100; {
		case r < 50:
			pool[i].Severity = rules.SeverityInfo
		case r < 80:
			pool[i].Severity = rules.SeverityLow
		case r < 95:
			pool[i].Severity = rules.SeverityMedium
		case r < 99:
			pool[i].Severity = rules.SeverityHigh
		default:
			pool[i].Severity = rules.SeverityCritical
		}
	}
	return pool
}()

// benchSpan is how much time the million incidents' timestamps cover.
const benchSpan = 10 * 24 * time.Hour

// insertMillion puts benchN incidents raised over span (ending now) into s
// and commits them, returning the time it took.
func insertMillion(s *Store, span time.Duration) (time.Duration, error) {
	// Measure throughput with every incident stored: on a loaded machine
	// Put's 2 s wait for room could otherwise drop a few.
	defer func(old time.Duration) { putWait = old }(putWait)
	putWait = 5 * time.Minute
	start := time.Now().Add(-span)
	step := span / benchN
	began := time.Now()
	for i := range benchN {
		inc := benchPool[i%len(benchPool)]
		t := start.Add(time.Duration(i) * step)
		inc.ID = rules.NewID(t)
		inc.Time, inc.FirstSeen, inc.LastSeen, inc.Process.Time = t, t, t, t
		s.Put(inc)
	}
	err := s.Flush()
	return time.Since(began), err
}

func sharedBenchDB(b *testing.B) *Store {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "procwatch-bench-")
		if benchErr != nil {
			return
		}
		benchCleanup = func() {
			if benchDB != nil {
				benchDB.Close()
			}
			os.RemoveAll(benchDir)
		}
		benchDB, benchErr = Open(filepath.Join(benchDir, "bench.db"), Options{})
		if benchErr != nil {
			return
		}
		_, benchErr = insertMillion(benchDB, benchSpan)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDB
}

// BenchmarkInsert1M reports the batched insert rate and the file size per
// incident of a fresh million-incident database whose incidents were
// raised over ten days: the worst case for the noise counters, which a
// batch then spreads over thousands of minutes.
func BenchmarkInsert1M(b *testing.B) { benchInsert(b, benchSpan) }

// BenchmarkInsertStorm1M inserts a million incidents raised within ten
// seconds, as in a storm: the counters of a batch collapse to a few keys.
func BenchmarkInsertStorm1M(b *testing.B) { benchInsert(b, 10*time.Second) }

func benchInsert(b *testing.B, span time.Duration) {
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "insert.db")
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		took, err := insertMillion(s, span)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		info, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(benchN/took.Seconds(), "incidents/s")
		b.ReportMetric(float64(info.Size())/benchN, "file-B/incident")
		b.StartTimer()
	}
}

func benchQuery(b *testing.B, q api.Query) {
	s := sharedBenchDB(b)
	n := 0
	for b.Loop() {
		incs, err := s.Query(q)
		if err != nil {
			b.Fatal(err)
		}
		n = len(incs)
	}
	if q.Limit > 0 && n != q.Limit {
		b.Fatalf("got %d incidents, want %d", n, q.Limit)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
}

// BenchmarkNewest100High is "the newest 100 with a severity filter": high
// and critical make up 5% of the million.
func BenchmarkNewest100High(b *testing.B) {
	benchQuery(b, api.Query{MinSeverity: rules.SeverityHigh, Limit: 100})
}

// BenchmarkNewest100Critical: critical alone is 1%.
func BenchmarkNewest100Critical(b *testing.B) {
	benchQuery(b, api.Query{MinSeverity: rules.SeverityCritical, Limit: 100})
}

// BenchmarkNewest100 has no filter.
func BenchmarkNewest100(b *testing.B) {
	benchQuery(b, api.Query{Limit: 100})
}

// BenchmarkNewest100Rule filters on a field with no index (a third match).
func BenchmarkNewest100Rule(b *testing.B) {
	benchQuery(b, api.Query{Rule: "network-tools", Limit: 100})
}

func benchNoise(b *testing.B, since func() time.Time) {
	s := sharedBenchDB(b)
	for b.Loop() {
		noise, err := s.Noise(since(), 20)
		if err != nil {
			b.Fatal(err)
		}
		if len(noise.Commands) == 0 {
			b.Fatal("no noise counted")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/count")
}

// BenchmarkNoiseAll counts by command and by path over all million.
func BenchmarkNoiseAll(b *testing.B) {
	benchNoise(b, func() time.Time { return time.Time{} })
}

// BenchmarkNoiseDay counts over the last 24 hours (a partial hour and day
// at each end).
func BenchmarkNoiseDay(b *testing.B) {
	benchNoise(b, func() time.Time { return time.Now().Add(-24*time.Hour - 7*time.Minute) })
}

// BenchmarkExportNDJSON writes all million incidents as NDJSON.
func BenchmarkExportNDJSON(b *testing.B) {
	s := sharedBenchDB(b)
	var n int
	var bytes countingWriter
	for b.Loop() {
		bytes = 0
		var err error
		n, err = s.Export(api.Query{}, FormatNDJSON, &bytes, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
	if n != benchN {
		b.Fatalf("exported %d, want %d", n, benchN)
	}
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perOp, "s/export")
	b.ReportMetric(float64(n)/perOp, "incidents/s")
	b.ReportMetric(float64(bytes)/float64(n), "json-B/incident")
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)

// BenchmarkCountCovered previews a skip over the million: every open
// incident is decoded and offered to the skip (what AddSkip also does).
func BenchmarkCountCovered(b *testing.B) {
	s := sharedBenchDB(b)
	sk := rules.Skip{Kind: rules.SkipCommand, Value: "tool7"}
	n := 0
	for b.Loop() {
		var err error
		n, err = s.CountCovered(func(inc *rules.Incident) bool { return sk.Covers(inc) })
		if err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		b.Fatal("skip covers nothing")
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/preview")
}

// BenchmarkInsertAtLimit100k puts 100,000 more incidents, raised within
// ten seconds, into the million-incident database, which is at the default
// count limit: every commit also evicts as many incidents, lowest class
// first, through the class index. It runs last, as it changes the shared
// database (the count stays a million).
func BenchmarkInsertAtLimit100k(b *testing.B) {
	s := sharedBenchDB(b)
	const n = 100_000
	before := s.Stats().Evicted
	stored, err := s.Count()
	if err != nil {
		b.Fatal(err)
	}
	defer func(old time.Duration) { putWait = old }(putWait)
	putWait = 5 * time.Minute
	var took time.Duration
	for b.Loop() {
		start := time.Now()
		began := time.Now()
		for i := range n {
			inc := benchPool[i%len(benchPool)]
			t := start.Add(time.Duration(i) * (10 * time.Second / n))
			inc.ID = rules.NewID(t)
			inc.Time, inc.FirstSeen, inc.LastSeen, inc.Process.Time = t, t, t, t
			s.Put(inc)
		}
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
		took += time.Since(began)
	}
	evicted := s.Stats().Evicted - before
	if want := stored + n*b.N - benchN; evicted != uint64(want) {
		b.Fatalf("evicted %d, want %d", evicted, want)
	}
	if c, _ := s.Count(); c != benchN {
		b.Fatalf("count %d after inserting at the limit, want %d", c, benchN)
	}
	b.ReportMetric(float64(n*b.N)/took.Seconds(), "incidents/s")
}

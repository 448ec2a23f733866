package store

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// mappedRSS is how much of the file at path this process has resident
// through its mappings, from /proc/self/smaps.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") {
			in = len(fields) == 6 && fields[5] == path
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// TestReadsReleaseMappedPages reads a database of about 40 MiB through
// bbolt's mapping, side by side: a plain walk of every record leaves the
// whole file resident in the process, the consistency check and a query
// for every incident hand the pages back as they go (madvise), and every
// incident still reads back afterwards.
func TestReadsReleaseMappedPages(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 60,000-incident database")
	}
	const n = 60_000
	s, path := openTemp(t, Options{RetentionAge: -1, RetentionCount: -1})
	putAll(t, s, fixtures(baseTime, n))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	// Without a release: walk every record through the mapping.
	if err := s.db.View(func(tx *bolt.Tx) error {
		sum := 0
		return tx.Bucket(bucketIncidents).ForEach(func(k, v []byte) error {
			for i := 0; i < len(v); i += 512 {
				sum += int(v[i])
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	walked := mappedRSS(t, path)

	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	checked := mappedRSS(t, path)

	var peak int64
	got := 0
	if err := s.Each(api.Query{}, func(inc *rules.Incident) error {
		if got++; got%2000 == 0 {
			peak = max(peak, mappedRSS(t, path))
		}
		return nil
	}); err != nil {
		t.Fatalf("Each: %v", err)
	}
	t.Logf("file %d MiB; resident through the mapping: after a plain walk %d MiB, after Check %d MiB, peak during a query for everything %d MiB",
		fi.Size()>>20, walked>>20, checked>>20, peak>>20)
	if got != n {
		t.Errorf("query after the release returned %d incidents, want %d", got, n)
	}
	if walked < fi.Size()/2 {
		t.Fatalf("a plain walk left only %d of %d bytes resident: the measure does not see the mapping", walked, fi.Size())
	}
	if checked > walked/8 {
		t.Errorf("after Check %d bytes stay resident through the mapping, want under %d", checked, walked/8)
	}
	if peak > 2*releaseEvery+4<<20 {
		t.Errorf("a query for everything kept %d bytes resident through the mapping, want under %d", peak, 2*releaseEvery+4<<20)
	}
}

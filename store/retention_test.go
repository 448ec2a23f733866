package store

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// TestRetentionByCount fills a store past its count limit with incidents
// of every severity and status, some masked by a skip, and checks that
// what is kept is exactly the reference order's best: open before
// acknowledged before masked, then higher severity, then newer.
func TestRetentionByCount(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1, RetentionCount: 100})
	all := fixtures(baseTime, 250)
	// Mask some of the oldest through a skip so that deletion must clean
	// mask links too, and acknowledge others by hand.
	putAll(t, s, all[:80])
	wget := rules.Skip{Kind: rules.SkipCommand, Value: "wget", Rule: "shell-from-service"}
	if _, n, err := s.AddSkip(wget, coveredBy(wget)); err != nil || n == 0 {
		t.Fatalf("AddSkip: %d, %v", n, err)
	}
	var acked []rules.ID
	for i := 0; i < 80; i += 4 {
		acked = append(acked, all[i].ID)
	}
	if err := s.SetStatus(acked, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	for i := range all[:80] {
		got, _, err := s.Get(all[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		all[i].Status = got.Status
	}
	putAll(t, s, all[80:])
	got, err := s.Query(api.Query{})
	if err != nil {
		t.Fatal(err)
	}
	want := keepByRank(all, 100)
	if !slices.Equal(idsOf(got), want) {
		t.Errorf("kept %v\nwant %v", idsOf(got), want)
	}
	checkCounters(t, s)
	if n, _ := s.Count(); n != 100 {
		t.Errorf("Count = %d, want 100", n)
	}
	if st := s.Stats(); st.Evicted != 150 {
		t.Errorf("Stats().Evicted = %d, want 150", st.Evicted)
	}
}

// keepByRank is the reference for count retention: the n incidents that
// rank highest by (status class, severity, id), newest first.
func keepByRank(all []rules.Incident, n int) []rules.ID {
	rank := func(inc *rules.Incident) string { return string(classKey(inc, inc.ID.Bytes())) }
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b rules.Incident) int { return strings.Compare(rank(&b), rank(&a)) })
	if len(sorted) > n {
		sorted = sorted[:n]
	}
	return bruteQuery(sorted, api.Query{})
}

func TestRetentionByAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	now := time.Now()
	day := 24 * time.Hour
	old40 := fixture(now.Add(-40*day), 0)
	old31 := fixture(now.Add(-31*day), 1)
	// Raised 35 days ago but seen again an hour ago: still active, kept.
	active := fixture(now.Add(-35*day), 9)
	active.LastSeen = now.Add(-time.Hour)
	recent29 := fixture(now.Add(-29*day), 2)
	recent := fixture(now.Add(-time.Hour), 3)
	all := []rules.Incident{old40, old31, active, recent29, recent}

	s, err := Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	putAll(t, s, all)
	s.Close()

	s, err = Open(path, Options{}) // default: 30 days, applied at open
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := s.Query(api.Query{})
	want := []rules.ID{recent.ID, recent29.ID, active.ID}
	gotIDs := idsOf(got)
	if !slices.Equal(gotIDs, want) {
		t.Errorf("kept %v, want %v", gotIDs, want)
	}
	checkCounters(t, s)
	if age, count := s.Retention(); age != DefaultRetentionAge || count != DefaultRetentionCount {
		t.Errorf("Retention() = %v, %d; want defaults", age, count)
	}
}

func TestSetRetentionPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	putAll(t, s, fixtures(baseTime, 50))
	if err := s.SetRetention(0, 20); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(); n != 20 {
		t.Errorf("Count after SetRetention = %d, want 20", n)
	}
	s.Close()
	s, err = Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, count := s.Retention(); count != 20 {
		t.Errorf("stored count limit %d, want 20", count)
	}
}

// TestFileStaysBounded fills a store with a count limit many times over and
// checks that the file stops growing once freed pages are reused.
func TestFileStaysBounded(t *testing.T) {
	s, path := openTemp(t, Options{RetentionAge: -1, RetentionCount: 2000})
	var sizes []int64
	for round := range 12 {
		putAll(t, s, fixtures(baseTime.Add(time.Duration(round)*time.Hour), 2000))
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, info.Size())
	}
	t.Logf("file sizes per round: %v", sizes)
	if last, early := sizes[len(sizes)-1], sizes[3]; last > early*3/2 {
		t.Errorf("file grew from %d to %d bytes while holding 2000 incidents", early, last)
	}
	checkCounters(t, s)
}

// TestRetentionOffOutlivesTheProcess is the supported way to keep every
// incident: SetRetention(-1, -1) is stored, so a later open without
// retention options (the agent's, or an offline CLI command's) keeps
// incidents older than the 30-day default. Turning retention off through
// Options alone lasts only for the process that gave them (see
// TestRetentionByAge): the next open with Options{} applies the defaults
// and deletes what is older than 30 days, which is how the oldest of
// 400,000 incidents went missing from `procwatch export` in a report.
func TestRetentionOffOutlivesTheProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	now := time.Now()
	day := 24 * time.Hour
	all := []rules.Incident{
		fixture(now.Add(-400*day), 0),
		fixture(now.Add(-31*day), 1),
		fixture(now.Add(-time.Hour), 2),
	}
	// Ids at their raise times, whatever ids earlier tests handed out, so
	// that age retention would find the old ones if it ran.
	for i := range all {
		all[i].ID = rules.ID(all[i].Time.UnixNano())
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetention(-1, -1); err != nil {
		t.Fatal(err)
	}
	putAll(t, s, all)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if age, count := s.Retention(); age >= 0 || count >= 0 {
		t.Errorf("Retention() after reopening = %v, %d; want both off (<0)", age, count)
	}
	if err := s.enforceRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(api.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if want := bruteQuery(all, api.Query{}); !slices.Equal(idsOf(got), want) {
		t.Errorf("kept %v, want all of %v", idsOf(got), want)
	}
}

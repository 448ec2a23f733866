package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

func TestDefaultPath(t *testing.T) {
	cases := []struct {
		name      string
		euid      int
		stateHome string
		home      string
		want      string
	}{
		{"root", 0, "/x", "/root", "/var/lib/procwatch/procwatch.db"},
		{"xdg", 1000, "/home/a/.state", "/home/a", "/home/a/.state/procwatch/procwatch.db"},
		{"xdg unset", 1000, "", "/home/a", "/home/a/.local/state/procwatch/procwatch.db"},
		{"xdg relative is ignored", 1000, "rel/state", "/home/a", "/home/a/.local/state/procwatch/procwatch.db"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := defaultPath(c.euid, c.stateHome, c.home); got != c.want {
				t.Errorf("defaultPath = %q, want %q", got, c.want)
			}
		})
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "procwatch")
	path := filepath.Join(dir, "procwatch.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
}

func TestPutFlushGet(t *testing.T) {
	s, _ := openTemp(t, Options{BatchInterval: time.Hour})
	inc := fixture(baseTime, 1)
	s.Put(inc)
	if _, ok, err := s.Get(inc.ID); err != nil || ok {
		t.Fatalf("before Flush: found=%v err=%v; want not yet committed", ok, err)
	}
	if st := s.Stats(); st.Queued != 1 {
		t.Errorf("Stats.Queued = %d, want 1", st.Queued)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(inc.ID)
	if err != nil || !ok {
		t.Fatalf("after Flush: found=%v err=%v", ok, err)
	}
	sameIncident(t, got, inc)
	if st := s.Stats(); st.Committed != 1 || st.Batches != 1 || st.Queued != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestBatchCommitsWithoutFlush(t *testing.T) {
	s, _ := openTemp(t, Options{BatchInterval: 10 * time.Millisecond})
	inc := fixture(baseTime, 1)
	s.Put(inc)
	// The commit goroutine must write it by itself; poll generously.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, ok, _ := s.Get(inc.ID); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("incident not committed without Flush")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseFlushesAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{BatchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	incs := fixtures(baseTime, 500)
	for _, inc := range incs {
		s.Put(inc)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s, err = Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, err := s.Count()
	if err != nil || n != len(incs) {
		t.Fatalf("Count after reopen = %d, %v; want %d", n, err, len(incs))
	}
}

func TestUpsertKeepsStoredStatus(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	inc := fixture(baseTime, 1)
	putAll(t, s, []rules.Incident{inc})
	if err := s.SetStatus([]rules.ID{inc.ID}, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	// The engine sends the repeat as open with a higher count.
	inc.Count, inc.LastSeen = 7, inc.LastSeen.Add(time.Minute)
	putAll(t, s, []rules.Incident{inc})
	got, _, err := s.Get(inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != rules.StatusAcknowledged || got.Count != 7 || !got.LastSeen.Equal(inc.LastSeen) {
		t.Errorf("after repeat: status %s count %d last_seen %v", got.Status, got.Count, got.LastSeen)
	}
	if n, _ := s.Count(); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	open, _ := s.OpenBySeverity()
	if open[inc.Severity.String()] != 0 {
		t.Errorf("acknowledged incident counted open: %v", open)
	}
}

// bruteQuery is the reference for Query: filter every incident, sort by id
// descending, cut to the limit.
func bruteQuery(all []rules.Incident, q api.Query) []rules.ID {
	var ids []rules.ID
	for i := range all {
		if q.Matches(&all[i]) {
			ids = append(ids, all[i].ID)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] > ids[b] })
	if q.Limit > 0 && len(ids) > q.Limit {
		ids = ids[:q.Limit]
	}
	return ids
}

func idsOf(incs []rules.Incident) []rules.ID {
	ids := make([]rules.ID, len(incs))
	for i := range incs {
		ids[i] = incs[i].ID
	}
	return ids
}

func TestQueryFilters(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	all := fixtures(baseTime, 3000)
	all[100].Summary = "needle in summary"
	all[200].Process.Args[2] = "--needle"
	all[2999].Process.Exe = "/opt/needle/bin"
	putAll(t, s, all)
	acked := []rules.ID{all[5].ID, all[6].ID, all[2000].ID}
	if err := s.SetStatus(acked, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	for _, id := range acked {
		for i := range all {
			if all[i].ID == id {
				all[i].Status = rules.StatusAcknowledged
			}
		}
	}
	at := func(i int) time.Time { return all[i].Time }
	cases := map[string]api.Query{
		"all":                  {},
		"limit":                {Limit: 10},
		"severity high":        {MinSeverity: rules.SeverityHigh},
		"severity high limit":  {MinSeverity: rules.SeverityHigh, Limit: 100},
		"severity critical":    {MinSeverity: rules.SeverityCritical, Limit: 7},
		"severity low rule":    {MinSeverity: rules.SeverityLow, Rule: "network-tools", Limit: 50},
		"type":                 {Type: rules.TypeRootEscalation},
		"rule":                 {Rule: "shell-from-service"},
		"status":               {Status: rules.StatusAcknowledged},
		"since":                {Since: at(2500)},
		"until":                {Until: at(10)},
		"since until":          {Since: at(1000), Until: at(1100)},
		"since until severity": {Since: at(1000), Until: at(1100), MinSeverity: rules.SeverityMedium},
		"grep":                 {Grep: "needle"},
		"grep no match":        {Grep: "haystack"},
		"nothing matches":      {Rule: "nope"},
		"until before all":     {Until: baseTime.Add(-time.Hour)},
	}
	for name, q := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := s.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			want := bruteQuery(all, q)
			if !slices.Equal(idsOf(got), want) {
				t.Errorf("got %d ids, want %d (first got %v, want %v)", len(got), len(want), head(idsOf(got)), head(want))
			}
		})
	}
	if got, _ := s.Query(api.Query{Grep: "needle"}); len(got) != 3 {
		t.Errorf("grep needle found %d, want 3", len(got))
	}
}

func head(ids []rules.ID) []rules.ID {
	if len(ids) > 3 {
		return ids[:3]
	}
	return ids
}

func TestEachStopsOnCallbackError(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	putAll(t, s, fixtures(baseTime, 3000))
	boom := errors.New("boom")
	n := 0
	err := s.Each(api.Query{}, func(*rules.Incident) error {
		n++
		if n == 1500 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 1500 {
		t.Errorf("Each = %v after %d calls, want boom after 1500", err, n)
	}
	// The callback may use the store: it runs outside any transaction.
	err = s.Each(api.Query{Limit: 2}, func(inc *rules.Incident) error {
		return s.SetStatus([]rules.ID{inc.ID}, rules.StatusAcknowledged)
	})
	if err != nil {
		t.Fatalf("store call from Each callback: %v", err)
	}
}

func TestAfterReplaysAscending(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	all := fixtures(baseTime, 2500)
	putAll(t, s, all)
	for _, from := range []int{-1, 0, 1000, 2498, 2499} {
		var after rules.ID
		if from >= 0 {
			after = all[from].ID
		}
		var got []rules.ID
		if err := s.After(after, func(inc *rules.Incident) error { got = append(got, inc.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		want := idsOf(all[from+1:])
		if !slices.Equal(got, want) {
			t.Errorf("After(#%d): got %d ids, want %d", from, len(got), len(want))
		}
	}
}

func TestOpenBySeverityAndStatus(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	all := fixtures(baseTime, 100) // severities cycle info..critical
	putAll(t, s, all)
	got, err := s.OpenBySeverity()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"info": 20, "low": 20, "medium": 20, "high": 20, "critical": 20}
	if !mapsEqual(got, want) {
		t.Errorf("OpenBySeverity = %v, want %v", got, want)
	}
	// all[4] is critical, all[9] critical, all[0] info.
	if err := s.SetStatus([]rules.ID{all[4].ID, all[9].ID, all[0].ID}, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	want["critical"], want["info"] = 18, 19
	got, _ = s.OpenBySeverity()
	if !mapsEqual(got, want) {
		t.Errorf("after acknowledging: %v, want %v", got, want)
	}
	if err := s.SetStatus([]rules.ID{all[0].ID}, rules.StatusOpen); err != nil {
		t.Fatal(err)
	}
	want["info"] = 20
	got, _ = s.OpenBySeverity()
	if !mapsEqual(got, want) {
		t.Errorf("after reopening: %v, want %v", got, want)
	}
	err = s.SetStatus([]rules.ID{all[1].ID, 12345}, rules.StatusAcknowledged)
	if !errors.Is(err, ErrNoIncident) || !strings.Contains(err.Error(), rules.ID(12345).String()) {
		t.Errorf("unknown id: %v", err)
	}
	if g, _, _ := s.Get(all[1].ID); g.Status != rules.StatusAcknowledged {
		t.Error("known id not updated when another id was unknown")
	}
	if err := s.SetStatus([]rules.ID{all[1].ID}, "closed"); err == nil {
		t.Error("unknown status accepted")
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestMonitoringPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if on, err := s.Monitoring(); err != nil || !on {
		t.Fatalf("new database: monitoring %v, %v; want on", on, err)
	}
	if err := s.SetMonitoring(false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if on, err := s.Monitoring(); err != nil || on {
		t.Errorf("after reopen: monitoring %v, %v; want off", on, err)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "none.db"), Options{ReadOnly: true})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing file: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("read-only open created the file")
	}
	path := filepath.Join(dir, "p.db")
	w, err := Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	putAll(t, w, fixtures(baseTime, 10))
	w.Close()

	r1, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	defer r2.Close()
	if got, err := r2.Query(api.Query{}); err != nil || len(got) != 10 {
		t.Errorf("reader Query: %d, %v", len(got), err)
	}
	r1.Put(fixture(baseTime, 1))
	if st := r1.Stats(); st.Dropped != 1 {
		t.Errorf("Put on read-only store: Dropped = %d, want 1", st.Dropped)
	}
	if err := r1.SetMonitoring(false); !errors.Is(err, ErrReadOnly) {
		t.Errorf("SetMonitoring on read-only store: %v", err)
	}
	// A writer cannot start while readers hold the file.
	if _, err := Open(path, Options{}); err == nil {
		t.Error("writer opened while readers hold the file")
	}
}

func TestNoiseCounts(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	// 4000 incidents at pseudo-random times over three days, so counts
	// cross minute, hour and day boundaries.
	var all []rules.Incident
	x := uint64(12345)
	for i := range 4000 {
		x = x*6364136223846793005 + 1442695040888963407
		t := baseTime.Add(time.Duration(x>>40) % (72 * time.Hour))
		inc := fixture(t, int(x>>33)%97)
		if i%10 == 0 {
			inc.Process.Exe = "" // counted by comm as the command, no path
			inc.Process.Comm = "kworker"
		}
		all = append(all, inc)
	}
	putAll(t, s, all)
	masked := []rules.ID{all[1].ID, all[2].ID, all[3].ID}
	if err := s.SetStatus(masked, rules.StatusMasked); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		all[i].Status = rules.StatusMasked
	}
	for _, since := range []time.Time{
		{}, baseTime.Add(-time.Hour), baseTime, baseTime.Add(17*time.Minute + 3*time.Second),
		baseTime.Add(25 * time.Hour), baseTime.Add(71*time.Hour + 59*time.Minute), baseTime.Add(100 * time.Hour),
	} {
		got, err := s.Noise(since, 0)
		if err != nil {
			t.Fatal(err)
		}
		wantCmd, wantPath := bruteNoise(all, since)
		if !noiseEqual(got.Commands, wantCmd) || !noiseEqual(got.Paths, wantPath) {
			t.Errorf("since %v: got %d commands %d paths, want %d and %d\n got %v\nwant %v", since,
				len(got.Commands), len(got.Paths), len(wantCmd), len(wantPath), got.Commands, wantCmd)
		}
	}
	got, _ := s.Noise(time.Time{}, 2)
	if len(got.Commands) != 2 || got.Commands[0].Count < got.Commands[1].Count {
		t.Errorf("limit 2: %v", got.Commands)
	}
}

// bruteNoise counts unmasked incidents raised at or after since's minute.
func bruteNoise(all []rules.Incident, since time.Time) (cmds, paths map[[2]string]int) {
	cmds, paths = map[[2]string]int{}, map[[2]string]int{}
	from := since.Truncate(time.Minute)
	for i := range all {
		inc := &all[i]
		if inc.Status == rules.StatusMasked || (!since.IsZero() && inc.Time.Before(from)) {
			continue
		}
		cmd, path := noiseValues(inc)
		cmds[[2]string{cmd, inc.Rule}]++
		if path != "" {
			paths[[2]string{path, inc.Rule}]++
		}
	}
	return cmds, paths
}

func noiseEqual(got []api.NoiseEntry, want map[[2]string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for i, e := range got {
		if want[[2]string{e.Value, e.Rule}] != e.Count {
			return false
		}
		if i > 0 && got[i-1].Count < e.Count {
			return false
		}
	}
	return true
}

// checkCounters recomputes every counter from the incidents and compares.
func checkCounters(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := <-tx.Check(); err != nil {
			t.Errorf("bbolt check: %v", err)
		}
		want := map[string]int64{}
		wantNoise := map[string]int64{}
		wantSev := map[string]bool{}
		err := tx.Bucket(bucketIncidents).ForEach(func(k, v []byte) error {
			var inc rules.Incident
			if err := decodeIncident(k, v, &inc); err != nil {
				return err
			}
			want[string(keyTotal)]++
			if inc.Status == rules.StatusOpen {
				want[string(openKey(inc.Severity))]++
			}
			if inc.Status != rules.StatusMasked {
				forNoiseKeys(&inc, func(k []byte) { wantNoise[string(k)]++ })
			}
			wantSev[string(classKey(&inc, k))] = true
			return nil
		})
		if err != nil {
			return err
		}
		for name, b := range map[string]map[string]int64{"counts": want, "noise": wantNoise} {
			got := map[string]int64{}
			bucket := bucketCounts
			if name == "noise" {
				bucket = bucketNoise
			}
			_ = tx.Bucket(bucket).ForEach(func(k, v []byte) error {
				if name == "counts" && (string(k) == string(keyMaxSkew) || string(k) == string(keyEvicted)) {
					return nil
				}
				got[string(k)] = counter(tx.Bucket(bucket), k)
				return nil
			})
			if len(got) != len(b) {
				t.Errorf("%s: %d counters, want %d", name, len(got), len(b))
			}
			for k, n := range b {
				if got[k] != n {
					t.Errorf("%s counter %q = %d, want %d", name, k, got[k], n)
				}
			}
		}
		nSev := 0
		_ = tx.Bucket(bucketByClass).ForEach(func(k, _ []byte) error {
			nSev++
			if !wantSev[string(k)] {
				t.Errorf("stale class index entry %x", k)
			}
			return nil
		})
		if nSev != len(wantSev) {
			t.Errorf("class index has %d entries, want %d", nSev, len(wantSev))
		}
		// Mask links: both directions agree and name stored incidents and
		// skips.
		nLinks := 0
		_ = tx.Bucket(bucketMasks).ForEach(func(k, _ []byte) error {
			nLinks++
			id, seq := k[:8], k[8:]
			if tx.Bucket(bucketIncidents).Get(id) == nil || tx.Bucket(bucketSkips).Get(seq) == nil {
				t.Errorf("dangling mask link %x", k)
			}
			if tx.Bucket(bucketSkipMasks).Get(append(append([]byte{}, seq...), id...)) == nil {
				t.Errorf("mask link %x has no reverse entry", k)
			}
			return nil
		})
		if n := tx.Bucket(bucketSkipMasks).Stats().KeyN; n != nLinks {
			t.Errorf("%d reverse mask links, %d links", n, nLinks)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInvalidUTF8Survives(t *testing.T) {
	s, _ := openTemp(t, Options{RetentionAge: -1})
	inc := fixture(baseTime, 1)
	inc.Process.Exe = "/tmp/\xff\xfeevil"
	inc.Process.Args = []event.Text{"\x80", "ok", "\xc3("}
	putAll(t, s, []rules.Incident{inc})
	got, _, err := s.Get(inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Process.Exe != inc.Process.Exe || !slices.Equal(got.Process.Args, inc.Process.Args) {
		t.Errorf("bytes changed: exe %q args %q", got.Process.Exe, got.Process.Args)
	}
}

// TestFailingCommitsDropCounted breaks the file under the store and puts
// more than the queue holds: every incident must be either still queued or
// counted as dropped, the error must be reported, and Put must not wait.
func TestFailingCommitsDropCounted(t *testing.T) {
	s, _ := openTemp(t, Options{BatchInterval: time.Hour})
	if err := s.db.Close(); err != nil { // commits fail from now on
		t.Fatal(err)
	}
	inc := fixture(baseTime, 1)
	total := queueLimit + 500
	start := time.Now()
	for i := range total {
		inc.ID = rules.ID(i + 1)
		s.Put(inc)
	}
	if err := s.Flush(); err == nil {
		t.Error("Flush on a closed file succeeded")
	}
	for range 100 { // now known to fail: these must not wait
		s.Put(inc)
	}
	total += 100
	took := time.Since(start)
	st := s.Stats()
	if st.Queued+int(st.Dropped) != total || st.Dropped == 0 {
		t.Errorf("queued %d + dropped %d != put %d", st.Queued, st.Dropped, total)
	}
	if st.LastError == "" || st.Committed != 0 {
		t.Errorf("Stats = %+v, want a last error and nothing committed", st)
	}
	t.Logf("put %d in %v: %+v", total, took, st)
}

package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// damagedFixture writes n fixtures to a new database and returns its path,
// the incidents and the leaf pages of the incidents bucket with the ids
// each holds, in key order.
func damagedFixture(t *testing.T, n int) (string, []rules.Incident, []leafPage) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	all := fixtures(baseTime, n)
	putAll(t, s, all)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var leaves []leafPage
	err = db.View(func(tx *bolt.Tx) error {
		r, err := openRawTree(tx)
		if err != nil {
			return err
		}
		defer r.close()
		leaves = collectLeaves(t, r, uint64(tx.Bucket(bucketIncidents).Root()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) < 5 {
		t.Fatalf("only %d leaf pages", len(leaves))
	}
	return path, all, leaves
}

type leafPage struct {
	id  uint64
	ids []rules.ID
}

// collectLeaves lists the leaf pages under page id, in key order.
func collectLeaves(t *testing.T, r *rawTree, id uint64) []leafPage {
	p, ok := r.page(id)
	if !ok {
		t.Fatalf("page %d unreadable in a sound file", id)
	}
	p = bytes.Clone(p)
	count := int(native.Uint16(p[10:]))
	var out []leafPage
	if native.Uint16(p[8:]) == branchFlag {
		for i := range count {
			_, _, _, child, _ := element(p, i, true)
			out = append(out, collectLeaves(t, r, child)...)
		}
		return out
	}
	lp := leafPage{id: id}
	for i := range count {
		_, k, _, _, _ := element(p, i, false)
		lp.ids = append(lp.ids, idFromKey(k))
	}
	return append(out, lp)
}

// without returns the ids of all that are not in drop, newest first.
func without(all []rules.Incident, q api.Query, drop []rules.ID) []rules.ID {
	var keep []rules.Incident
	for _, inc := range all {
		if !slices.Contains(drop, inc.ID) {
			keep = append(keep, inc)
		}
	}
	return bruteQuery(keep, q)
}

// TestDamagedRecordIsSkipped garbles one incident record's bytes: before,
// every query, export and replay that reached it failed as a whole. Now
// each returns every other incident and a *DamagedError counting one.
func TestDamagedRecordIsSkipped(t *testing.T) {
	path, all, _ := damagedFixture(t, 3000)
	victim := all[1234]
	s, err := Open(path, Options{RetentionAge: -1, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var rec []byte
	_ = s.view(func(tx *bolt.Tx) error {
		rec = bytes.Clone(tx.Bucket(bucketIncidents).Get(victim.ID.Bytes()))
		return nil
	})
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, rec)
	if at < 0 || bytes.Index(b[at+1:], rec) >= 0 {
		t.Fatal("the record's bytes are not unique in the file")
	}
	b[at], b[at+1] = 0x07, 0x00 // field 0 with wire type 7: invalid
	write(t, path, b)

	s, err = Open(path, Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	drop := []rules.ID{victim.ID}
	for _, q := range []api.Query{{}, {MinSeverity: victim.Severity}, {Rule: victim.Rule, Limit: 2000}} {
		got, err := s.Query(q)
		var d *DamagedError
		if !errors.As(err, &d) || d.Skipped() != 1 || !errors.Is(err, ErrDamaged) {
			t.Errorf("%+v: err %v, want a DamagedError skipping 1", q, err)
		}
		if want := without(all, q, drop); !slices.Equal(idsOf(got), want) {
			t.Errorf("%+v: %d incidents, want the other %d", q, len(got), len(want))
		}
	}
	var out bytes.Buffer
	n, err := s.Export(api.Query{}, FormatJSON, &out, nil)
	var exported []rules.Incident
	if jerr := json.Unmarshal(out.Bytes(), &exported); jerr != nil || n != len(all)-1 || len(exported) != n || !errors.Is(err, ErrDamaged) {
		t.Errorf("export: %d written, %d parsed (%v), err %v", n, len(exported), jerr, err)
	}
	replayed := 0
	if err := s.After(0, func(*rules.Incident) error { replayed++; return nil }); err != nil || replayed != len(all)-1 {
		t.Errorf("After(0): %d, %v", replayed, err)
	}
	if s.Stats().Unreadable == 0 {
		t.Error("Stats().Unreadable did not count the skipped record")
	}
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "1 unreadable") {
		t.Errorf("Check: %v", err)
	} else if st := s.Status(); st.CheckError == "" {
		t.Error("Status() lacks the check's finding")
	}
}

// TestDamagedPageFailsOnlyWhatItHolds overwrites one leaf page of the
// incidents in the middle of the file. Before, every read that reached it
// failed whole ("corrupt page"); now reads return every incident on the
// other pages, with a *DamagedError counting what the page held, and
// reads that never reach it succeed. Both a page garbled whole (bbolt
// panics on its header) and one with a sound header but garbage elements
// (bbolt would follow their offsets) are tried.
func TestDamagedPageFailsOnlyWhatItHolds(t *testing.T) {
	for _, keepHeader := range []bool{false, true} {
		t.Run(map[bool]string{false: "garbled page", true: "garbled elements"}[keepHeader], func(t *testing.T) {
			path, all, leaves := damagedFixture(t, 6000)
			victim := leaves[len(leaves)/2]
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			const pageSize = 4096
			r := rand.New(rand.NewPCG(7, uint64(len(victim.ids))))
			from := int(victim.id) * pageSize
			if keepHeader {
				from += pageHeaderSize
			}
			for i := from; i < int(victim.id+1)*pageSize; i++ {
				b[i] = byte(r.UintN(256))
			}
			write(t, path, b)

			s, err := Open(path, Options{RetentionAge: -1, RetentionCount: -1, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
			for _, q := range []api.Query{{}, {MinSeverity: rules.SeverityHigh}, {Rule: "network-tools"}} {
				got, err := s.Query(q)
				var d *DamagedError
				if !errors.As(err, &d) || (!keepHeader && d.Pages == 0) {
					t.Errorf("%+v: err %v, want a DamagedError (with a damaged page when the header is garbled)", q, err)
				}
				if q == (api.Query{}) && (d == nil || d.Skipped() != len(victim.ids)) {
					t.Errorf("unfiltered read: %v, want %d skipped", err, len(victim.ids))
				}
				if want := without(all, q, victim.ids); !slices.Equal(idsOf(got), want) {
					t.Errorf("%+v: %d incidents, want the %d on sound pages", q, len(got), len(want))
				}
			}
			// The newest 100 live on sound pages: no damage to report.
			if got, err := s.Query(api.Query{Limit: 100}); err != nil || len(got) != 100 {
				t.Errorf("newest 100: %d, %v", len(got), err)
			}
			var out bytes.Buffer
			n, err := s.Export(api.Query{}, FormatNDJSON, &out, nil)
			if lines := strings.Count(out.String(), "\n"); n != len(all)-len(victim.ids) || lines != n || !errors.Is(err, ErrDamaged) {
				t.Errorf("export: %d written, %d lines, err %v; want %d", n, lines, err, len(all)-len(victim.ids))
			}
			if err := s.Check(); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// branchPages lists the branch pages under page id.
func branchPages(t *testing.T, r *rawTree, id uint64) []uint64 {
	p, ok := r.page(id)
	if !ok || native.Uint16(p[8:]) != branchFlag {
		return nil
	}
	p = bytes.Clone(p)
	out := []uint64{id}
	for i := range int(native.Uint16(p[10:])) {
		_, _, _, child, _ := element(p, i, true)
		out = append(out, branchPages(t, r, child)...)
	}
	return out
}

// TestDamagedPagesNeverLoseSilently garbles a random stretch of a random
// page of the incidents' tree (leaf or branch), many times over, and
// checks that reads never crash, never return an incident twice or one
// that was not stored, and never return fewer than all without saying so.
func TestDamagedPagesNeverLoseSilently(t *testing.T) {
	path, all, leaves := damagedFixture(t, 4000)
	var branches []uint64
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		r, err := openRawTree(tx)
		if err != nil {
			return err
		}
		defer r.close()
		branches = branchPages(t, r, uint64(tx.Bucket(bucketIncidents).Root()))
		return nil
	})
	db.Close()
	pristine, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[rules.ID]bool{}
	for _, inc := range all {
		stored[inc.ID] = true
	}
	rounds := 40
	if testing.Short() {
		rounds = 8
	}
	for seed := range rounds {
		r := rand.New(rand.NewPCG(uint64(seed), 99))
		page := leaves[r.IntN(len(leaves))].id
		if seed%4 == 0 && len(branches) > 0 {
			page = branches[r.IntN(len(branches))]
		}
		b := bytes.Clone(pristine)
		from := int(page)*4096 + r.IntN(4096)
		to := min(from+1+r.IntN(600), int(page+1)*4096)
		for i := from; i < to; i++ {
			b[i] = byte(r.UintN(256))
		}
		write(t, path, b)
		s, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			t.Logf("seed %d: open: %v", seed, err) // damage the open itself sees is refused whole
			continue
		}
		for _, q := range []api.Query{{}, {MinSeverity: rules.SeverityHigh}} {
			got, err := s.Query(q)
			seen := map[rules.ID]bool{}
			for _, inc := range got {
				if !stored[inc.ID] || seen[inc.ID] {
					t.Errorf("seed %d page %d, %+v: returned %s, never stored or twice", seed, page, q, inc.ID)
				}
				seen[inc.ID] = true
			}
			if want := bruteQuery(all, q); len(got) < len(want) && err == nil {
				t.Errorf("seed %d page %d, %+v: %d of %d returned without an error", seed, page, q, len(got), len(want))
			}
		}
		n, err := s.Export(api.Query{}, FormatNDJSON, io.Discard, nil)
		if n < len(all) && err == nil {
			t.Errorf("seed %d: export wrote %d of %d without an error", seed, n, len(all))
		}
		_ = s.Check()
		s.Close()
	}
}

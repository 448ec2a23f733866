package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

func TestOpenRefusesForeignFiles(t *testing.T) {
	random := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.UintN(256))
	}
	cases := []struct {
		name    string
		content func(t *testing.T, path string)
		want    error
	}{
		{"random bytes", func(t *testing.T, p string) { write(t, p, random) }, ErrNotProcwatch},
		{"text file", func(t *testing.T, p string) { write(t, p, []byte("# my notes\nimportant\n")) }, ErrNotProcwatch},
		{"one byte", func(t *testing.T, p string) { write(t, p, []byte{0}) }, ErrNotProcwatch},
		{"another program's bbolt file", func(t *testing.T, p string) {
			makeBolt(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("sessions"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
		}, ErrNotProcwatch},
		{"wrong magic", func(t *testing.T, p string) {
			makeBolt(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyMagic, []byte("someone else"))
			})
		}, ErrNotProcwatch},
		{"corrupt procwatch database", func(t *testing.T, p string) {
			src := filepath.Join(t.TempDir(), "ok.db")
			s, err := Open(src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			// Damage both meta pages (the first two pages).
			copy(b[16:64], random)
			copy(b[4096+16:4096+64], random)
			write(t, p, b)
		}, ErrNotProcwatch},
		{"newer schema", func(t *testing.T, p string) {
			makeBolt(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				if err := b.Put(keyMagic, magic); err != nil {
					return err
				}
				return b.Put(keyVersion, binary.BigEndian.AppendUint32(nil, schemaVersion+1))
			})
		}, ErrSchemaTooNew},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "procwatch.db")
			c.content(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			infoBefore, _ := os.Stat(path)
			for _, ro := range []bool{false, true} {
				s, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					s.Close()
					t.Fatalf("read-only %v: Open succeeded", ro)
				}
				if !errors.Is(err, c.want) {
					t.Errorf("read-only %v: %v, want %v", ro, err, c.want)
				}
				if !strings.Contains(err.Error(), path) || strings.Count(err.Error(), "\n") > 0 {
					t.Errorf("read-only %v: error should be one line naming the file: %q", ro, err)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			infoAfter, _ := os.Stat(path)
			if !bytes.Equal(before, after) || infoBefore.Mode() != infoAfter.Mode() {
				t.Error("the file was changed")
			}
		})
	}
}

func TestOpenRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrNotProcwatch) {
		t.Errorf("Open(directory) = %v", err)
	}
}

func TestOpenTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %o after open, want 600", info.Mode().Perm())
	}
}

func TestOpenEmptyFileStartsNewDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	write(t, path, nil)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open of an empty file: %v", err)
	}
	s.Close()
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func makeBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFromV1 writes a schema 1 database by hand (incidents as JSON
// documents, no indexes or counters) and checks that opening it converts
// every incident, exact bytes included, and builds what queries need.
func TestMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	incs := fixtures(baseTime, 300)
	incs[7].Process.Exe = "/tmp/\xff\xfeodd"
	incs[7].Process.Args = []event.Text{"\x80", "x"}
	incs[9].Status = rules.StatusAcknowledged
	skip := rules.Skip{ID: "1", Kind: rules.SkipCommand, Value: "nc", Source: rules.SourceAdded, AddedAt: baseTime}
	makeBolt(t, path, func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		_ = meta.Put(keyMagic, magic)
		_ = meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, 1))
		b, _ := tx.CreateBucket(bucketIncidents)
		for _, inc := range incs {
			doc, err := json.Marshal(inc)
			if err != nil {
				return err
			}
			if err := b.Put(inc.ID.Bytes(), doc); err != nil {
				return err
			}
		}
		sk, _ := tx.CreateBucket(bucketSkips)
		_, _ = sk.NextSequence()
		raw, _ := json.Marshal(skip)
		_ = sk.Put(binary.BigEndian.AppendUint64(nil, 1), raw)
		settings, _ := tx.CreateBucket(bucketSettings)
		return settings.Put(keyMonitoring, []byte{0})
	})
	// A reader cannot migrate and says so.
	if _, err := Open(path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "procwatch agent") {
		t.Errorf("read-only open of schema 1: %v", err)
	}

	s, err := Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatalf("Open schema 1: %v", err)
	}
	defer s.Close()
	err = s.view(func(tx *bolt.Tx) error {
		v := binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyVersion))
		if v != schemaVersion {
			t.Errorf("schema version %d after migration, want %d", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []rules.Incident{incs[0], incs[7], incs[9], incs[299]} {
		got, ok, err := s.Get(want.ID)
		if err != nil || !ok {
			t.Fatalf("Get %s: %v %v", want.ID, ok, err)
		}
		sameIncident(t, got, want)
	}
	if got, _ := s.Query(api.Query{MinSeverity: rules.SeverityCritical}); len(got) != 60 {
		t.Errorf("critical incidents after migration: %d, want 60", len(got))
	}
	open, _ := s.OpenBySeverity()
	if open["info"] != 60 || open["critical"] != 59 { // incs[9] (critical) was acknowledged
		t.Errorf("OpenBySeverity after migration: %v", open)
	}
	noise, _ := s.Noise(time.Time{}, 0)
	if len(noise.Commands) == 0 {
		t.Error("no noise counters after migration")
	}
	checkCounters(t, s)
	if skips, _ := s.Skips(); len(skips) != 1 || skips[0].Value != "nc" {
		t.Errorf("skips after migration: %v", skips)
	}
	if on, _ := s.Monitoring(); on {
		t.Error("monitoring setting lost in migration")
	}
	// New skips continue the old sequence.
	sk, _, err := s.AddSkip(rules.Skip{Kind: rules.SkipPath, Value: "/usr/bin/wget"}, func(*rules.Incident) bool { return false })
	if err != nil || sk.ID != "2" {
		t.Errorf("AddSkip after migration: %+v, %v", sk, err)
	}
}

// TestDamagedPagesGiveErrors overwrites the middle of every data page and
// checks that opening and reading report errors instead of crashing.
func TestDamagedPagesGiveErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	putAll(t, s, fixtures(baseTime, 2000))
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for page := 2; (page+1)*4096 <= len(b); page++ {
		for i := page*4096 + 8; i < page*4096+200; i++ {
			b[i] = byte(r.UintN(256))
		}
	}
	write(t, path, b)

	s, err = Open(path, Options{RetentionAge: -1})
	if err != nil {
		t.Logf("Open: %v", err)
		if !errors.Is(err, ErrNotProcwatch) {
			t.Errorf("Open of a damaged file: %v, want ErrNotProcwatch", err)
		}
		return
	}
	defer s.Close()
	var errs []error
	_, err = s.Query(api.Query{})
	errs = append(errs, err)
	_, err = s.Noise(time.Time{}, 10)
	errs = append(errs, err)
	_, err = s.Export(api.Query{}, FormatNDJSON, &bytes.Buffer{}, nil)
	errs = append(errs, err)
	if errors.Join(errs...) == nil {
		t.Error("every read of a damaged file succeeded")
	}
	t.Logf("errors: %v", errors.Join(errs...))
}

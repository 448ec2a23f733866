package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// readOnlyView bind-mounts dir read-only on a new directory (root only:
// root ignores file modes, so a read-only mount is the way to deny it
// writes) and unmounts it at the end of the test.
func readOnlyView(t *testing.T, dir string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a read-only bind mount needs root (CI runs the suite as root)")
	}
	ro := t.TempDir()
	if err := syscall.Mount(dir, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(ro, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", ro, err)
		}
	})
	if err := syscall.Mount("", ro, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	return ro
}

// TestReadOnlyFilesystemFallsBack: a database on a read-only filesystem
// cannot be opened for writing (EROFS, even as root); with
// ReadOnlyFallback, as offline commands open it, it is opened read-only
// instead, answers every read, refuses changes with ErrReadOnly and says
// so in Status. A schema 2 file there is read as it is.
func TestReadOnlyFilesystemFallsBack(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "p.db"), Options{RetentionAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	all := fixtures(baseTime, 300)
	putAll(t, s, all)
	s.Close()
	ro := readOnlyView(t, dir)
	path := filepath.Join(ro, "p.db")

	if _, err := Open(path, Options{RetentionAge: -1, RetentionCount: -1}); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("read-write open on a read-only filesystem: %v, want EROFS", err)
	}
	for _, v2 := range []bool{false, true} {
		if v2 {
			makeV2(t, filepath.Join(dir, "p.db"))
		}
		s, err := Open(path, Options{RetentionAge: -1, RetentionCount: -1, ReadOnlyFallback: true})
		if err != nil {
			t.Fatalf("fallback open (schema 2: %v): %v", v2, err)
		}
		for _, q := range []api.Query{{}, {MinSeverity: rules.SeverityHigh}} {
			got, err := s.Query(q)
			if err != nil || !slices.Equal(idsOf(got), bruteQuery(all, q)) {
				t.Errorf("schema 2 %v, %+v: %d incidents, %v", v2, q, len(got), err)
			}
		}
		if st := s.Status(); !st.ReadOnly || st.Incidents != len(all) {
			t.Errorf("status: %+v", st)
		}
		if err := s.SetStatus([]rules.ID{all[0].ID}, rules.StatusAcknowledged); !errors.Is(err, ErrReadOnly) {
			t.Errorf("SetStatus on a read-only database: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
}

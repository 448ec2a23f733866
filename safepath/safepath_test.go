package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

// tree builds root/<name> directories with the given owner and mode.
func mkdir(t *testing.T, path string, uid int, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give directories to uid 65534")
	}
	base := t.TempDir()
	users := mkdir(t, filepath.Join(base, "users"), 0, 0o755)
	theirs := mkdir(t, filepath.Join(base, "theirs"), nobody, 0o755)
	mkdir(t, filepath.Join(theirs, "run"), 0, 0o700)
	open := mkdir(t, filepath.Join(base, "open"), 0, 0o777)
	sticky := mkdir(t, filepath.Join(base, "sticky"), 0, os.ModeSticky|0o777)
	mkdir(t, filepath.Join(sticky, "ours"), 0, 0o700)
	mkdir(t, filepath.Join(sticky, "planted"), nobody, 0o700)
	grp := mkdir(t, filepath.Join(base, "grp"), 0, 0o770)
	os.Chown(grp, 0, 100)
	ok := mkdir(t, filepath.Join(users, "ok"), 0, 0o700)
	// A link planted by uid 65534 in the world-writable directory,
	// pointing at a good directory; and a root-owned link like /var/run.
	evil := filepath.Join(open, "link")
	os.Symlink(ok, evil)
	os.Lchown(evil, nobody, nobody)
	rootLink := filepath.Join(users, "rootlink")
	os.Symlink(ok, rootLink)
	nobodyLink := filepath.Join(users, "nobodylink")
	os.Symlink(ok, nobodyLink)
	os.Lchown(nobodyLink, nobody, nobody)

	tests := []struct {
		name     string
		dir      string
		allowGID int
		want     string // "" for trusted
	}{
		{"root-owned chain", ok, NoGroup, ""},
		{"missing tail is left to create", filepath.Join(ok, "a", "b"), NoGroup, ""},
		{"owned by uid 65534", filepath.Join(theirs, "run"), NoGroup, "owned by uid 65534"},
		{"world-writable", filepath.Join(open, "x"), NoGroup, "writable by others"},
		{"sticky with our directory", filepath.Join(sticky, "ours"), NoGroup, ""},
		{"sticky with a planted directory", filepath.Join(sticky, "planted"), NoGroup, "owned by uid 65534"},
		{"group-writable", grp, NoGroup, "writable by group 100"},
		{"group-writable by the socket group", grp, 100, ""},
		{"root's symlink to a good directory", rootLink, NoGroup, ""},
		{"symlink owned by uid 65534", nobodyLink, NoGroup, "symbolic link owned by uid 65534"},
		{"through a world-writable directory", filepath.Join(evil, "sub"), NoGroup, "writable by others"},
		{"default socket directory", "/run/procwatch", NoGroup, ""},
		{"default database directory", "/var/lib/procwatch", NoGroup, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDir(tt.dir, tt.allowGID)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckDir(%s) = %v, want trusted", tt.dir, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckDir(%s) = %v, want %q", tt.dir, err, tt.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestOpenFileRefusesALink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "shadow")
	os.WriteFile(target, []byte("secret"), 0o600)
	link := filepath.Join(dir, "out")
	os.Symlink(target, link)
	if _, err := OpenFile(link, os.O_WRONLY|os.O_APPEND, 0o600); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("OpenFile through a link: %v", err)
	}
	if _, err := CreateOutput(link); err == nil {
		t.Error("CreateOutput wrote through a link")
	}
	if b, _ := os.ReadFile(target); string(b) != "secret" {
		t.Errorf("target changed: %q", b)
	}
}

func TestCreateOutput(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(dir, "new.ndjson")
	f, err := CreateOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("created %v, want 0600", fi.Mode().Perm())
	}
	wide := filepath.Join(dir, "wide.ndjson")
	os.WriteFile(wide, nil, 0o644)
	if f, err = CreateOutput(wide); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(wide); fi.Mode().Perm() != 0o600 {
		t.Errorf("existing 0644 file left %v, want 0600", fi.Mode().Perm())
	}
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o600)
	if _, err := CreateOutput(fifo); err == nil {
		t.Error("CreateOutput accepted a FIFO")
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(dir, "theirs.ndjson")
		os.WriteFile(theirs, nil, 0o600)
		os.Chown(theirs, nobody, nobody)
		var ue *UntrustedError
		if _, err := CreateOutput(theirs); !errors.As(err, &ue) {
			t.Errorf("file of uid 65534: %v, want refused", err)
		}
	}
}

func TestCheckFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to uid 65534")
	}
	dir := t.TempDir()
	write := func(name string, uid int, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("version: 1\n"), mode)
		os.Chmod(p, mode)
		os.Chown(p, uid, uid)
		return p
	}
	good := write("rules.yaml", 0, 0o644)
	theirs := write("theirs.yaml", nobody, 0o644)
	open := write("open.yaml", 0, 0o666)
	link := filepath.Join(dir, "link.yaml")
	os.Symlink(good, link)
	badLink := filepath.Join(dir, "badlink.yaml")
	os.Symlink(good, badLink)
	os.Lchown(badLink, nobody, nobody)
	toTheirs := filepath.Join(dir, "to-theirs.yaml")
	os.Symlink("theirs.yaml", toTheirs)
	for _, tt := range []struct {
		path, want string
	}{
		{good, ""},
		{link, ""},
		{theirs, "owned by uid 65534"},
		{open, "writable by group or others"},
		{badLink, "owned by uid 65534"},
		{toTheirs, "owned by uid 65534"},
	} {
		err := CheckFile(tt.path)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckFile(%s) = %v, want %q", filepath.Base(tt.path), err, tt.want)
		}
	}
}

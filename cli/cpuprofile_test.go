package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentCPUProfile runs the agent with --cpuprofile and checks that it
// leaves a gzip-compressed pprof profile, mode 0600, once stopped, and that
// a symbolic link at the path is refused rather than followed.
func TestAgentCPUProfile(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	prof := filepath.Join(e.dir, "agent.pprof")
	stop := startAgent(t, e, "--cpuprofile", prof)
	src.emit(t, tmpExec("/tmp/profiled", "a"))
	waitIncidents(t, e, 1)
	if err, logs := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, logs)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("--cpuprofile wrote %d bytes that are not a gzip-compressed profile", len(b))
	}
	if fi, err := os.Stat(prof); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("profile mode %v, want 0600 (%v)", fi.Mode(), err)
	}

	target := filepath.Join(e.dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	link := filepath.Join(e.dir, "link.pprof")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "", e.args("agent", "--cpuprofile", link)...)
	if code != 1 || !strings.Contains(errOut, "symbolic link") {
		t.Fatalf("--cpuprofile at a symlink: exit %d, %q", code, errOut)
	}
	if got, _ := os.ReadFile(target); string(got) != "keep" {
		t.Fatalf("the symlink's target was written: %q", got)
	}
}

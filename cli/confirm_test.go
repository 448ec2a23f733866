package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildProcwatch builds the procwatch binary once per test run, for tests
// that need a real executable (a pseudo-terminal, shell completion).
func buildProcwatch(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "procwatch-cli-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "procwatch")
		if out, err := exec.Command("go", "build", "-o", builtBin, "..").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// TestSkipAddAsksOnTerminal runs the real binary on a pseudo-terminal
// (util-linux script): a skip that masks more than 100 open incidents asks
// first, and only a yes adds it.
func TestSkipAddAsksOnTerminal(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script (util-linux) is needed for a pseudo-terminal: %v", err)
	}
	bin := buildProcwatch(t)
	e := newTestEnv(t)
	storeIncidents(t, e, "/tmp/build/conftest", 101)
	cmdline := strings.Join(append([]string{bin}, e.args("skip", "add", "--rule", "tmp-exec", "path", "/tmp/build")...), " ")
	onTerminal := func(answer string) (string, int) {
		c := exec.Command(scriptBin, "-qec", cmdline, "/dev/null")
		c.Stdin = strings.NewReader(answer)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	out, code := onTerminal("n\n")
	if code != 1 || !strings.Contains(out, "Mask 101 open incidents with skip path /tmp/build for rule tmp-exec? [y/N]") ||
		!strings.Contains(out, "warning: covers every binary under /tmp/build") || !strings.Contains(out, "not confirmed; nothing added") {
		t.Fatalf("answer n: exit %d\n%s", code, out)
	}
	if s := listSkips(t, e); len(s) != 0 {
		t.Fatalf("stored after a no: %+v", s)
	}
	out, code = onTerminal("y\n")
	if code != 0 || !strings.Contains(out, "masked 101 open incidents") {
		t.Fatalf("answer y: exit %d\n%s", code, out)
	}
}

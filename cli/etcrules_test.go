package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/rules"
)

// TestSystemRulesDefault: without --rules, rules check reads the system
// file when it exists (here a broken one, so the choice shows), and the
// built-in rules when it does not; --rules still wins.
func TestSystemRulesDefault(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "rules.yaml")
	old := systemRulesPath
	systemRulesPath = sys
	oldYAML := rules.DefaultYAML
	rules.DefaultYAML = rulesYAML(t)
	t.Cleanup(func() { systemRulesPath, rules.DefaultYAML = old, oldYAML })

	run := func(args ...string) (int, string) {
		root := NewRoot()
		var out, errb bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errb)
		root.SetArgs(args)
		code := execute(root, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("rules", "check"); code != 0 || strings.Contains(out, sys) {
		t.Fatalf("no system file: exit %d, %s", code, out)
	}
	if err := os.WriteFile(sys, []byte("version: 1\nrules: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := run("rules", "check"); code == 0 || !strings.Contains(out, sys) {
		t.Fatalf("broken system file: exit %d, %s; want a failure naming %s", code, out, sys)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, rulesYAML(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := run("--rules", good, "rules", "check"); code != 0 {
		t.Fatalf("--rules given: exit %d, %s", code, out)
	}
}

func rulesYAML(t *testing.T) []byte {
	b, err := os.ReadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

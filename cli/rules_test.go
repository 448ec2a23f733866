package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/rules"
)

var updateGolden = flag.Bool("update-rules", false, "rewrite the rules command golden files in testdata")

// runCLI runs procwatch with args as Main would and returns its output and
// exit code. The built-in rules are the repository's rules.yaml.
// repoRules is the repository's rules.yaml, found while the working
// directory is still the package's (a test may change it).
var repoRules, _ = filepath.Abs("../rules.yaml")

func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	data, err := os.ReadFile(repoRules)
	if err != nil {
		t.Fatal(err)
	}
	old := rules.DefaultYAML
	rules.DefaultYAML = data
	defer func() { rules.DefaultYAML = old }()
	var out, errOut bytes.Buffer
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	code = execute(root, &errOut)
	return out.String(), errOut.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update-rules after checking):\n%s", path, got)
	}
}

func TestRulesCheck(t *testing.T) {
	out, errOut, code := runCLI(t, "", "rules", "check")
	if code != 0 || out != "rules.yaml (built in): ok: 5 rules (bin-execution 3, root-escalation 1, termination-failure 1), 7 skips\n" || errOut != "" {
		t.Errorf("built-in: code %d\n%s%s", code, out, errOut)
	}
	out, _, code = runCLI(t, "", "rules", "check", "../rules.yaml")
	if code != 0 || !strings.HasPrefix(out, "../rules.yaml: ok: 5 rules") {
		t.Errorf("path: code %d %s", code, out)
	}
	out, _, code = runCLI(t, "", "--rules", "../rules/testdata/deepfence.golden.yaml", "rules", "check")
	if code != 0 || !strings.HasPrefix(out, "../rules/testdata/deepfence.golden.yaml: ok: 4 rules") {
		t.Errorf("--rules: code %d %s", code, out)
	}

	out, errOut, code = runCLI(t, "", "rules", "check", "testdata/bad-rules.yaml")
	if code != 1 || out != "" {
		t.Errorf("bad file: code %d, stdout %q", code, out)
	}
	golden(t, "rules-check-bad.golden", errOut)

	_, errOut, code = runCLI(t, "", "rules", "check", "testdata/missing.yaml")
	if code != 1 || !strings.Contains(errOut, "read rules file: open testdata/missing.yaml: no such file or directory") {
		t.Errorf("missing file: code %d %s", code, errOut)
	}
}

func TestRulesTest(t *testing.T) {
	capture := "../rules/testdata/capture.ndjson"
	out, errOut, code := runCLI(t, "", "rules", "test", "--passwd", "testdata/passwd", capture)
	if code != 1 {
		t.Errorf("exit code %d, want 1 for a capture with malformed lines", code)
	}
	golden(t, "rules-test.golden", out+"--- stderr\n"+errOut)

	// The same through stdin, in JSON, with dedup off.
	data, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, _ = runCLI(t, string(data), "rules", "test", "--passwd", "testdata/passwd", "--json", "--dedup-window", "0", "-")
	var incidents []rules.Incident
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var inc rules.Incident
		if err := json.Unmarshal([]byte(line), &inc); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		incidents = append(incidents, inc)
	}
	if len(incidents) != 7 || incidents[0].Count != 1 || incidents[1].Count != 1 || incidents[0].ID == incidents[1].ID {
		t.Errorf("without dedup: %d incidents, want 7 each counted once", len(incidents))
	}
	// Exact bytes survive the JSON round trip.
	if got := incidents[5].Process.Exe; got != "/dev/shm/\x1b[31mred\xff" {
		t.Errorf("exe bytes %q", got)
	}
	if !strings.Contains(errOut, "stdin:10: not a JSON event") || !strings.Contains(errOut, "RULE") {
		t.Errorf("stderr:\n%s", errOut)
	}

	// A clean capture exits 0.
	clean := strings.Join(strings.Split(string(data), "\n")[:8], "\n")
	_, errOut, code = runCLI(t, clean, "rules", "test", "--passwd", "testdata/passwd", "-")
	if code != 0 {
		t.Errorf("clean capture: code %d %s", code, errOut)
	}

	// Broken rules stop the replay with one line.
	_, errOut, code = runCLI(t, clean, "--rules", "testdata/bad-rules.yaml", "rules", "test", "-")
	if code != 1 || !strings.Contains(errOut, "rules file has 7 problems, first: testdata/bad-rules.yaml:3:3:") {
		t.Errorf("bad rules: code %d %s", code, errOut)
	}
}

func TestRulesImportDeepfence(t *testing.T) {
	in := "../rules/testdata/deepfence.json"
	want, err := os.ReadFile("../rules/testdata/deepfence.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "", "rules", "import-deepfence", in)
	if code != 0 || out != string(want) {
		t.Errorf("stdout: code %d %s\n%s", code, errOut, out)
	}

	path := filepath.Join(t.TempDir(), "rules.yaml")
	_, errOut, code = runCLI(t, "", "rules", "import-deepfence", in, "-o", path)
	if code != 0 {
		t.Fatalf("-o: code %d %s", code, errOut)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("output file: %v mode %v, want 0600", err, st.Mode().Perm())
	}
	_, errOut, code = runCLI(t, "", "rules", "import-deepfence", in, "-o", path)
	if code != 1 || !strings.Contains(errOut, "exists; pass --force") {
		t.Errorf("overwrite: code %d %s", code, errOut)
	}
	if _, _, code = runCLI(t, "", "rules", "import-deepfence", in, "-o", path, "--force"); code != 0 {
		t.Errorf("--force: code %d", code)
	}
	out, _, code = runCLI(t, "", "--rules", path, "rules", "check")
	if code != 0 || !strings.Contains(out, "ok: 4 rules") {
		t.Errorf("imported file does not check: %s", out)
	}

	_, errOut, code = runCLI(t, "", "rules", "import-deepfence", "testdata/passwd")
	if code != 1 || !strings.Contains(errOut, "deepfence config: invalid character") {
		t.Errorf("not JSON: code %d %s", code, errOut)
	}
}

func TestRulesList(t *testing.T) {
	out, _, code := runCLI(t, "", "rules", "list")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	golden(t, "rules-list.golden", out)
}

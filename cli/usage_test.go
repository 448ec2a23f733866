package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrorsSayWhatToDo: mistyped commands and flags get "did you
// mean", bad values name the flag and what it accepts (never strconv's
// words), and missing arguments are named, each on one line with exit 2.
func TestUsageErrorsSayWhatToDo(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"incdents"}, `unknown command "incdents" for "procwatch"; did you mean "incidents"?`},
		{[]string{"skip", "lsit"}, `did you mean "list"?`},
		{[]string{"rules", "chek"}, `did you mean "check"?`},
		{[]string{"incidents", "--limt", "3"}, "unknown flag: --limt; did you mean --limit?"},
		{[]string{"incidents", "--limit", "abc"}, `--limit "abc": want a whole number`},
		{[]string{"incidents", "--json=maybe"}, `--json "maybe": want true or false`},
		{[]string{"events", "--ring-buffer-mib", "lots"}, `--ring-buffer-mib "lots": want a whole number`},
		{[]string{"rules", "test", "x", "--dedup-window", "soon"}, `--dedup-window "soon": want a duration such as 30s`},
		{[]string{"export", "--format"}, "--format needs a value: json (one array) or ndjson"},
		{[]string{"incidents", "--severity", "bogus"}, "--severity \"bogus\": want info, low, medium, high or critical"},
		{[]string{"skip", "rm"}, "skip rm: missing arguments; usage: procwatch skip rm ID"},
		{[]string{"rules", "check", "a", "b"}, "rules check: too many arguments (2); usage: procwatch rules check [PATH]"},
		{[]string{"monitor", "status", "now"}, `monitor status takes no arguments (got "now")`},
		{[]string{"completion", "tcsh"}, `unknown command "tcsh" for "procwatch completion" (want bash, fish, powershell, zsh)`},
		{[]string{"skip", "ad"}, `(want add, list, rm, suggest); did you mean "add"?`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, "", e.args(tc.args...)...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit 2 and one line with %q", code, out, errOut, tc.want)
			}
			if strings.Contains(errOut, "strconv") || strings.Contains(errOut, "arg(s)") {
				t.Errorf("raw parser wording: %q", errOut)
			}
		})
	}
}

// complete runs cobra's hidden __complete as the shell scripts do and
// returns the candidates (without descriptions) and the directive line.
func complete(t *testing.T, e testEnv, args ...string) []string {
	t.Helper()
	out, errOut, code := runCLI(t, "", append([]string{"__complete"}, e.args(args...)...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", args, code, errOut)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, ":") {
			continue
		}
		got = append(got, strings.SplitN(l, "\t", 2)[0])
	}
	return got
}

func TestCompletionOfFlagValues(t *testing.T) {
	e := newTestEnv(t)
	hostsFile := filepath.Join(e.dir, "hosts.yaml")
	if err := os.WriteFile(hostsFile, []byte("hosts:\n  - name: web1\n    command: ssh web1 sudo procwatch serve --stdio\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	storeIncidents(t, e, "/tmp/x", 1)
	mustRun(t, e, "skip", "add", "--rule", "tmp-exec", "path", "/tmp/x")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"incidents", "--severity", ""}, []string{"info", "low", "medium", "high", "critical"}},
		{[]string{"export", "--status", ""}, []string{"open", "acknowledged", "masked"}},
		{[]string{"incidents", "--type", ""}, []string{"bin-execution", "root-escalation", "termination-failure"}},
		{[]string{"export", "--format", ""}, []string{"json", "ndjson"}},
		{[]string{"incidents", "--rule", ""}, []string{"tmp-exec"}},
		{[]string{"skip", "add", "--rule", ""}, []string{"tmp-exec"}},
		{[]string{"--hosts-file", hostsFile, "--host", ""}, []string{"web1="}},
		{[]string{"skip", "rm", ""}, []string{"1", "command", "path", "user"}},
		{[]string{"skip", "add", ""}, []string{"command", "path", "user"}},
	}
	for _, tc := range tests {
		if got := complete(t, e, tc.args...); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("complete %v = %q, want %q", tc.args, got, tc.want)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out := mustRun(t, e, "completion", shell)
		if !strings.Contains(out, "__complete") {
			t.Errorf("completion %s does not call __complete:\n%.200s", shell, out)
		}
	}
}

// TestBashCompletionScript sources the script `procwatch completion bash`
// prints into a real bash and completes as the shell would on TAB (the
// bash-completion helpers it calls, when that package is missing, are
// stood in for by their minimal meaning).
func TestBashCompletionScript(t *testing.T) {
	bashBin, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	bin := buildProcwatch(t)
	e := newTestEnv(t)
	script := mustRun(t, e, "completion", "bash")
	scriptFile := filepath.Join(e.dir, "procwatch.bash")
	if err := os.WriteFile(scriptFile, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		prog := `type _get_comp_words_by_ref >/dev/null 2>&1 || _get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
compopt() { :; }
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
__start_procwatch
printf '%s\n' "${COMPREPLY[@]}"`
		c := exec.Command(bashBin, append([]string{"-c", prog, "bash", scriptFile}, words...)...)
		c.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		out, err := c.Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v", words, err)
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"procwatch", "incid"}, "incidents"},
		{[]string{"procwatch", "incidents", "--severity", "cr"}, "critical"},
		{[]string{"procwatch", "export", "--format", "nd"}, "ndjson"},
		{[]string{"procwatch", "--rules", e.rules, "--socket", e.sock, "--db", e.db, "skip", "add", "--rule", "tmp"}, "tmp-exec"},
		{[]string{"procwatch", "skip", "add", "pa"}, "path"},
	} {
		if got := complete(tc.words...); strings.Join(got, " ") != tc.want {
			t.Errorf("TAB after %q: %q, want %q", tc.words, got, tc.want)
		}
	}
}

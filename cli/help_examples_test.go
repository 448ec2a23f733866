package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// longRunning are the commands that run until interrupted (or take over
// the terminal): their examples are parsed and checked, not run.
var longRunning = map[string]bool{
	"procwatch": true, "procwatch agent": true, "procwatch events": true, "procwatch serve": true,
	"procwatch bench exec": true,
}

// helpExamples collects the command lines of every --help: the lines of
// Example and Long that start with "procwatch" or "sudo procwatch".
func helpExamples(root *cobra.Command) []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, l := range strings.Split(c.Example+"\n"+c.Long, "\n") {
			if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
				continue // prose; commands are indented
			}
			l = strings.TrimSpace(l)
			l = strings.TrimPrefix(l, "$ ")
			l = strings.TrimPrefix(l, "sudo ")
			if strings.HasPrefix(l, "procwatch ") || l == "procwatch" {
				out = append(out, l)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// shellWords splits a command line as sh would for the simple lines help
// texts hold (single and double quotes), up to a pipe, a redirection, a
// "&" or a comment. It reports whether the output went into a pipe.
func shellWords(line string) (words []string, piped bool) {
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '|' || c == '>' || c == '&' || c == '#' || c == '<':
			if inWord {
				words = append(words, cur.String())
			}
			return words, c == '|'
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, false
}

// TestHelpExamplesRunAsWritten runs every example of every --help, on a
// test database and socket (global flags added in front), with the
// built-in rules, in a scratch directory. Commands that run until
// interrupted are only parsed. An example piped into jq must print JSON.
func TestHelpExamplesRunAsWritten(t *testing.T) {
	e := newTestEnv(t)
	data, err := os.ReadFile(repoRules)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.rules, data, 0o600); err != nil {
		t.Fatal(err)
	}
	storeIncidents(t, e, "/tmp/build/conftest", 3)
	// The examples talk to a running agent, as on a real host (with a
	// fake sensor), and write their files in a scratch directory.
	useFakeSensor(t)
	startAgent(t, e)
	t.Chdir(t.TempDir())
	// The one file an example names: a rules file in the current directory.
	if err := os.WriteFile("rules.yaml", data, 0o600); err != nil {
		t.Fatal(err)
	}
	examples := helpExamples(NewRoot())
	if len(examples) < 5 {
		t.Fatalf("only %d examples found: %q", len(examples), examples)
	}
	for _, line := range examples {
		t.Run(line, func(t *testing.T) {
			words, piped := shellWords(line)
			args := words[1:]
			root := NewRoot()
			cmd, rest, err := root.Find(args)
			if err != nil {
				t.Fatalf("no such command: %v", err)
			}
			if longRunning[cmd.CommandPath()] || needsOutside(args) {
				if err := cmd.ParseFlags(rest); err != nil {
					t.Fatalf("flags do not parse: %v", err)
				}
				if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
					t.Fatalf("arguments refused: %v", err)
				}
				return
			}
			full := append([]string{"--db", e.db, "--socket", e.sock}, args...)
			out, errOut, code := runCLI(t, "", full...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if piped && strings.Contains(line, "| jq") {
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					if l != "" && !json.Valid([]byte(l)) && !json.Valid([]byte(out)) {
						t.Fatalf("piped output is not JSON: %q", l)
					}
				}
			}
		})
	}
	if _, err := os.Stat("incidents.json"); err != nil {
		t.Errorf("export -o incidents.json wrote nothing: %v", err)
	}
}

// needsOutside: the example runs until interrupted (--follow) or needs
// something outside this test (a NATS server, SSH hosts, a --replay
// capture): it is parsed, not run.
func needsOutside(args []string) bool {
	for _, a := range args {
		for _, f := range []string{"--follow", "-f", "--nats", "--host", "--hosts-file", "--replay", "--stdio"} {
			if a == f || strings.HasPrefix(a, f+"=") {
				return true
			}
		}
	}
	return false
}

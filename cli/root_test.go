package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCobraUsageErrorsExitTwo pins the exit codes scripts rely on: 2 for a
// command called wrongly, 0 for help.
func TestCobraUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	global := []string{"--db", dir + "/db", "--socket", dir + "/sock"}
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, 0},
		{[]string{"events", "--help"}, 0},
		{[]string{"skip"}, 0},
		{[]string{"nosuch"}, 2},
		{[]string{"events", "--bogus"}, 2},
		{[]string{"events", "extra"}, 2},
		{[]string{"skip", "nosuch"}, 2},
		{[]string{"skip", "add", "command"}, 2},
		{[]string{"bench", "exec", "--workers", "x"}, 2},
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = devnull, devnull
	defer func() { os.Stdout, os.Stderr = stdout, stderr }()
	for _, tt := range tests {
		if got := Main(append(global, tt.args...)); got != tt.want {
			t.Errorf("procwatch %v: exit %d, want %d", tt.args, got, tt.want)
		}
	}
}

// TestCommandTreeIsListedInRoot: every subcommand and global flag is wired
// in root.go's lists, none by a file's init function, and two builds of the
// tree are the same (no package state leaks between them).
func TestCommandTreeIsListedInRoot(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		parsed, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range parsed.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
				t.Errorf("%s: func init() registers something; name it in root.go's lists instead", fset.Position(fn.Pos()))
			}
		}
	}
	names := func() []string {
		var out []string
		for _, c := range NewRoot().Commands() {
			out = append(out, c.Name())
		}
		return out
	}
	first, second := names(), names()
	want := []string{"agent", "bench", "completion", "events", "export", "fleet", "hosts", "incidents", "monitor", "rules", "serve", "skip"}
	if !slices.Equal(first, second) {
		t.Errorf("two builds differ: %v then %v", first, second)
	}
	for _, w := range want {
		if !slices.Contains(first, w) {
			t.Errorf("command %q missing from the tree %v", w, first)
		}
	}
	root := NewRoot()
	for _, flag := range []string{"host", "hosts-file", "container-socket"} {
		if root.Flags().Lookup(flag) == nil && root.PersistentFlags().Lookup(flag) == nil {
			t.Errorf("root flag --%s missing", flag)
		}
	}
}

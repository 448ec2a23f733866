package cli

import (
	"os"
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

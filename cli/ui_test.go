package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestUIOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		val     string
		rows    int
		wantErr bool
	}{
		{"", 0, false},
		{"500", 500, false},
		{"0", 0, true},
		{"lots", 0, true},
	} {
		t.Setenv("PROCWATCH_ROWS", tc.val)
		o, err := uiOptionsFromEnv()
		if (err != nil) != tc.wantErr || o.Rows != tc.rows {
			t.Errorf("PROCWATCH_ROWS=%q: rows %d, err %v", tc.val, o.Rows, err)
		}
	}
}

func TestUINeedsATerminal(t *testing.T) {
	root := NewRoot()
	root.SetArgs(nil)
	err := root.Execute() // go test's stdin and stdout are not terminals
	if err == nil || !strings.Contains(err.Error(), "needs a terminal") {
		t.Fatalf("err = %v, want the terminal error", err)
	}
}

func TestBoundedLog(t *testing.T) {
	b := &boundedLog{max: 10}
	for _, s := range []string{"12345", "67890", "abc"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	var out bytes.Buffer
	b.writeTo(&out)
	if got := out.String(); got != "1234567890procwatch: 3 more bytes of log were dropped\n" {
		t.Errorf("log = %q", got)
	}
}

package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/hosts"
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

func TestHostSpecs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir) // no default hosts file here
	file := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(file, []byte("hosts:\n  - name: web1\n    command: ssh web1 procwatch serve --stdio\n  - name: db1\n    command: ssh db1 procwatch serve --stdio\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		opts     Options
		want     []hosts.Spec
		wantErr  string
		wantCode int
	}{
		{name: "nothing: local UI", opts: Options{}},
		{name: "flags", opts: Options{Hosts: []string{"a=procwatch serve --stdio", "b=ssh b x"}},
			want: []hosts.Spec{{Name: "a", Command: "procwatch serve --stdio"}, {Name: "b", Command: "ssh b x"}}},
		{name: "file and an override", opts: Options{HostsFile: file, Hosts: []string{"db1=ssh -p 2222 db1 procwatch serve --stdio", "c=x"}},
			want: []hosts.Spec{{Name: "web1", Command: "ssh web1 procwatch serve --stdio"}, {Name: "db1", Command: "ssh -p 2222 db1 procwatch serve --stdio"}, {Name: "c", Command: "x"}}},
		{name: "bad flag", opts: Options{Hosts: []string{"nocommand"}}, wantErr: "want NAME=COMMAND", wantCode: 2},
		{name: "named file missing", opts: Options{HostsFile: filepath.Join(dir, "nope.yaml")}, wantErr: "read hosts file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hostSpecs(&tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				var ee *ExitError
				if tc.wantCode != 0 && (!errors.As(err, &ee) || ee.Code != tc.wantCode) {
					t.Errorf("err = %v, want exit code %d", err, tc.wantCode)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("hostSpecs = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDefaultHostsFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if err := os.MkdirAll(filepath.Join(dir, "procwatch"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "procwatch", "hosts.yaml")
	if err := os.WriteFile(p, []byte("hosts:\n  - name: web1\n    comand: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := hostSpecs(&Options{})
	if err == nil || !strings.Contains(err.Error(), p+":3:5: unknown field \"comand\"") {
		t.Errorf("err = %v, want a positioned error in the default file", err)
	}
}

func TestHostFlagBelongsToTheUI(t *testing.T) {
	root := NewRoot()
	root.SetArgs([]string{"skip", "list", "--host", "a=b"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "unknown flag: --host") {
		t.Errorf("skip list --host: err = %v, want unknown flag", err)
	}
	root = NewRoot()
	root.SetArgs([]string{"--host", "a=procwatch serve --stdio"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "needs a terminal") {
		t.Errorf("--host without a terminal: err = %v", err)
	}
}

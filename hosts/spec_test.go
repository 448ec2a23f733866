package hosts

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "web1=ssh web1 sudo procwatch serve --stdio", want: Spec{"web1", "ssh web1 sudo procwatch serve --stdio"}},
		{in: "db.eu-1=procwatch serve --stdio --x=1", want: Spec{"db.eu-1", "procwatch serve --stdio --x=1"}},
		{in: "web1", wantErr: "want NAME=COMMAND"},
		{in: "=ssh x", wantErr: "host name is empty"},
		{in: "web 1=ssh x", wantErr: "use only letters"},
		{in: "web1=  ", wantErr: "command after '=' is empty"},
		{in: "\x1b[31m=x", wantErr: "use only letters"},
	} {
		got, err := ParseSpec(tc.in)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSpec(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
		case got != tc.want:
			t.Errorf("ParseSpec(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestMerge(t *testing.T) {
	file := []Spec{{"a", "cmd-a"}, {"b", "cmd-b"}}
	got, err := Merge(file, []Spec{{"c", "cmd-c"}, {"a", "other-a"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Spec{{"a", "other-a"}, {"b", "cmd-b"}, {"c", "cmd-c"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge = %+v, want %+v", got, want)
	}
	if file[0].Command != "cmd-a" {
		t.Error("Merge changed its input")
	}
	if _, err := Merge(nil, []Spec{{"a", "x"}, {"a", "y"}}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate flags: err = %v", err)
	}
}

func TestParseFile(t *testing.T) {
	good := "hosts:\n  - name: web1\n    command: ssh web1 sudo procwatch serve --stdio\n  - name: local\n    command: procwatch serve --stdio\n"
	got, err := ParseFile("hosts.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Spec{{"web1", "ssh web1 sudo procwatch serve --stdio"}, {"local", "procwatch serve --stdio"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseFile = %+v, want %+v", got, want)
	}
	if got, err := ParseFile("hosts.yaml", nil); err != nil || got != nil {
		t.Errorf("empty file = %v, %v; want no hosts", got, err)
	}

	for _, tc := range []struct {
		name, data, want string
	}{
		{"unknown key", "hosts:\n  - name: web1\n    comand: ssh web1\n", "hosts.yaml:3:5: unknown field \"comand\""},
		{"unknown top key", "host:\n  - name: web1\n", "hosts.yaml:1:1: unknown field \"host\""},
		{"duplicate name", "hosts:\n  - name: a\n    command: x\n  - name: a\n    command: y\n", "hosts.yaml:4:11: host \"a\" is listed twice (first on line 2)"},
		{"empty command", "hosts:\n  - name: a\n    command: \"\"\n", "hosts.yaml:3:14: host \"a\" has no command"},
		{"missing command", "hosts:\n  - name: a\n", "hosts.yaml:2:5: host \"a\" has no command"},
		{"bad name", "hosts:\n  - name: \"we b\"\n    command: x\n", "hosts.yaml:2:11: host name \"we b\": use only letters"},
		{"syntax", "hosts:\n  - name: [a\n", "hosts.yaml:2:"},
		{"wrong type", "hosts: web1\n", "hosts.yaml:1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile("hosts.yaml", []byte(tc.data))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want a FileError", err, err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err = %q, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	if got, err := LoadFile(missing, true); err != nil || got != nil {
		t.Errorf("missing optional file = %v, %v", got, err)
	}
	if _, err := LoadFile(missing, false); err == nil || !strings.Contains(err.Error(), "read hosts file") {
		t.Errorf("missing named file: err = %v", err)
	}
	p := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(p, []byte("hosts:\n  - {name: a, command: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFile(p, false)
	if err != nil || len(got) != 1 || got[0] != (Spec{"a", "b"}) {
		t.Errorf("LoadFile = %+v, %v", got, err)
	}
}

func TestDefaultFile(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	if got, err := DefaultFile(); err != nil || got != "/cfg/procwatch/hosts.yaml" {
		t.Errorf("DefaultFile = %q, %v", got, err)
	}
}

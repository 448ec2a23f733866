package hosts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// FileError is one problem in a hosts file, positioned so an editor can
// jump to it.
type FileError struct {
	File      string
	Line, Col int
	Msg       string
}

// Error formats the problem as file:line:col: message, like the rules file's
// errors.
func (e *FileError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// fileFormat is the shape of hosts.yaml.
type fileFormat struct {
	Hosts []Spec `yaml:"hosts"`
}

// DefaultFile returns the hosts file the UI reads when it exists:
// $XDG_CONFIG_HOME/procwatch/hosts.yaml, by default
// ~/.config/procwatch/hosts.yaml.
func DefaultFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the hosts file: %w", err)
	}
	return filepath.Join(dir, "procwatch", "hosts.yaml"), nil
}

// LoadFile reads a hosts file. A file that does not exist yields no hosts
// and no error when missingOK is set (the default file is optional; a file
// named on purpose is not).
func LoadFile(path string, missingOK bool) ([]Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if missingOK && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read hosts file: %w", err)
	}
	return ParseFile(path, data)
}

// ParseFile reads the hosts file format; name is used in error positions.
// Decoding is strict: unknown keys, duplicate keys, empty or invalid names,
// duplicate names and empty commands are errors.
func ParseFile(name string, data []byte) ([]Spec, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(name, err)
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return nil, nil // an empty file lists no hosts
	}
	if len(f.Docs) > 1 {
		return nil, &FileError{File: name, Line: 1, Col: 1, Msg: "hosts file holds more than one YAML document"}
	}
	var v fileFormat
	if err := yaml.NodeToValue(f.Docs[0].Body, &v, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return nil, yamlError(name, err)
	}
	at := func(path string) (int, int) {
		p, err := yaml.PathString(path)
		if err != nil {
			return 1, 1
		}
		n, err := p.FilterFile(f)
		if err != nil || n == nil {
			return 1, 1
		}
		return nodePos(n)
	}
	seen := map[string]int{}
	for i, s := range v.Hosts {
		where := fmt.Sprintf("$.hosts[%d]", i)
		if err := ValidName(s.Name); err != nil {
			line, col := at(where + ".name")
			if s.Name == "" {
				line, col = at(where)
			}
			return nil, &FileError{File: name, Line: line, Col: col, Msg: err.Error()}
		}
		if prev, dup := seen[s.Name]; dup {
			line, col := at(where + ".name")
			pl, _ := at(fmt.Sprintf("$.hosts[%d].name", prev))
			return nil, &FileError{File: name, Line: line, Col: col, Msg: fmt.Sprintf("host %q is listed twice (first on line %d)", s.Name, pl)}
		}
		seen[s.Name] = i
		if strings.TrimSpace(s.Command) == "" {
			line, col := at(where + ".command")
			if line == 1 && col == 1 {
				line, col = at(where)
			}
			return nil, &FileError{File: name, Line: line, Col: col, Msg: fmt.Sprintf("host %q has no command; give the command that runs `procwatch serve --stdio` there", s.Name)}
		}
	}
	return v.Hosts, nil
}

// yamlError turns a go-yaml error into a positioned FileError.
func yamlError(file string, err error) error {
	var ye yaml.Error
	line, col, msg := 1, 1, err.Error()
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line, col = tk.Position.Line, tk.Position.Column
		}
	}
	return &FileError{File: file, Line: line, Col: col, Msg: msg}
}

func nodePos(n ast.Node) (int, int) {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && m.Values[0].Key != nil {
		n = m.Values[0].Key
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 1, 1
	}
	return tk.Position.Line, tk.Position.Column
}

package hosts

import (
	"errors"
	"fmt"
	"strings"
)

// Spec names one host and the command that reaches its agent. The command
// is run with `sh -c`; its stdin and stdout must carry the agent protocol.
type Spec struct {
	Name    string `yaml:"name"`
	Command string `yaml:"command"`
}

// maxNameLen keeps host names short enough for a table column.
const maxNameLen = 64

// ValidName checks a host name: 1 to 64 letters, digits, dots, dashes or
// underscores. Names appear on screen and in file names, so they are kept
// to characters that need no escaping anywhere.
func ValidName(name string) error {
	if name == "" {
		return errors.New("host name is empty")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("host name %q is longer than %d characters", name, maxNameLen)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return fmt.Errorf("host name %q: use only letters, digits, '.', '-' and '_'", name)
		}
	}
	return nil
}

// ParseSpec reads the NAME=COMMAND form of the --host flag.
func ParseSpec(s string) (Spec, error) {
	name, command, ok := strings.Cut(s, "=")
	if !ok {
		return Spec{}, fmt.Errorf("--host %q: want NAME=COMMAND, e.g. web1='ssh web1 sudo procwatch serve --stdio'", s)
	}
	name = strings.TrimSpace(name)
	if err := ValidName(name); err != nil {
		return Spec{}, fmt.Errorf("--host %q: %w", s, err)
	}
	if strings.TrimSpace(command) == "" {
		return Spec{}, fmt.Errorf("--host %q: the command after '=' is empty", s)
	}
	return Spec{Name: name, Command: command}, nil
}

// Merge joins the hosts of a hosts file with those given by flags. A flag
// naming a host of the file replaces that host's command, so one run can
// override the file without editing it; order is the file's, then new
// flag hosts in the order given. Two flags with one name are an error.
func Merge(file, flags []Spec) ([]Spec, error) {
	out := append([]Spec(nil), file...)
	index := make(map[string]int, len(out))
	for i, s := range out {
		index[s.Name] = i
	}
	seen := map[string]bool{}
	for _, s := range flags {
		if seen[s.Name] {
			return nil, fmt.Errorf("--host %s is given twice; give each host once", s.Name)
		}
		seen[s.Name] = true
		if i, ok := index[s.Name]; ok {
			out[i] = s
			continue
		}
		index[s.Name] = len(out)
		out = append(out, s)
	}
	return out, nil
}

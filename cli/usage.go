package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/procwatch/procwatch/rules"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// suggestDistance is how many edits a mistyped command may be from a real
// one for "did you mean" (cobra's SuggestionsMinimumDistance).
const suggestDistance = 2

// flagError turns pflag's parse errors into one line that names the flag,
// the value given and what it accepts, instead of strconv's wording.
func flagError(c *cobra.Command, err error) error {
	var inv *pflag.InvalidValueError
	if errors.As(err, &inv) {
		f := inv.GetFlag()
		return fmt.Errorf("--%s %q: want %s", f.Name, inv.GetValue(), acceptedValues(f))
	}
	var req *pflag.ValueRequiredError
	if errors.As(err, &req) {
		f := req.GetFlag()
		return fmt.Errorf("--%s needs a value: %s", f.Name, acceptedValues(f))
	}
	var ne *pflag.NotExistError
	if errors.As(err, &ne) {
		msg := err.Error()
		if name := ne.GetSpecifiedName(); name != "" {
			if s := closestFlag(c, name); s != "" {
				return fmt.Errorf("%s; did you mean --%s? (see %s --help)", msg, s, c.CommandPath())
			}
		}
		return fmt.Errorf("%s (see %s --help)", msg, c.CommandPath())
	}
	return err
}

// acceptedValues says what a flag of f's type takes.
func acceptedValues(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "int", "int64", "uint", "uint32", "uint64":
		return "a whole number, e.g. --" + f.Name + " " + exampleInt(f)
	case "duration":
		return "a duration such as 30s, 5m or 1h30m"
	case "bool":
		return "true or false (or just --" + f.Name + ")"
	case "float64":
		return "a number"
	}
	return f.Usage
}

func exampleInt(f *pflag.Flag) string {
	if f.DefValue != "" && f.DefValue != "0" {
		return f.DefValue
	}
	return "10"
}

// closestFlag is the flag of c nearest to name by edit distance, or "".
func closestFlag(c *cobra.Command, name string) string {
	best, bestD := "", suggestDistance+1
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if d := rules.EditDistance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// unknownCommand is the error for an unknown subcommand of c, with cobra's
// suggestions when one is close.
func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	if len(names) <= 8 && len(names) > 0 {
		msg += " (want " + strings.Join(names, ", ") + ")"
	}
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	} else {
		msg += fmt.Sprintf("; see %s --help", c.CommandPath())
	}
	return &ExitError{Code: 2, Err: errors.New(msg)}
}

// argsError rewrites cobra's "accepts 2 arg(s), received 1" into what is
// missing or extra, with the command's usage line, which names each
// argument.
func argsError(c *cobra.Command, args []string, err error) error {
	msg := err.Error()
	name := strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
	switch {
	case strings.Contains(msg, "unknown command") && c.HasSubCommands():
		return unknownCommand(c, args[0])
	case strings.HasPrefix(msg, "accepts 0 arg"), strings.Contains(msg, "unknown command") && len(args) > 0:
		return fmt.Errorf("%s takes no arguments (got %q); usage: %s", name, args[0], c.UseLine())
	case strings.Contains(msg, "received") && countLess(msg, len(args)):
		return fmt.Errorf("%s: missing arguments; usage: %s", name, c.UseLine())
	case strings.Contains(msg, "received"):
		return fmt.Errorf("%s: too many arguments (%d); usage: %s (quote a value that holds spaces)", name, len(args), c.UseLine())
	}
	return err
}

// countLess reports whether cobra's message asks for more arguments than
// got: "accepts N", "requires at least N" or "between N and M".
func countLess(msg string, got int) bool {
	for _, f := range strings.Fields(msg) {
		var n int
		if _, err := fmt.Sscanf(f, "%d", &n); err == nil {
			return got < n
		}
	}
	return false
}

package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/suggest"
)

func newSkipSuggestCmd(opts *Options) *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "suggest [INCIDENT-ID]",
		Short: "Suggest the narrowest skips: for one incident, or for the top talkers",
		Long: `With an incident id, print the narrowest skip that silences it, as the
TUI's p offers it: its exact binary, for its rule, pinned to the binary's
SHA-256 when it lives where others than the package manager can write; for
a root escalation always a path skip for the escalation's rule. Without one,
print the skips that silence the most open incidents, narrowest first.

Each suggestion comes with its warnings and with the command that adds it.`,
		Example: `  procwatch skip suggest
  procwatch skip suggest --limit 5 --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageError("--limit %d: want 0 (all) or more", limit)
			}
			return withService(cmd.Context(), opts, func(svc api.Service) error {
				incs, err := svc.Incidents(cmd.Context(), api.Query{Status: rules.StatusOpen})
				if err != nil {
					return err
				}
				var sgs []suggest.Suggestion
				if len(args) == 1 {
					inc, ok := findIncident(incs, args[0])
					if !ok {
						return &ExitError{Code: 1, Err: fmt.Errorf("no open incident %s; see procwatch incidents --status open", cell(args[0]))}
					}
					sg := suggest.ForIncident(inc)
					sg.Count = int(max(inc.Count, 1))
					sgs = []suggest.Suggestion{sg}
				} else {
					sgs = suggest.FromIncidents(incs, limit)
				}
				return writeSuggestions(cmd.OutOrStdout(), sgs, asJSON)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 10, "at most this many suggestions (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "write a JSON array of {skip, why, count, warnings, command}")
	return cmd
}

func findIncident(incs []rules.Incident, id string) (*rules.Incident, bool) {
	for i := range incs {
		if incs[i].ID.String() == id {
			return &incs[i], true
		}
	}
	return nil, false
}

// addCommand is the command line that adds s, quoted for a POSIX shell.
func addCommand(s rules.Skip) string {
	parts := []string{"procwatch", "skip", "add"}
	if s.Rule != "" {
		parts = append(parts, "--rule", shellQuote(s.Rule))
	}
	if s.Pin != "" {
		parts = append(parts, "--sha256", s.Pin)
	}
	return strings.Join(append(parts, s.Kind, shellQuote(s.Value)), " ")
}

// shellQuote quotes v for sh when it holds anything but safe characters.
// A value with bytes a terminal would act on (controls, invalid UTF-8,
// format characters such as U+202E) is written in $'...' with \xHH
// escapes, so the line is safe to print and still pastes as the same bytes.
func shellQuote(v string) string {
	safe, printable := v != "", true
	for i, r := range v {
		if r == utf8.RuneError && !strings.HasPrefix(v[i:], "\uFFFD") || !unicode.IsPrint(r) {
			printable = false
		}
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r)) {
			safe = false
		}
	}
	switch {
	case safe:
		return v
	case printable:
		return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(v); {
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError || !unicode.IsPrint(r) || r == '\'' || r == '\\' {
			for _, c := range []byte(v[i : i+n]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		} else {
			b.WriteString(v[i : i+n])
		}
		i += n
	}
	b.WriteString("'")
	return b.String()
}

func writeSuggestions(w io.Writer, sgs []suggest.Suggestion, asJSON bool) error {
	if asJSON {
		type row struct {
			suggest.Suggestion
			Command string `json:"command"`
		}
		rows := make([]row, 0, len(sgs))
		for _, sg := range sgs {
			rows = append(rows, row{sg, addCommand(sg.Skip)})
		}
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return fmt.Errorf("encode suggestions: %w", err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	if len(sgs) == 0 {
		_, err := fmt.Fprintln(w, "no open incidents: nothing to suggest")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tSKIP\tWHY")
	for _, sg := range sgs {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", sg.Count, describeSkip(sg.Skip), cell(sg.Why))
		for _, warn := range sg.Warnings {
			fmt.Fprintf(tw, "\t  warning: %s\t\n", warn.Text)
		}
		fmt.Fprintf(tw, "\t  $ %s\t\n", addCommand(sg.Skip)) // quoted terminal-safe
	}
	return tw.Flush()
}

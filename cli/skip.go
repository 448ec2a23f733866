package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/service"
)

func init() { commands = append(commands, newSkipCmd) }

func newSkipCmd(opts *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "skip",
		Short: "Add, remove and list skips that silence known false positives",
		Long: `A skip stops a command, a path or a user from raising incidents, for one
rule (--rule) or for every rule (root-escalation rules only honour skips
written for them). Adding a skip also masks the open incidents it would have
prevented; removing it unmasks exactly those.

Skips written in rules.yaml are listed too, but change only by editing the
file.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSkipAddCmd(opts), newSkipRmCmd(opts), newSkipListCmd(opts))
	return cmd
}

func newSkipAddCmd(opts *Options) *cobra.Command {
	var rule, note string
	cmd := &cobra.Command{
		Use:   "add command|path|user VALUE",
		Short: "Add a skip and mask the open incidents it covers",
		Example: `  procwatch skip add command backup.sh --note "nightly backup"
  procwatch skip add --rule suid-exec path '/opt/vendor/bin/*'
  procwatch skip add user deploy`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := rules.Skip{Kind: args[0], Value: args[1], Rule: rule, Note: note, AddedBy: whoami()}
			if err := rules.ValidateSkip(s); err != nil {
				return usageError("%v", err)
			}
			return withService(cmd.Context(), opts, func(svc service.Service) error {
				added, masked, err := svc.AddSkip(cmd.Context(), s)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added skip %s (%s); masked %s\n",
					added.ID, describeSkip(added), nounCount(masked, "open incident"))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&rule, "rule", "", "only for this rule (default: every rule)")
	cmd.Flags().StringVar(&note, "note", "", "why the skip exists, for whoever reads the list later")
	return cmd
}

func newSkipRmCmd(opts *Options) *cobra.Command {
	var rule string
	cmd := &cobra.Command{
		Use:   "rm ID | rm command|path|user VALUE",
		Short: "Remove an added skip and unmask the incidents it masked",
		Long: `Remove a skip added with "skip add", by the id "skip list" shows, or by
its kind and value (with --rule if it was added for one rule). The
incidents it masked become open again.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd.Context(), opts, func(svc service.Service) error {
				id := args[0]
				if len(args) == 2 {
					var err error
					if id, err = findSkip(cmd, svc, args[0], args[1], rule); err != nil {
						return err
					}
				}
				n, err := svc.RemoveSkip(cmd.Context(), id)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed skip %s; unmasked %s\n", id, nounCount(n, "incident"))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&rule, "rule", "", "with KIND VALUE: the rule the skip was added for")
	return cmd
}

// findSkip finds the id of the added skip with this kind, value and rule.
func findSkip(cmd *cobra.Command, svc service.Service, kind, value, rule string) (string, error) {
	skips, err := svc.Skips(cmd.Context())
	if err != nil {
		return "", err // the service's error says "list skips" itself
	}
	inFile := false
	for _, s := range skips {
		if s.Kind != kind || s.Value != value || s.Rule != rule {
			continue
		}
		if s.Source == rules.SourceAdded {
			return s.ID, nil
		}
		inFile = true
	}
	if inFile {
		return "", &ExitError{Code: 1, Err: fmt.Errorf("that skip is written in the rules file; edit the file to remove it")}
	}
	return "", &ExitError{Code: 1, Err: fmt.Errorf("no added skip %s %q%s; see procwatch skip list", kind, value, forRule(rule))}
}

func newSkipListCmd(opts *Options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every skip with its source: rules.yaml or added",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd.Context(), opts, func(svc service.Service) error {
				skips, err := svc.Skips(cmd.Context())
				if err != nil {
					return err
				}
				return writeSkips(cmd.OutOrStdout(), skips, asJSON)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "write a JSON array")
	return cmd
}

func writeSkips(w io.Writer, skips []rules.Skip, asJSON bool) error {
	if asJSON {
		if skips == nil {
			skips = []rules.Skip{}
		}
		b, err := json.MarshalIndent(skips, "", "  ")
		if err != nil {
			return fmt.Errorf("encode skips: %w", err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tKIND\tVALUE\tRULE\tADDED\tBY\tNOTE")
	for _, s := range skips {
		id, added, rule := s.ID, "", s.Rule
		if id == "" {
			id = "-"
		}
		if rule == "" {
			rule = "(all)"
		}
		if !s.AddedAt.IsZero() {
			added = s.AddedAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(id), s.Source, cell(s.Kind), cell(s.Value),
			cell(rule), added, cell(s.AddedBy), cell(s.Note))
	}
	return tw.Flush()
}

func describeSkip(s rules.Skip) string {
	return fmt.Sprintf("%s %s%s", s.Kind, cell(s.Value), forRule(s.Rule))
}

func forRule(rule string) string {
	if rule == "" {
		return " for every rule"
	}
	return " for rule " + cell(rule)
}

// whoami names the operator for a skip's AddedBy: the sudo caller when
// there is one, since "root" says little about who decided.
func whoami() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

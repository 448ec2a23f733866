package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/exehash"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/suggest"
)

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
	cmd.AddCommand(newSkipAddCmd(opts), newSkipRmCmd(opts), newSkipListCmd(opts), newSkipSuggestCmd(opts))
	return cmd
}

func newSkipAddCmd(opts *Options) *cobra.Command {
	var f skipAddFlags
	cmd := &cobra.Command{
		Use:   "add command|path|user VALUE",
		Short: "Add a skip and mask the open incidents it covers",
		Long: `Add a skip and mask the open incidents it covers.

With --pin, a path skip is for one exact file: procwatch hashes it now
(SHA-256) and the skip silences only that content at that path, so a
different file later put there still raises incidents. A pinned skip does
not silence a run whose binary's hash procwatch does not know yet.

--dry-run prints what the skip would mask and stores nothing. A skip that
would mask more than 100 open incidents asks first on a terminal, and needs
--yes otherwise.`,
		Example: `  procwatch skip add command backup.sh --note "nightly backup"
  procwatch skip add --rule root-escalation path /usr/bin/su --pin --note "this su only"
  procwatch skip add --rule exec-from-writable-dir path '/tmp/build/*' --dry-run
  procwatch skip add user deploy --dry-run`,
		Args: skipAddArgs,
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return skipKinds, cobra.ShellCompDirectiveNoFileComp
			}
			if len(args) == 1 && args[0] == rules.SkipPath {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, exact, err := f.skip(cmd, args)
			if err != nil {
				return err
			}
			return withService(cmd.Context(), opts, func(svc api.Service) error {
				return runSkipAdd(cmd, svc, f, s, exact)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.rule, "rule", "", "only for this rule (default: every rule but root escalations)")
	fl.StringVar(&f.note, "note", "", "why the skip exists, for whoever reads the list later")
	fl.BoolVar(&f.pin, "pin", false, "path skips: only this exact file, by the SHA-256 of its content now")
	fl.StringVar(&f.sha256, "sha256", "", "path skips: only the file with this SHA-256 (64 hex digits, e.g. an incident's exe_sha256), without reading it here")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print what the skip would mask; store nothing")
	fl.BoolVarP(&f.yes, "yes", "y", false, "add it even when it masks more than 100 open incidents")
	return cmd
}

// skipAddArgs names what is missing, instead of cobra's "accepts 2 arg(s)".
func skipAddArgs(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 0:
		return fmt.Errorf("skip add: missing the kind (command, path or user) and the value; e.g. procwatch skip add path /usr/local/bin/tool")
	case 1:
		return fmt.Errorf("skip add %s: missing the value to skip; e.g. procwatch skip add %s %s", cell(args[0]), cell(args[0]), kindExample(args[0]))
	case 2:
		return nil
	}
	return fmt.Errorf("skip add: %d arguments, want 2 (KIND VALUE); quote a value that holds spaces or wildcards", len(args))
}

func kindExample(kind string) string {
	switch kind {
	case rules.SkipCommand:
		return "backup.sh"
	case rules.SkipUser:
		return "deploy"
	}
	return "/usr/local/bin/tool"
}

// skipKinds complete a skip's kind argument.
var skipKinds = []string{rules.SkipCommand + "\tby command name", rules.SkipPath + "\tby binary path", rules.SkipUser + "\tby user"}

type skipAddFlags struct {
	rule, note, sha256 string
	pin, dryRun, yes   bool
}

// skip builds the skip from the arguments; exact says the value names one
// regular file (pinned, or found on this machine), for the warnings.
func (f skipAddFlags) skip(cmd *cobra.Command, args []string) (rules.Skip, bool, error) {
	s := rules.Skip{Kind: args[0], Value: args[1], Rule: f.rule, Note: f.note}
	switch s.Kind {
	case rules.SkipCommand, rules.SkipPath, rules.SkipUser:
	default:
		return s, false, usageError("skip add: unknown kind %q: want command, path or user", cell(s.Kind))
	}
	exact, err := applyPin(cmd, &s, f.pin, f.sha256)
	if err != nil {
		return s, false, err
	}
	if err := rules.ValidateSkip(s); err != nil {
		return s, false, usageError("%v", err)
	}
	return s, exact, nil
}

// applyPin pins s as --pin (hash the file here) or --sha256 (a given
// hash) ask; exact says the value names one regular file, for the
// warnings. The fleet's skip add uses it too, so no front end drops a pin.
func applyPin(cmd *cobra.Command, s *rules.Skip, pin bool, sha256 string) (bool, error) {
	exact := false
	if sha256 != "" {
		if pin {
			return false, usageError("skip add: --pin hashes the file here, --sha256 names the hash; give one of them")
		}
		if s.Kind != rules.SkipPath {
			return false, usageError("skip add --sha256: only a path can be pinned (this is a %s skip)", s.Kind)
		}
		s.Pin, exact = strings.ToLower(sha256), true
	} else if pin {
		if s.Kind != rules.SkipPath {
			return false, usageError("skip add --pin: only a path can be pinned (this is a %s skip)", s.Kind)
		}
		resolved, sum, err := pinFile(s.Value)
		if err != nil {
			return false, &ExitError{Code: 1, Err: err}
		}
		if resolved != s.Value {
			fmt.Fprintf(cmd.ErrOrStderr(), "procwatch: %s resolves to %s; pinning that, the path the sensor reports\n", cell(s.Value), cell(resolved))
		}
		s.Value, s.Pin, exact = resolved, sum, true
	} else if s.Kind == rules.SkipPath {
		if fi, err := os.Stat(s.Value); err == nil && fi.Mode().IsRegular() {
			exact = true
		}
	}
	return exact, nil
}

// pinFile resolves path as the kernel would report the binary (absolute,
// symlinks followed) and hashes the regular file there.
func pinFile(p string) (string, string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", fmt.Errorf("skip add --pin: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", "", fmt.Errorf("skip add --pin: %w (a pin hashes the file now: it must exist on this machine)", err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", "", fmt.Errorf("skip add --pin: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("skip add --pin: %s is not a regular file; a pin is for one file (drop --pin to skip a directory)", cell(resolved))
	}
	sum, err := exehash.File(resolved)
	if err != nil {
		return "", "", fmt.Errorf("skip add --pin: %w", err)
	}
	return resolved, sum, nil
}

// runSkipAdd previews the skip, warns, asks when it masks many, and adds it
// unless this is a dry run.
func runSkipAdd(cmd *cobra.Command, svc api.Service, f skipAddFlags, s rules.Skip, exact bool) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	n, err := svc.PreviewSkip(ctx, s)
	if err != nil {
		return err
	}
	check := suggest.Check{Skip: s, Masked: n, ExactFile: exact}
	if s.Rule != "" {
		rs, err := svc.Rules(ctx)
		if err != nil {
			return err
		}
		for i := range rs {
			if rs[i].Name == s.Rule {
				check.Rule = &rs[i]
			}
		}
		if check.Rule == nil {
			return &ExitError{Code: 1, Err: fmt.Errorf("skip add: no rule named %q; see procwatch rules list", cell(s.Rule))}
		}
	}
	warnings := suggest.Warnings(check)
	if f.dryRun {
		return printDryRun(cmd, svc, s, n, warnings)
	}
	if n > suggest.ManyIncidents && !f.yes {
		if !isTerminal(cmd.InOrStdin()) {
			return &ExitError{Code: 1, Err: fmt.Errorf("skip add: %s would mask %d open incidents (more than %d); add --yes to confirm, or --dry-run to see them",
				describeSkip(s), n, suggest.ManyIncidents)}
		}
		for _, w := range warnings {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w.Text)
		}
		ok, err := confirm(cmd, fmt.Sprintf("Mask %d open incidents with skip %s? [y/N] ", n, describeSkip(s)))
		if err != nil {
			return err
		}
		if !ok {
			return &ExitError{Code: 1, Err: fmt.Errorf("skip add: not confirmed; nothing added")}
		}
	}
	added, masked, err := svc.AddSkip(ctx, s)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "added skip %s (%s); masked %s\n", added.ID, describeSkip(added), nounCount(masked, "open incident"))
	for _, w := range warnings {
		fmt.Fprintf(out, "warning: %s\n", w.Text)
	}
	return nil
}

// dryRunList is how many of the incidents a dry run would mask it lists.
const dryRunList = 20

func printDryRun(cmd *cobra.Command, svc api.Service, s rules.Skip, n int, warnings []suggest.Warning) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "dry run: skip %s would mask %s; nothing stored\n", describeSkip(s), nounCount(n, "open incident"))
	for _, w := range warnings {
		fmt.Fprintf(out, "warning: %s\n", w.Text)
	}
	if n == 0 {
		return nil
	}
	incs, err := svc.Incidents(cmd.Context(), api.Query{Status: rules.StatusOpen})
	if err != nil {
		return err
	}
	covers := s.Coverer()
	var hit []rules.Incident
	for i := range incs {
		if covers(&incs[i]) {
			hit = append(hit, incs[i])
		}
	}
	shown := hit[:min(len(hit), dryRunList)]
	fmt.Fprintf(out, rowFormat, "ID", "TIME", "SEVERITY", "STATUS", "COUNT", "RULE", "SUMMARY")
	for i := range shown {
		if err := writeIncident(out, &shown[i], false); err != nil {
			return err
		}
	}
	if len(hit) > len(shown) {
		fmt.Fprintf(out, "… and %d more\n", len(hit)-len(shown))
	}
	return nil
}

// isTerminal reports whether r is a terminal a person can answer on.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks question on stderr and reads a yes from stdin.
func confirm(cmd *cobra.Command, question string) (bool, error) {
	fmt.Fprint(cmd.ErrOrStderr(), question)
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func newSkipRmCmd(opts *Options) *cobra.Command {
	var rule string
	cmd := &cobra.Command{
		Use: "rm ID | rm command|path|user VALUE",
		Example: `  procwatch skip rm command backup.sh
  procwatch skip rm 2`,
		Short: "Remove an added skip and unmask the incidents it masked",
		Long: `Remove a skip added with "skip add", by the id "skip list" shows, or by
its kind and value (with --rule if it was added for one rule). The
incidents it masked become open again.`,
		Args: cobra.RangeArgs(1, 2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return append(skipIDs(opts), skipKinds...), cobra.ShellCompDirectiveNoFileComp
			}
			if len(args) == 1 && args[0] == rules.SkipPath {
				return nil, cobra.ShellCompDirectiveDefault
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd.Context(), opts, func(svc api.Service) error {
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
func findSkip(cmd *cobra.Command, svc api.Service, kind, value, rule string) (string, error) {
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
		Use: "list",
		Example: `  procwatch skip list
  procwatch skip list --json`,
		Short: "List every skip with its source: rules.yaml or added",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd.Context(), opts, func(svc api.Service) error {
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
	fmt.Fprintln(tw, "ID\tSOURCE\tKIND\tVALUE\tPIN\tRULE\tADDED\tBY\tNOTE")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(id), s.Source, cell(s.Kind), cell(s.Value)+ownedBy(s.Owners),
			pinCell(s.Pin), cell(rule), added, cell(s.AddedBy), cell(s.Note))
	}
	return tw.Flush()
}

// ownedBy notes a skip's owners narrowing: it covers only binaries these
// users own.
func ownedBy(owners []string) string {
	if len(owners) == 0 {
		return ""
	}
	return " (owned by " + cell(strings.Join(owners, ", ")) + ")"
}

// pinCell shows a pin as sha256: and its first 16 hex digits, enough to
// tell versions apart in a table; --json has all 64.
func pinCell(pin string) string {
	if pin == "" {
		return "-"
	}
	return "sha256:" + cell(pin[:min(len(pin), 16)]) + "…"
}

func describeSkip(s rules.Skip) string {
	pinned := ""
	if s.Pin != "" {
		pinned = " pinned to " + pinCell(s.Pin)
	}
	return fmt.Sprintf("%s %s%s%s", s.Kind, cell(s.Value), pinned, forRule(s.Rule))
}

func forRule(rule string) string {
	if rule == "" {
		return " for every rule"
	}
	return " for rule " + cell(rule)
}

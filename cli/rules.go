package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

func newRulesCmd(opts *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check, list, replay and import rules files",
		Long: `Work with rules files offline, without root.

Rules turn sensor events into incidents. The built-in rules are the
repository's rules.yaml; --rules PATH uses another file. See docs/rules.md
for the format.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRulesCheckCmd(opts), newRulesListCmd(opts), newRulesTestCmd(opts), newRulesImportDeepfenceCmd())
	return cmd
}

func newRulesCheckCmd(opts *Options) *cobra.Command {
	return &cobra.Command{
		Use: "check [PATH]",
		Example: `  procwatch rules check
  procwatch --rules rules.yaml rules list`,
		Short: "Validate a rules file; exit 1 with file:line:col messages if it is wrong",
		Long: `Validate a rules file: YAML syntax, unknown keys, unknown rule types,
bad severities, bad globs, duplicate rule names and values of the wrong
type. Each problem is printed as file:line:col: message, with a hint and the
offending line, and the command exits 1.

PATH defaults to --rules, or to the built-in rules.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := opts.RulesPath
			if len(args) == 1 {
				path = args[0]
			}
			return runRulesCheck(cmd.OutOrStdout(), cmd.ErrOrStderr(), path)
		},
	}
}

func runRulesCheck(stdout, stderr io.Writer, path string) error {
	name, data, err := readRules(path)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	set, err := rules.Parse(name, data)
	if err != nil {
		var perrs rules.ParseErrors
		if !errors.As(err, &perrs) {
			return &ExitError{Code: 1, Err: err}
		}
		printParseErrors(stderr, perrs, data)
		return &ExitError{Code: 1, Err: fmt.Errorf("%s: %s; fix the file and run procwatch rules check again", name, nounCount(len(perrs), "problem"))}
	}
	byType := map[string]int{}
	for _, r := range set.Rules {
		byType[r.Type]++
	}
	var parts []string
	for _, t := range []string{rules.TypeBinExecution, rules.TypeRootEscalation, rules.TypeTerminationFailure} {
		if byType[t] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", t, byType[t]))
		}
	}
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, ", ") + ")"
	}
	fmt.Fprintf(stdout, "%s: ok: %s%s, %s\n", event.DisplayString(name), nounCount(len(set.Rules), "rule"), detail, nounCount(len(set.Skips()), "skip"))
	return nil
}

// readRules returns the name and bytes of the rules at path, or of the
// built-in rules when path is empty.
func readRules(path string) (string, []byte, error) {
	if path == "" {
		if len(rules.DefaultYAML) == 0 {
			return "", nil, rules.ErrNoDefault
		}
		return rules.DefaultName, rules.DefaultYAML, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("read rules file: %w", err)
	}
	return path, data, nil
}

// printParseErrors writes each problem followed by its source line and a
// caret under the column, the way compilers show them.
func printParseErrors(w io.Writer, perrs rules.ParseErrors, data []byte) {
	lines := bytes.Split(data, []byte("\n"))
	for _, pe := range perrs {
		fmt.Fprintln(w, event.DisplayString(pe.Error()))
		if pe.Line < 1 || pe.Line > len(lines) {
			continue
		}
		src := strings.TrimRight(string(lines[pe.Line-1]), "\r")
		shown := event.DisplayString(strings.ReplaceAll(src, "\t", " "))
		col := pe.Col - 1
		if col < 0 || col > len(shown) || shown != src {
			// The caret only lines up when the line printed as it is.
			fmt.Fprintf(w, "    %s\n", shown)
			continue
		}
		fmt.Fprintf(w, "    %s\n    %s^\n", shown, strings.Repeat(" ", col))
	}
}

// nounCount writes "1 rule", "2 rules", "3 matches".
func nounCount(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	if strings.HasSuffix(word, "ch") {
		return fmt.Sprintf("%d %ses", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func newRulesListCmd(opts *Options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Example: `  procwatch rules list`,
		Short:   "List the rules and skips of the rules file (--rules, or the built-in one)",
		Long: `List the rules and skips written in the rules file (--rules, or the
built-in one), with each skip's scope. Skips added at run time live in the
database and are listed by procwatch skip.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := rules.Load(opts.RulesPath)
			if err != nil {
				return rulesLoadError(err)
			}
			return writeRuleList(cmd.OutOrStdout(), set)
		},
	}
}

func writeRuleList(w io.Writer, set *rules.RuleSet) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tTYPE\tSUCCESS\tFAILURE\tMATCH")
	for _, r := range set.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Type, r.Severity.Success, r.Severity.Failure,
			event.DisplayString(describeSelectors(r.Match)))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SKIP\tVALUE\tSCOPE\tSOURCE")
	for _, s := range set.Skips() {
		scope := "all rules but root-escalation"
		if s.Rule != "" {
			scope = "rule " + s.Rule
		}
		if len(s.Owners) > 0 {
			scope += ", files owned by " + strings.Join(s.Owners, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Kind, event.DisplayString(s.Value), scope, s.Source)
	}
	return tw.Flush()
}

func describeSelectors(m rules.Selectors) string {
	var parts []string
	add := func(key string, vals []string) {
		if len(vals) > 0 {
			parts = append(parts, key+"="+strings.Join(vals, ","))
		}
	}
	add("paths", m.Paths)
	add("filesystems", m.Filesystems)
	add("commands", m.Commands)
	add("args", m.Args)
	add("owners", m.Owners)
	add("users", m.Users)
	add("parent_commands", m.ParentCommands)
	if m.Container != nil {
		parts = append(parts, fmt.Sprintf("container=%v", *m.Container))
	}
	add("images", m.Images)
	if len(m.ExitCodes) > 0 {
		codes := make([]string, len(m.ExitCodes))
		for i, c := range m.ExitCodes {
			codes[i] = fmt.Sprint(c)
		}
		add("exit_codes", codes)
	}
	add("signals", m.Signals)
	if len(parts) == 0 {
		return "(every process)"
	}
	return strings.Join(parts, " ")
}

// rulesLoadError turns a load failure into one line with what to do.
func rulesLoadError(err error) error {
	var perrs rules.ParseErrors
	if errors.As(err, &perrs) {
		return fmt.Errorf("rules file has %s, first: %v; run procwatch rules check for all of them", nounCount(len(perrs), "problem"), perrs[0])
	}
	return err
}

// maxBadLines bounds how many malformed capture lines are described one by
// one; the rest are counted.
const maxBadLines = 20

func newRulesTestCmd(opts *Options) *cobra.Command {
	var asJSON bool
	var window time.Duration
	var passwd string
	cmd := &cobra.Command{
		Use:   "test [--rules PATH] CAPTURE.ndjson",
		Short: "Replay a capture from procwatch events --json through the rules, without root",
		Long: `Replay events recorded by "procwatch events --json" through the rules
(--rules, or the built-in ones) and print the incidents they would raise,
then how many each rule raised. Nothing is stored and no root is needed, so
rules can be tuned offline. CAPTURE "-" reads standard input.

Repeats of an incident within --dedup-window aggregate into it, as they do
live; the COUNT column says how many events each incident stands for.

Malformed lines are reported on stderr with their line number and skipped;
the replay goes on, and the command exits 1 at the end if there were any.

User names come from this host's user database; a capture from another
host means that host's uids, so pass its passwd file with --passwd.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := rules.Load(opts.RulesPath)
			if err != nil {
				return rulesLoadError(err)
			}
			if passwd != "" {
				f, err := os.Open(passwd)
				if err != nil {
					return fmt.Errorf("open passwd file: %w", err)
				}
				_, err = rules.UsePasswd(f)
				f.Close()
				if err != nil {
					return err
				}
			}
			name := args[0]
			var in io.Reader = cmd.InOrStdin()
			if name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return fmt.Errorf("open capture: %w", err)
				}
				defer f.Close()
				in = f
			} else {
				name = "stdin"
			}
			return runRulesTest(cmd.OutOrStdout(), cmd.ErrOrStderr(), in, name, set, window, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the incidents as NDJSON (counts go to stderr)")
	cmd.Flags().DurationVar(&window, "dedup-window", rules.DefaultDedupWindow, "aggregate repeats of an incident within this window (0 or less: never)")
	cmd.Flags().StringVar(&passwd, "passwd", "", "resolve user names from this passwd file (the capture's host)")
	return cmd
}

func runRulesTest(stdout, stderr io.Writer, in io.Reader, name string, set *rules.RuleSet, window time.Duration, asJSON bool) error {
	if window <= 0 {
		window = -1
	}
	e := rules.NewEngine(set, rules.EngineOptions{DedupWindow: window})
	byID := map[rules.ID]rules.Incident{}
	var order []rules.ID
	shown := 0
	stats, err := rules.Replay(in, e, func(inc rules.Incident) {
		if _, seen := byID[inc.ID]; !seen {
			order = append(order, inc.ID)
		}
		byID[inc.ID] = inc
	}, func(le *rules.LineError) {
		if shown < maxBadLines {
			shown++
			fmt.Fprintf(stderr, "%s:%d: %s\n", event.DisplayString(name), le.Line, event.DisplayString(le.Err.Error()))
		}
	})
	if err != nil {
		return err
	}
	if stats.BadLines > maxBadLines {
		fmt.Fprintf(stderr, "%s: %d more malformed lines not shown\n", event.DisplayString(name), stats.BadLines-maxBadLines)
	}

	out := stdout
	if asJSON {
		if err := writeIncidentsNDJSON(stdout, byID, order); err != nil {
			return err
		}
		out = stderr
	} else if err := writeIncidentTable(stdout, byID, order); err != nil {
		return err
	}
	if err := writeRuleCounts(out, &stats, len(order)); err != nil {
		return err
	}
	if stats.BadLines > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s: %s skipped; the counts above leave them out", name, nounCount(stats.BadLines, "malformed line"))}
	}
	return nil
}

func writeIncidentsNDJSON(w io.Writer, byID map[rules.ID]rules.Incident, order []rules.ID) error {
	for _, id := range order {
		line, err := json.Marshal(byID[id])
		if err != nil {
			return fmt.Errorf("encode incident: %w", err)
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write incidents: %w", err)
		}
	}
	return nil
}

func writeIncidentTable(w io.Writer, byID map[rules.ID]rules.Incident, order []rules.ID) error {
	if len(order) == 0 {
		fmt.Fprintln(w, "no incidents")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIRST SEEN\tSEVERITY\tRULE\tCOUNT\tSUMMARY")
	for _, id := range order {
		inc := byID[id]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", inc.FirstSeen.UTC().Format(time.RFC3339), inc.Severity, inc.Rule, inc.Count,
			inc.Summary.Display())
	}
	return tw.Flush()
}

func writeRuleCounts(w io.Writer, stats *rules.ReplayStats, incidents int) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tINCIDENTS\tEVENTS")
	names := stats.SortedRules()
	for _, n := range names {
		c := stats.Rules[n]
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n, c.Incidents, c.Events)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s read: %s from %s, %s suppressed by skips, %s\n",
		nounCount(stats.Events, "event"), nounCount(incidents, "incident"), nounCount(len(names), "rule"),
		nounCount(stats.Skipped, "match"), nounCount(stats.BadLines, "malformed line"))
	return err
}

func newRulesImportDeepfenceCmd() *cobra.Command {
	var output string
	var force bool
	cmd := &cobra.Command{
		Use:   "import-deepfence CONFIG.json",
		Short: "Convert a Deepfence process-monitoring configuration into rules.yaml",
		Long: `Convert a Deepfence process tracer configuration (its
"monitoredprocessevents" entries: event, success_severity, failure_severity,
skip_comm_list, skip_path_list, skip_user_list) into a rules.yaml, one rule
per entry with the entry's skips on it. The result is printed, or written
to --output (mode 0600; an existing file is kept unless --force).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read deepfence config: %w", err)
			}
			out, err := rules.ImportDeepfence(data)
			if err != nil {
				return err
			}
			if output == "" {
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(output, flags, 0o600)
			if err != nil {
				if errors.Is(err, os.ErrExist) {
					return fmt.Errorf("write rules: %s exists; pass --force to replace it", output)
				}
				return fmt.Errorf("write rules: %w", err)
			}
			if _, err := f.Write(out); err != nil {
				f.Close()
				return fmt.Errorf("write rules %s: %w", output, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("write rules %s: %w", output, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s; check it with: procwatch rules check %s\n", output, output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the rules to this file instead of standard output")
	cmd.Flags().BoolVar(&force, "force", false, "replace --output if it exists")
	return cmd
}

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/rules"
)

// usageError marks a bad flag value: exit code 2, like cobra's own usage
// errors, so scripts can tell a typo from a failure.
func usageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// queryFlags are the incident filters shared by incidents and export.
type queryFlags struct {
	severity, typ, rule, status string
	since, until, grep          string
	limit                       int
}

func (f *queryFlags) register(fs *pflag.FlagSet, defaultLimit int) {
	fs.StringVar(&f.severity, "severity", "", "at least this severity: info, low, medium, high or critical")
	fs.StringVar(&f.typ, "type", "", "rule type: bin-execution, root-escalation or termination-failure")
	fs.StringVar(&f.rule, "rule", "", "rule name")
	fs.StringVar(&f.status, "status", "", "open, acknowledged or masked")
	fs.StringVar(&f.since, "since", "", "raised at or after: a duration back from now (90m, 2h, 7d) or a time (2026-01-02, 2026-01-02T15:04, RFC 3339)")
	fs.StringVar(&f.until, "until", "", "raised at or before: a duration back from now or a time, as for --since")
	fs.StringVar(&f.grep, "grep", "", "text that the summary, executable, arguments or rule contain")
	fs.IntVar(&f.limit, "limit", defaultLimit, "at most this many incidents, newest first (0: all)")
}

// query turns the flags into a api.Query.
func (f *queryFlags) query(now time.Time) (api.Query, error) {
	var q api.Query
	if f.severity != "" {
		sev, err := rules.ParseSeverity(f.severity)
		if err != nil || sev == rules.SeverityNone {
			return q, usageError("--severity %q: want info, low, medium, high or critical", f.severity)
		}
		q.MinSeverity = sev
	}
	switch f.typ {
	case "", rules.TypeBinExecution, rules.TypeRootEscalation, rules.TypeTerminationFailure:
		q.Type = f.typ
	default:
		return q, usageError("--type %q: want bin-execution, root-escalation or termination-failure", f.typ)
	}
	switch st := rules.Status(f.status); st {
	case "", rules.StatusOpen, rules.StatusAcknowledged, rules.StatusMasked:
		q.Status = st
	default:
		return q, usageError("--status %q: want open, acknowledged or masked", f.status)
	}
	var err error
	if q.Since, err = parseWhen(f.since, now); err != nil {
		return q, usageError("--since: %v", err)
	}
	if q.Until, err = parseWhen(f.until, now); err != nil {
		return q, usageError("--until: %v", err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return q, usageError("--until (%s) is not after --since (%s)", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if f.limit < 0 {
		return q, usageError("--limit %d: want 0 (all) or more", f.limit)
	}
	q.Rule, q.Grep, q.Limit = f.rule, f.grep, f.limit
	return q, nil
}

// timeLayouts are the absolute forms --since and --until accept, in local
// time unless they carry a zone.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"}

// parseWhen reads a duration back from now ("90m", "7d", "1d12h") or a
// time. Empty means no bound.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d), nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (90m, 2h, 7d) nor a time (2026-01-02, 2026-01-02T15:04, RFC 3339)", s)
}

// parseAgo parses a Go duration with an optional leading day count ("7d",
// "1d12h"), which time.ParseDuration lacks.
func parseAgo(s string) (time.Duration, bool) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, false
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, true
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, false
	}
	return days + d, true
}

func newIncidentsCmd(opts *Options) *cobra.Command {
	var (
		f      queryFlags
		asJSON bool
		follow bool
	)
	cmd := &cobra.Command{
		Use: "incidents",
		Example: `  procwatch incidents --severity high --since 1h
  procwatch incidents --status open --rule exec-from-writable-dir --json
  procwatch incidents --follow`,
		Short: "List stored incidents, newest first; --follow keeps printing new ones",
		Long: `List the incidents the rules raised, newest first, from the running agent
or, when none runs, straight from the database.

Filters combine: --severity is a minimum, --since/--until take a duration
back from now (90m, 7d) or a time. --json writes one incident per line
(NDJSON) with the export's field names; without it, process strings are
escaped so they cannot act on the terminal. Incidents are written as they
arrive from the agent, so --limit 0 lists every incident (up to the
agent's cap per answer; export has none) without holding them in memory.

--follow prints the list, then every new incident that matches as it is
raised, until Ctrl-C. With --json it also prints each later update of an
incident raised while following (its count and last_seen move on).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := f.query(time.Now())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return withService(ctx, opts, func(svc api.Service) error {
				if _, offline := svc.(*pipeline.Local); offline && follow {
					// Without an agent nothing new is raised, and holding
					// the database would keep an agent from starting.
					return fmt.Errorf("--follow needs a running agent: %s", noAgentHint(opts))
				}
				return runIncidents(ctx, svc, cmd.OutOrStdout(), q, asJSON, follow)
			})
		},
	}
	f.register(cmd.Flags(), 100)
	cmd.Flags().BoolVar(&asJSON, "json", false, "write NDJSON, one incident per line")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new incidents until Ctrl-C")
	return cmd
}

// runIncidents writes the incidents matching q as they arrive from the
// service (the agent streams them in frames), so listing every incident
// costs a frame of memory, not the whole answer.
func runIncidents(ctx context.Context, svc api.Service, out io.Writer, q api.Query, asJSON, follow bool) error {
	start := time.Now()
	w := bufio.NewWriter(out)
	n := 0
	var newest rules.ID
	err := api.EachIncident(ctx, svc, q, func(inc *rules.Incident) error {
		if n == 0 && !asJSON {
			fmt.Fprintf(w, rowFormat, "ID", "TIME", "SEVERITY", "STATUS", "COUNT", "RULE", "SUMMARY")
		}
		n++
		newest = max(newest, inc.ID)
		if err := writeIncident(w, inc, asJSON); err != nil {
			return fmt.Errorf("write incidents: %w", err)
		}
		return nil
	})
	// A damaged database: list what could be read, then warn (exit 1).
	var damaged error
	if errors.Is(err, api.ErrDamaged) {
		damaged, err = err, nil
	}
	if err != nil {
		w.Flush() // what was listed stays listed
		return fmt.Errorf("list incidents: %w", err)
	}
	if n == 0 && !asJSON {
		if follow {
			fmt.Fprintf(w, rowFormat, "ID", "TIME", "SEVERITY", "STATUS", "COUNT", "RULE", "SUMMARY")
		} else {
			fmt.Fprintln(w, "no incidents match")
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write incidents: %w", err)
	}
	if damaged != nil {
		return fmt.Errorf("warning: %w", damaged)
	}
	if !follow {
		return nil
	}
	return followIncidents(ctx, svc, w, q, asJSON, newest, start)
}

// followIncidents prints matching incidents as the service reports them.
// It resumes after the newest one listed, or a little before the listing
// began, so nothing raised between listing and subscribing is missed.
func followIncidents(ctx context.Context, svc api.Service, w *bufio.Writer, q api.Query, asJSON bool, newest rules.ID, start time.Time) error {
	after := max(newest, rules.ID(start.Add(-5*time.Second).UnixNano()))
	updates, err := svc.Subscribe(ctx, after)
	if err != nil {
		return fmt.Errorf("follow incidents: %w", err)
	}
	q.Limit = 0
	shown := make(map[rules.ID]bool)
	for u := range updates {
		for i := range u.Incidents {
			inc := &u.Incidents[i]
			if inc.ID <= newest || !q.Matches(inc) || (!asJSON && shown[inc.ID]) {
				continue
			}
			if len(shown) > 1<<16 {
				clear(shown)
			}
			shown[inc.ID] = true
			if err := writeIncident(w, inc, asJSON); err != nil {
				return err
			}
		}
		if u.Dropped > 0 && !asJSON {
			fmt.Fprintf(w, "(%d updates lost while this terminal was slow; run procwatch incidents to see them)\n", u.Dropped)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write incidents: %w", err)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("follow incidents: the agent ended the stream; run the command again to resume (or see procwatch monitor status)")
}

// rowFormat lays out the human table with fixed widths, so rows printed
// later by --follow line up with the first ones.
const rowFormat = "%-16s  %-19s  %-8s  %-12s  %5s  %-24s  %s\n"

// writeIncident writes one incident as a JSON line or a table row.
func writeIncident(w io.Writer, inc *rules.Incident, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(inc)
		if err != nil {
			return fmt.Errorf("encode incident %s: %w", inc.ID, err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	_, err := fmt.Fprintf(w, rowFormat, inc.ID, inc.Time.Local().Format("2006-01-02 15:04:05"),
		inc.Severity, inc.Status, strconv.FormatUint(inc.Count, 10), cell(inc.Rule), inc.Summary.Display())
	return err
}

// cell escapes a string for a table cell: terminal-safe, and without tabs
// that would break the columns.
func cell(s string) string {
	return event.DisplayString(s)
}

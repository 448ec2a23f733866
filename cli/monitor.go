package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
)

func newMonitorCmd(opts *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Switch monitoring on or off, or show the host's status",
		Long: `Monitoring off detaches the eBPF programs: no events are read and no
incidents are raised until it is switched on again. The choice is stored in
the database, so it holds across agent restarts.`,
		Args: cobra.NoArgs,
	}
	for _, on := range []bool{true, false} {
		word := map[bool]string{true: "on", false: "off"}[on]
		cmd.AddCommand(&cobra.Command{
			Use:   word,
			Short: map[bool]string{true: "Attach the sensor and raise incidents again", false: "Detach the sensor; raise no incidents"}[on],
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return withService(cmd.Context(), opts, func(svc api.Service) error {
					if err := svc.SetMonitoring(cmd.Context(), on); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "monitoring %s\n", word)
					return nil
				})
			},
		})
	}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show monitoring, the sensor's real state, counters, rules and open incidents",
		Long: `Shows whether monitoring is wanted (the stored setting) and what the sensor
really does: "attached" (its programs are attached and events flow), "off"
(nothing attached: monitoring is off, or no agent runs), or "failed" (it
could not load, attach or keep reading; the error says why and what to do).
With --json the same is the "sensor" object, with "state" and "error".

Exits 1 when monitoring is wanted but no sensor watches: the sensor failed,
or no agent is running. Scripts and health checks can rely on that.`,
		Example: `  procwatch monitor status
  procwatch monitor status --json | jq .sensor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd.Context(), opts, func(svc api.Service) error {
				_, isAgent := svc.(*protocol.Client)
				return runMonitorStatus(cmd.Context(), svc, cmd.OutOrStdout(), asJSON, !isAgent, socketPath(opts))
			})
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "write the status as JSON")
	cmd.AddCommand(status)
	return cmd
}

// runMonitorStatus writes the status. offline says no agent answered on
// sock, so the status comes from the database alone and nothing runs a
// sensor: the sensor is reported off, with that as its error.
func runMonitorStatus(ctx context.Context, svc api.Service, w io.Writer, asJSON, offline bool, sock string) error {
	st, err := svc.Status(ctx)
	if err != nil {
		return err
	}
	if st.Sensor.State == "" && st.Sensor.Mode != "" {
		st.Sensor.State = event.SensorAttached // an agent older than Stats.State
	}
	if offline && st.Sensor.State != event.SensorFailed {
		st.Sensor.State, st.Sensor.Mode = event.SensorOff, ""
		st.Sensor.Error = fmt.Sprintf("no agent is running (nothing answers on %s): nothing monitors this host; start one with `procwatch agent` or `systemctl start procwatch`", sock)
	}
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return fmt.Errorf("encode status: %w", err)
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
	} else {
		writeStatusText(w, st)
	}
	if st.Monitoring && st.Sensor.State != event.SensorAttached {
		why := st.Sensor.Error
		if why == "" {
			why = "the sensor is " + cmp.Or(st.Sensor.State, "not reporting a state")
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("monitoring is on but nothing monitors: %s", why)}
	}
	return nil
}

// writeStatusText writes the status for a person, one fact a line.
func writeStatusText(w io.Writer, st api.Status) {
	on := "off"
	if st.Monitoring {
		on = "on"
	}
	s := st.Sensor
	fmt.Fprintf(w, "host:        %s\n", cell(st.Host))
	fmt.Fprintf(w, "monitoring:  %s%s\n", on, formatSwitch(st.MonitoringSwitch))
	switch s.State {
	case event.SensorAttached:
		fmt.Fprintf(w, "sensor:      attached (%s); exec %d, escalation %d, exit %d, dropped %d\n", cell(s.Mode), s.Exec, s.Escalation, s.Exit, s.Drops)
	case event.SensorFailed:
		fmt.Fprintf(w, "sensor:      FAILED: %s\n", cell(s.Error))
	default:
		state := cmp.Or(s.State, "unknown")
		if s.State == event.SensorOff && s.Mode != "" && st.Monitoring {
			state = "off (loaded, its programs not attached yet)"
		}
		if s.Error != "" {
			fmt.Fprintf(w, "sensor:      %s: %s\n", cell(state), cell(s.Error))
		} else {
			fmt.Fprintf(w, "sensor:      %s\n", cell(state))
		}
	}
	if c := st.Containers; c != nil {
		fmt.Fprintf(w, "containers:  %d named, %d unknown, %d not running, %d failed, %d unverified, %d dropped, %d evicted; %d cached\n",
			c.Found, c.NotFound, c.NotRunning, c.Failed, c.Unverified, c.Dropped, c.Evicted, c.Cached)
	}
	fmt.Fprintf(w, "rules:       %s\n", cell(st.RulesPath))
	if st.RulesError != "" {
		fmt.Fprintf(w, "rules error: %s (the previous rules stay active)\n", cell(st.RulesError))
	}
	fmt.Fprintf(w, "open:        %s\n", formatOpen(st.OpenBySev))
	if st.QueueDropped > 0 {
		fmt.Fprintf(w, "queues:      %s events and incidents dropped for front ends that read too slowly (incidents stay stored)\n", thousands(st.QueueDropped))
	}
	if st.FatesLost > 0 {
		fmt.Fprintf(w, "fates lost:  %s root escalations will not get their process's end (more escalated processes ran at once than the rules follow)\n", thousands(st.FatesLost))
	}
	if st.Store != nil {
		writeStoreStatus(w, st.Store, st.Time)
	}
}

// formatSwitch says who last switched monitoring and when, as the kernel
// reported the caller; empty when nobody has.
func formatSwitch(sw *api.MonitoringSwitch) string {
	if sw == nil {
		return ""
	}
	verb := "off"
	if sw.On {
		verb = "on"
	}
	return fmt.Sprintf(" (switched %s by %s at %s)", verb, cell(sw.By.String()), sw.Time.Local().Format("2006-01-02 15:04:05"))
}

// writeStoreStatus adds the database lines: size and limits, what count
// retention deleted, and anything pending, failing, dropped or damaged.
func writeStoreStatus(w io.Writer, db *api.StoreStatus, now time.Time) {
	mode := ""
	if db.ReadOnly {
		mode = " (read-only)"
	}
	fmt.Fprintf(w, "database:    %s%s: %s incidents\n", cell(db.Path), mode, thousands(uint64(db.Incidents)))
	fmt.Fprintf(w, "retention:   %s\n", formatRetention(db.RetentionCount, db.RetentionAgeSeconds))
	evicted := "none"
	if db.EvictedByCount > 0 {
		evicted = thousands(db.EvictedByCount) + " deleted by the count limit (masked, acknowledged, then the lowest severities first)"
	}
	fmt.Fprintf(w, "evicted:     %s\n", evicted)
	if db.Pending > 0 || db.CommitError != "" {
		line := thousands(uint64(db.Pending)) + " incidents not yet committed"
		if db.CommitError != "" {
			line += "; commits failing"
			if db.FailingSince != nil {
				line += fmt.Sprintf(" for %s", now.Sub(*db.FailingSince).Round(time.Second))
			}
			line += ", retried with backoff: " + cell(db.CommitError)
		}
		fmt.Fprintf(w, "pending:     %s\n", line)
	}
	if db.Dropped > 0 {
		fmt.Fprintf(w, "dropped:     %s incidents given up on (see the agent's log)\n", thousands(db.Dropped))
	}
	if db.Unreadable > 0 {
		fmt.Fprintf(w, "unreadable:  %s damaged records skipped by reads\n", thousands(db.Unreadable))
	}
	if db.CheckError != "" {
		fmt.Fprintf(w, "check:       %s\n", cell(db.CheckError))
	}
}

// formatRetention says what the limits keep; 0 means no limit.
func formatRetention(count int, ageSeconds int64) string {
	keep := "all incidents"
	if count > 0 {
		keep = "at most " + thousands(uint64(count)) + " incidents"
	}
	if ageSeconds > 0 {
		return keep + ", for " + formatAge(time.Duration(ageSeconds)*time.Second)
	}
	return keep + ", forever"
}

// formatAge writes whole days as days ("30 days"), else as a duration.
func formatAge(d time.Duration) string {
	const day = 24 * time.Hour
	if d%day == 0 {
		if d == day {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// thousands writes n with comma separators: 1,000,000.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// formatOpen lists open incident counts from critical down.
func formatOpen(bySev map[string]int) string {
	var parts []string
	total := 0
	for sev := rules.SeverityCritical; sev > rules.SeverityNone; sev-- {
		if n := bySev[sev.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", sev, n))
			total += n
		}
	}
	if total == 0 {
		return "none"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/service"
)

func init() { commands = append(commands, newMonitorCmd) }

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
				return withService(cmd.Context(), opts, func(svc service.Service) error {
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
		Short: "Show monitoring, sensor counters, rules and open incidents",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd.Context(), opts, func(svc service.Service) error {
				return runMonitorStatus(cmd.Context(), svc, cmd.OutOrStdout(), asJSON)
			})
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "write the status as JSON")
	cmd.AddCommand(status)
	return cmd
}

func runMonitorStatus(ctx context.Context, svc service.Service, w io.Writer, asJSON bool) error {
	st, err := svc.Status(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return fmt.Errorf("encode status: %w", err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	on := "off"
	if st.Monitoring {
		on = "on"
	}
	fmt.Fprintf(w, "host:        %s\n", cell(st.Host))
	fmt.Fprintf(w, "monitoring:  %s\n", on)
	if st.Sensor.Mode != "" {
		s := st.Sensor
		fmt.Fprintf(w, "sensor:      %s; exec %d, escalation %d, exit %d, dropped %d\n", s.Mode, s.Exec, s.Escalation, s.Exit, s.Drops)
	} else {
		fmt.Fprintf(w, "sensor:      not running here (no agent, or monitoring off)\n")
	}
	if c := st.Containers; c != nil {
		fmt.Fprintf(w, "containers:  %d named, %d unknown, %d failed, %d unverified, %d dropped, %d evicted; %d cached\n",
			c.Found, c.NotFound, c.Failed, c.Unverified, c.Dropped, c.Evicted, c.Cached)
	}
	fmt.Fprintf(w, "rules:       %s\n", cell(st.RulesPath))
	if st.RulesError != "" {
		fmt.Fprintf(w, "rules error: %s (the previous rules stay active)\n", cell(st.RulesError))
	}
	fmt.Fprintf(w, "open:        %s\n", formatOpen(st.OpenBySev))
	return nil
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

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/fleet"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/tui"
)

// fleetSession is a connection and a fleet client for one command.
type fleetSession struct {
	nc *nats.Conn
	c  *fleet.Client
}

func (f *natsFlags) session(ctx context.Context, history bool) (*fleetSession, error) {
	return f.sessionWith(ctx, fleet.ClientOptions{NoHistory: !history})
}

func (f *natsFlags) sessionWith(ctx context.Context, o fleet.ClientOptions) (*fleetSession, error) {
	nc, err := f.connect("procwatch " + fleet.Identity(f.conn("", nil)))
	if err != nil {
		return nil, err
	}
	o.Caller = fleet.Identity(f.conn("", nil))
	c, err := fleet.NewClient(ctx, nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &fleetSession{nc: nc, c: c}, nil
}

func (s *fleetSession) close() {
	s.c.Close()
	s.nc.Close()
}

// withNATS wraps a command of another file: with --nats it runs fleetRun,
// otherwise what it did before (and refuses the fleet-only flags).
func withNATS(cmd *cobra.Command, nf *natsFlags, fleetOnly []string, fleetRun func(cmd *cobra.Command, args []string) error) {
	nf.register(cmd.Flags())
	orig := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if nf.urls != "" {
			return fleetRun(c, args)
		}
		if err := nf.check(); err != nil {
			return err
		}
		for _, name := range fleetOnly {
			if c.Flags().Changed(name) {
				return usageError("--%s works with --nats URL only", name)
			}
		}
		return orig(c, args)
	}
}

func addFleetFrontEnds(root *cobra.Command, opts *Options) {
	if root.RunE != nil {
		var nf natsFlags
		withNATS(root, &nf, nil, func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFleetUI(ctx, &nf)
		})
	}
	if cmd, _, err := root.Find([]string{"incidents"}); err == nil && cmd.Name() == "incidents" {
		var nf natsFlags
		var host string
		cmd.Flags().StringVar(&host, "host", "", "with --nats: only this host's incidents")
		withNATS(cmd, &nf, []string{"host"}, func(c *cobra.Command, _ []string) error { return runFleetIncidents(c, &nf, host) })
	}
	if cmd, _, err := root.Find([]string{"skip", "add"}); err == nil && cmd.Name() == "add" {
		var nf natsFlags
		var host string
		var all bool
		cmd.Flags().StringVar(&host, "host", "", "with --nats: a skip for this host only (a key of PROCWATCH_SKIPS)")
		cmd.Flags().BoolVar(&all, "fleet", false, "with --nats: a skip for every host of the fleet")
		withNATS(cmd, &nf, []string{"host", "fleet"}, func(c *cobra.Command, args []string) error { return runFleetSkipAdd(c, &nf, args, host, all) })
	}
	if cmd, _, err := root.Find([]string{"skip", "list"}); err == nil && cmd.Name() == "list" {
		var nf natsFlags
		var history bool
		cmd.Flags().BoolVar(&history, "history", false, "with --nats: every change of the fleet skips (who added or removed what, and when)")
		withNATS(cmd, &nf, []string{"history"}, func(c *cobra.Command, _ []string) error { return runFleetSkipList(c, &nf, history) })
	}
	if cmd, _, err := root.Find([]string{"skip", "rm"}); err == nil && cmd.Name() == "rm" {
		var nf natsFlags
		withNATS(cmd, &nf, nil, func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("with --nats give the key of the fleet skip (see procwatch skip list --nats URL)")
			}
			s, err := nf.session(c.Context(), false)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.c.RemoveFleetSkip(c.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "removed fleet skip %s; agents remove their copy within a second\n", args[0])
			return nil
		})
	}
	for _, word := range []string{"on", "off", "status"} {
		if cmd, _, err := root.Find([]string{"monitor", word}); err == nil && cmd.Name() == word {
			var nf natsFlags
			var hostsFlag []string
			cmd.Flags().StringArrayVar(&hostsFlag, "host", nil, "with --nats: this host (repeatable; required)")
			withNATS(cmd, &nf, []string{"host"}, func(c *cobra.Command, _ []string) error { return runFleetMonitor(c, &nf, word, hostsFlag) })
		}
	}
}

// runFleetUI runs the TUI on every host of the fleet.
func runFleetUI(ctx context.Context, nf *natsFlags) error {
	s, err := nf.session(ctx, true)
	if err != nil {
		return err
	}
	defer s.close()
	s.c.WaitHosts(ctx, 2*time.Second, 0)
	infos := s.c.Hosts()
	if len(infos) == 0 {
		return errNoFleetHosts
	}
	list := make([]tui.Host, len(infos))
	names := make([]string, len(infos))
	for i, h := range infos {
		fh := s.c.Host(h.Name, true)
		list[i] = tui.Host{Name: h.Name, Service: fh, Conn: fh.Conn}
		names[i] = h.Name
	}
	uiOpts, err := uiOptionsFromEnv()
	if err != nil {
		return err
	}
	uiOpts.MoreHosts = fleetUIHosts(ctx, s.c, names)
	return tui.RunHosts(ctx, list, uiOpts)
}

// fleetUIHosts brings the UI the hosts that start publishing after it
// started.
func fleetUIHosts(ctx context.Context, c *fleet.Client, known []string) <-chan tui.Host {
	out := make(chan tui.Host)
	go func() {
		defer close(out)
		for name := range c.NewHosts(ctx, known) {
			fh := c.Host(name, true)
			select {
			case out <- tui.Host{Name: name, Service: fh, Conn: fh.Conn}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// queryFromFlags rebuilds the incidents command's filters from its flags.
func queryFromFlags(cmd *cobra.Command) (api.Query, error) {
	fs := cmd.Flags()
	var f queryFlags
	f.severity, _ = fs.GetString("severity")
	f.typ, _ = fs.GetString("type")
	f.rule, _ = fs.GetString("rule")
	f.status, _ = fs.GetString("status")
	f.since, _ = fs.GetString("since")
	f.until, _ = fs.GetString("until")
	f.grep, _ = fs.GetString("grep")
	f.limit, _ = fs.GetInt("limit")
	return f.query(time.Now())
}

// runFleetIncidents lists the incidents of the stream, every host or one,
// with a HOST column.
func runFleetIncidents(cmd *cobra.Command, nf *natsFlags, host string) error {
	if host != "" {
		if err := fleet.CheckHost(host); err != nil {
			return usageError("--host: %v", err)
		}
	}
	q, err := queryFromFlags(cmd)
	if err != nil {
		return err
	}
	asJSON, _ := cmd.Flags().GetBool("json")
	follow, _ := cmd.Flags().GetBool("follow")
	ctx := cmd.Context()
	if follow {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	// With --follow, every version that arrives after the history was
	// read is printed as it comes; a full queue is counted, not waited on.
	live := make(chan rules.Incident, 4096)
	var caughtUp atomic.Bool
	var lost atomic.Uint64
	opts := fleet.ClientOptions{}
	if follow {
		opts.OnIncident = func(h string, inc *rules.Incident, _ uint64, dup bool, _ time.Time) {
			if dup || !caughtUp.Load() || (host != "" && h != host) {
				return
			}
			select {
			case live <- *inc:
			default:
				lost.Add(1)
			}
		}
	}
	s, err := nf.sessionWith(ctx, opts)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.c.WaitCaughtUp(ctx, 10*time.Second); err != nil {
		return err
	}
	caughtUp.Store(true)
	var out []rules.Incident
	for _, inc := range s.c.Incidents(host) {
		if q.Matches(&inc) {
			out = append(out, inc)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
	}
	if n := s.c.Evicted(); n > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "procwatch: the stream held more than %d incidents; %d of the most expendable (masked, acknowledged, lowest severity, oldest) are not listed; they are in each host's own store\n",
			fleet.DefaultMaxIncidents, n)
	}
	if err := writeFleetIncidents(cmd.OutOrStdout(), out, asJSON); err != nil || !follow {
		return err
	}
	return followFleet(ctx, cmd.OutOrStdout(), live, &lost, q, asJSON)
}

// followFleet prints incidents from live until ctx ends.
func followFleet(ctx context.Context, w io.Writer, live <-chan rules.Incident, lost *atomic.Uint64, q api.Query, asJSON bool) error {
	var reported uint64
	for {
		select {
		case inc := <-live:
			if !q.Matches(&inc) {
				continue
			}
			if !asJSON {
				fmt.Fprintf(w, "%-16s  ", cell(inc.Host))
			}
			if err := writeIncident(w, &inc, asJSON); err != nil {
				return err
			}
			if n := lost.Load(); n > reported && !asJSON {
				fmt.Fprintf(w, "(%d incident updates not shown: this terminal was slow; run procwatch incidents --nats to see them)\n", n-reported)
				reported = n
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func writeFleetIncidents(w io.Writer, incs []rules.Incident, asJSON bool) error {
	if asJSON {
		for i := range incs {
			if err := writeIncident(w, &incs[i], true); err != nil {
				return err
			}
		}
		return nil
	}
	if len(incs) == 0 {
		_, err := fmt.Fprintln(w, "no incidents match")
		return err
	}
	fmt.Fprintf(w, "%-16s  ", "HOST")
	fmt.Fprintf(w, rowFormat, "ID", "TIME", "SEVERITY", "STATUS", "COUNT", "RULE", "SUMMARY")
	for i := range incs {
		fmt.Fprintf(w, "%-16s  ", cell(incs[i].Host))
		if err := writeIncident(w, &incs[i], false); err != nil {
			return err
		}
	}
	return nil
}

// runFleetSkipAdd stores a skip in PROCWATCH_SKIPS for one host or the
// fleet; the agents apply it within a second.
func runFleetSkipAdd(cmd *cobra.Command, nf *natsFlags, args []string, host string, all bool) error {
	if (host == "") == !all {
		return usageError("with --nats give --host H (this host only) or --fleet (every host)")
	}
	rule, _ := cmd.Flags().GetString("rule")
	note, _ := cmd.Flags().GetString("note")
	sk := rules.Skip{Kind: args[0], Value: args[1], Rule: rule, Note: note}
	if dry, _ := cmd.Flags().GetBool("dry-run"); dry {
		return usageError("--dry-run works without --nats only (a fleet skip is previewed on each host)")
	}
	pin, _ := cmd.Flags().GetBool("pin")
	sha, _ := cmd.Flags().GetString("sha256")
	if _, err := applyPin(cmd, &sk, pin, sha); err != nil {
		return err
	}
	if err := rules.ValidateSkip(sk); err != nil {
		return usageError("%v", err)
	}
	s, err := nf.session(cmd.Context(), false)
	if err != nil {
		return err
	}
	defer s.close()
	key, err := s.c.AddFleetSkip(cmd.Context(), host, sk)
	if err != nil {
		return err
	}
	scope := "every host"
	if host != "" {
		scope = "host " + host
	}
	fmt.Fprintf(cmd.OutOrStdout(), "added fleet skip %s (%s) for %s; agents apply it within a second\n", key, describeSkip(sk), scope)
	return nil
}

func runFleetSkipList(cmd *cobra.Command, nf *natsFlags, history bool) error {
	s, err := nf.session(cmd.Context(), false)
	if err != nil {
		return err
	}
	defer s.close()
	es, err := s.c.FleetSkips(cmd.Context(), history)
	if err != nil {
		return err
	}
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		if es == nil {
			es = []fleet.FleetSkipEntry{}
		}
		b, err := json.MarshalIndent(es, "", "  ")
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(append(b, '\n'))
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSCOPE\tCHANGE\tWHEN\tBY\tSKIP\tNOTE")
	for _, e := range es {
		scope, change, by := "fleet", "added", e.Skip.Skip.AddedBy
		if e.Host != "" {
			scope = e.Host
		}
		switch {
		case e.Deleted:
			change, by = "deleted", ""
		case e.Skip.Removed:
			change, by = "removed", e.Skip.RemovedBy
		}
		what := "-"
		if !e.Deleted {
			what = describeSkip(e.Skip.Skip)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Key, scope, change, e.Time.Local().Format("2006-01-02 15:04:05"),
			cell(by), cell(what), cell(e.Skip.Skip.Note))
	}
	return tw.Flush()
}

// runFleetMonitor switches monitoring on or off on every --host at once,
// or shows their status, with one result line per host.
func runFleetMonitor(cmd *cobra.Command, nf *natsFlags, word string, hostList []string) error {
	if len(hostList) == 0 {
		return usageError("with --nats give the hosts: --host H (repeatable)")
	}
	for _, h := range hostList {
		if err := fleet.CheckHost(h); err != nil {
			return usageError("--host: %v", err)
		}
	}
	s, err := nf.session(cmd.Context(), false)
	if err != nil {
		return err
	}
	defer s.close()
	ctx := cmd.Context()
	w := cmd.OutOrStdout()
	if word == "status" {
		asJSON, _ := cmd.Flags().GetBool("json")
		failed := 0
		for i, h := range hostList {
			if i > 0 && !asJSON {
				fmt.Fprintln(w)
			}
			if err := runMonitorStatus(ctx, s.c.Host(h, false), w, asJSON, false, ""); err != nil {
				fmt.Fprintf(w, "host:        %s\nerror:       %s\n", cell(h), cell(err.Error()))
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("no status from %d of %d host(s)", failed, len(hostList))
		}
		return nil
	}
	errs := make([]error, len(hostList))
	var wg sync.WaitGroup
	for i, h := range hostList {
		wg.Go(func() { errs[i] = s.c.Host(h, false).SetMonitoring(ctx, word == "on") })
	}
	wg.Wait()
	var failed []string
	for i, h := range hostList {
		if errs[i] != nil {
			fmt.Fprintf(w, "%s: monitoring %s: failed: %s\n", cell(h), word, cell(errs[i].Error()))
			failed = append(failed, h)
			continue
		}
		fmt.Fprintf(w, "%s: monitoring %s: ok\n", cell(h), word)
	}
	if len(failed) > 0 {
		return fmt.Errorf("monitoring %s failed on %d of %d host(s): %s", word, len(failed), len(hostList), strings.Join(failed, ", "))
	}
	return nil
}

func newHostsCmd(opts *Options) *cobra.Command {
	var nf natsFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "List the fleet's hosts from their status messages (--nats URL)",
		Long: `List every procwatch host of a NATS fleet: its state (up, or stale when
its status stopped for 3 s), when it was last seen, monitoring, events,
drops, open incidents and how far its publishing has come. It listens to
the status subject for 2 s first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nf.urls == "" {
				return usageError("hosts needs --nats URL (SSH hosts are listed by the UI's Hosts screen)")
			}
			s, err := nf.session(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer s.close()
			s.c.WaitHosts(cmd.Context(), 2*time.Second, 0)
			return writeHosts(cmd.OutOrStdout(), s.c.Hosts(), asJSON)
		},
	}
	nf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "write a JSON array")
	return cmd
}

func writeHosts(w io.Writer, hs []fleet.HostInfo, asJSON bool) error {
	if asJSON {
		if hs == nil {
			hs = []fleet.HostInfo{}
		}
		b, err := json.MarshalIndent(hs, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	if len(hs) == 0 {
		return errNoFleetHosts
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tLAST SEEN\tMON\tEXEC/S\tDROPS\tOPEN\tQUEUED\tVERSION")
	for _, h := range hs {
		state, last, mon, exec, drops, open, queued, ver := "up", "-", "?", "-", "-", "-", "-", "-"
		if h.Stale {
			state = "stale"
		}
		if !h.LastSeen.IsZero() {
			last = h.LastSeen.Local().Format("15:04:05")
		}
		if st := h.Status; st != nil {
			mon = map[bool]string{true: "on", false: "off"}[st.Monitoring]
			exec, drops = fmt.Sprintf("%.0f", st.Rates.Exec), fmt.Sprint(st.Sensor.Drops)
			open, queued, ver = formatOpen(st.OpenBySev), fmt.Sprint(st.Publish.Pending), st.Version
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, state, last, mon, exec, drops, open, queued, cell(ver))
	}
	return tw.Flush()
}

func newFleetCmd(opts *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Set up the NATS JetStream stream and bucket a procwatch fleet uses",
		Args:  cobra.NoArgs,
	}
	var nf natsFlags
	var so fleet.StreamOptions
	setup := &cobra.Command{
		Use:   "setup",
		Short: "Create or update the PROCWATCH_INCIDENTS stream and the PROCWATCH_SKIPS bucket",
		Long: `Create (or update) the JetStream stream PROCWATCH_INCIDENTS, which keeps every
host's incidents, and the key-value bucket PROCWATCH_SKIPS of fleet skips.
An administrator runs it once; agents and viewers only use them. See
docs/fleet.md for retention and replicas.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nf.urls == "" {
				return usageError("fleet setup needs --nats URL")
			}
			nc, err := nf.connect("procwatch fleet setup")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if err := fleet.Setup(ctx, js, so); err != nil {
				return err
			}
			cfg := fleet.StreamConfig(so)
			fmt.Fprintf(cmd.OutOrStdout(), "stream %s: %d replica(s), max age %s, max %d MiB; bucket %s ready\n",
				fleet.StreamName, cfg.Replicas, cfg.MaxAge, cfg.MaxBytes>>20, fleet.SkipsBucket)
			return nil
		},
	}
	nf.register(setup.Flags())
	setup.Flags().IntVar(&so.Replicas, "replicas", fleet.DefaultReplicas, "copies of the stream and the bucket (1 on a single server)")
	setup.Flags().DurationVar(&so.MaxAge, "max-age", fleet.DefaultMaxAge, "incidents older than this leave the stream")
	setup.Flags().Int64Var(&so.MaxBytes, "max-bytes", fleet.DefaultMaxBytes, "the stream's size limit; the oldest incidents leave first")
	cmd.AddCommand(setup)
	return cmd
}

package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/tui"
)

// addHostFlags adds --host and --hosts-file to the root command. They are
// flags of the root command only, not persistent ones: only the UI reads
// them, and a subcommand given --host should say it does not know it
// rather than ignore it.
func addHostFlags(root *cobra.Command, opts *Options) {
	root.Flags().StringArrayVar(&opts.Hosts, "host", nil,
		"watch this host instead of the local one: NAME=COMMAND, where COMMAND (run with sh -c) speaks the agent protocol on stdin/stdout,\ne.g. web1='ssh web1 sudo procwatch serve --stdio' (repeatable; adds to or overrides the hosts file)")
	root.Flags().StringVar(&opts.HostsFile, "hosts-file", "", "hosts file (default: ~/.config/procwatch/hosts.yaml when it exists); see docs/hosts.md")
}

// hostSpecs returns the hosts the UI watches: those of the hosts file
// (the default one only when it exists) merged with the --host flags.
// None means the UI shows the local pipeline.
func hostSpecs(opts *Options) ([]hosts.Spec, error) {
	path, missingOK := opts.HostsFile, false
	if path == "" {
		def, err := hosts.DefaultFile()
		if err != nil {
			return nil, err
		}
		path, missingOK = def, true
	}
	fromFile, err := hosts.LoadFile(path, missingOK)
	if err != nil {
		return nil, err
	}
	var fromFlags []hosts.Spec
	for _, f := range opts.Hosts {
		s, err := hosts.ParseSpec(f)
		if err != nil {
			return nil, usageError("%v", err)
		}
		fromFlags = append(fromFlags, s)
	}
	return hosts.Merge(fromFile, fromFlags)
}

// runUI is what `procwatch` does without a subcommand: the terminal UI.
// When an agent answers on the socket the UI is its client. Otherwise this
// process runs the pipeline itself, exactly as `procwatch agent` does
// (sensor, rules, store, and the socket, so that `procwatch incidents`,
// `skip`, `monitor` and `export` reach it while the UI runs).
func runUI(opts *Options, cmd *cobra.Command, _ []string) error {
	if !term.IsTerminal(os.Stdin.Fd()) || !term.IsTerminal(os.Stdout.Fd()) {
		return errors.New("the terminal UI needs a terminal on stdin and stdout; in scripts use `procwatch incidents --json` or `procwatch events`")
	}
	uiOpts, err := uiOptionsFromEnv()
	if err != nil {
		return err
	}
	specs, err := hostSpecs(opts)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// SIGHUP means the terminal (or the SSH session) is gone: quit and
	// flush like SIGTERM. The rules watcher also listens for SIGHUP to
	// reload, which would otherwise keep a UI without a terminal running.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if len(specs) > 0 {
		return runUIHosts(ctx, specs, uiOpts)
	}

	sock := socketPath(opts)
	c, err := protocol.Dial(sock)
	if err == nil {
		uiOpts.Agent = sock
		runErr := tui.Run(ctx, c, uiOpts)
		return errors.Join(runErr, c.Close())
	}
	if !noAgent(err) {
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("%w; run as root or start the agent with --socket-group", err)
		}
		return err
	}
	return runUIWithPipeline(ctx, opts, sock, uiOpts)
}

// runUIHosts runs the UI on several hosts, each reached through its
// transport command and kept connected in the background.
func runUIHosts(ctx context.Context, specs []hosts.Spec, uiOpts tui.Options) error {
	list := make([]*hosts.Host, len(specs))
	for i, s := range specs {
		list[i] = hosts.FromSpec(s, hosts.Options{})
		list[i].Start(ctx)
	}
	defer func() {
		// Transports get their grace period in parallel, not one by one.
		var wg sync.WaitGroup
		for _, h := range list {
			wg.Go(func() { h.Close() })
		}
		wg.Wait()
	}()
	return tui.RunHosts(ctx, tui.FromHosts(list), uiOpts)
}

// uiOptionsFromEnv reads PROCWATCH_ROWS, the rows kept per stream.
func uiOptionsFromEnv() (tui.Options, error) {
	var o tui.Options
	if v := os.Getenv("PROCWATCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("PROCWATCH_ROWS=%q: want a positive number of rows kept per stream", v)
		}
		o.Rows = n
	}
	return o, nil
}

// runUIWithPipeline runs the pipeline and its socket in this process under
// the UI. Logs cannot go to the terminal the UI draws on, so they are kept
// (bounded) and printed on stderr once the UI has closed.
func runUIWithPipeline(ctx context.Context, opts *Options, sock string, uiOpts tui.Options) error {
	logs := &boundedLog{max: 64 << 10}
	log := slog.New(slog.NewTextHandler(logs, nil))
	defer logs.writeTo(os.Stderr)

	ln, err := protocol.Listen(sock, protocol.NoGroups)
	if err != nil {
		return err
	}
	defer ln.Close()
	p, err := openPipeline(opts, log, sensor.DefaultRingBufferBytes, true, nil)
	if err != nil {
		sensorErr := err
		if p, err = openPipeline(opts, log, 0, false, nil); err != nil {
			return err
		}
		p.Local.SetSourceError(sensorErr)
		log.Warn("running without the sensor", "reason", sensorErr)
	}
	uiOpts.OwnPipeline, uiOpts.OwnSocket = true, sock

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- p.Local.Run(runCtx) }()
	srvDone := make(chan error, 1)
	go func() {
		srv := &protocol.Server{Service: p.Local, Logger: log}
		srvDone <- srv.ServeListener(runCtx, ln)
	}()

	uiErr := tui.Run(runCtx, p.Local, uiOpts)
	stopRun()
	if err := <-srvDone; err != nil {
		log.Warn("socket server", "err", err)
	}
	runErr := <-runDone
	return errors.Join(uiErr, runErr, p.Close())
}

// boundedLog keeps the first max bytes of log output and counts the rest.
type boundedLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	max     int
	dropped int
}

func (b *boundedLog) Write(p []byte) (int, error) {
	n := len(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room < len(p) {
		b.dropped += len(p) - max(room, 0)
		p = p[:max(room, 0)]
	}
	b.buf.Write(p)
	return n, nil
}

func (b *boundedLog) writeTo(w io.Writer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w.Write(b.buf.Bytes())
	if b.dropped > 0 {
		fmt.Fprintf(w, "procwatch: %d more bytes of log were dropped\n", b.dropped)
	}
}

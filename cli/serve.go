package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/sensor"
)

func newServeCmd(opts *Options) *cobra.Command {
	var stdio bool
	cmd := &cobra.Command{
		Use:   "serve --stdio",
		Short: "Speak the agent protocol on stdin/stdout (the SSH transport)",
		Long: `Speak the agent protocol (docs/protocol.md) on stdin and stdout, so that a
front end on another machine can run "ssh HOST procwatch serve --stdio".

When an agent runs on this host the bytes are relayed to its socket, so
the remote front end sees the live pipeline. Otherwise this process runs
the pipeline itself: with the sensor when it loads (root), without it when
it does not (queries and changes only). Logs go to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !stdio {
				return usageError("serve needs --stdio, the only transport so far")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			conn := stdioConn{r: cmd.InOrStdin(), w: cmd.OutOrStdout()}
			return runServe(ctx, opts, conn, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&stdio, "stdio", false, "use stdin and stdout")
	return cmd
}

func runServe(ctx context.Context, opts *Options, conn io.ReadWriteCloser, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	sock := socketPath(opts)
	ac, err := net.Dial("unix", sock)
	if err == nil {
		log.Debug("relaying to the agent", "socket", sock)
		return relay(ctx, conn, ac)
	}
	if !noAgent(err) {
		return fmt.Errorf("connect to agent at %s: %w", sock, err)
	}
	p, err := openPipeline(opts, log, sensor.DefaultRingBufferBytes, true, nil)
	if err != nil {
		sensorErr := err
		if p, err = openPipeline(opts, log, 0, false, nil); err != nil {
			return err
		}
		log.Warn("running without the sensor: queries and changes only", "reason", sensorErr)
		p.Local.SetSourceError(sensorErr)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- p.Local.Run(runCtx) }()
	// Changes are recorded as this process's uid, with the SSH login and
	// client address sshd put in its environment.
	who := protocol.SSHActor()
	srv := &protocol.Server{Service: p.Local, Logger: log, Stdio: &who}
	serveErr := srv.Serve(runCtx, conn)
	stopRun()
	runErr := <-runDone
	return errors.Join(serveErr, runErr, p.Close())
}

// relay copies bytes both ways between the front end and the agent until
// the agent's side ends: when the front end closes its input, the agent
// is told (half close), answers what is pending and hangs up. The protocol
// passes through untouched, so the hello and version check happen end to
// end.
func relay(ctx context.Context, front io.ReadWriteCloser, back net.Conn) error {
	go func() {
		io.Copy(back, front)
		if uc, ok := back.(*net.UnixConn); ok {
			uc.CloseWrite()
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(front, back)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
	}
	back.Close()
	front.Close()
	return err
}

// stdioConn joins stdin and stdout into one stream.
type stdioConn struct {
	r io.Reader
	w io.Writer
}

func (c stdioConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c stdioConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Close closes stdin and stdout when they are files, which ends a blocked
// read at shutdown.
func (c stdioConn) Close() error {
	var errs []error
	if cl, ok := c.r.(io.Closer); ok {
		errs = append(errs, cl.Close())
	}
	if cl, ok := c.w.(io.Closer); ok {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/procwatch/procwatch/api"
)

// progressDelay is how long an export runs before a progress bar appears;
// quick exports stay silent.
const progressDelay = time.Second

func newExportCmd(opts *Options) *cobra.Command {
	var (
		f      queryFlags
		format string
		output string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write incidents as JSON or NDJSON for analysis elsewhere",
		Long: `Write the incidents that match the filters, newest first: --format json is
one JSON array, ndjson one incident per line. Field names follow
docs/incident.schema.json; the process fields are those of
"procwatch events --json", and bytes that are not valid UTF-8 are kept as
\udcXX escapes, so the exact bytes can be recovered.

With -o FILE the file is created mode 0600 and only appears, whole, once
the export has succeeded. A progress bar shows on stderr when stderr is a
terminal and the export takes more than a second.`,
		Example: `  procwatch export -o incidents.json
  procwatch export --format ndjson --since 7d --severity high | jq .summary`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "json" && format != "ndjson" {
				return usageError("--format %q: want json or ndjson", format)
			}
			q, err := f.query(time.Now())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			stderr := cmd.ErrOrStderr()
			var bar *lazyBar
			if fd, ok := stderr.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(fd.Fd())) {
				bar = &lazyBar{w: stderr, start: time.Now()}
				ctx = api.WithExportProgress(ctx, bar.update)
			}
			return withService(ctx, opts, func(svc api.Service) error {
				n, err := runExport(ctx, svc, q, format, output, cmd.OutOrStdout())
				bar.finish()
				if err != nil && !errors.Is(err, api.ErrDamaged) {
					return err
				}
				if output != "" && output != "-" {
					fmt.Fprintf(stderr, "exported %s to %s\n", nounCount(n, "incident"), output)
				}
				return err
			})
		},
	}
	f.register(cmd.Flags(), 0)
	cmd.Flags().StringVar(&format, "format", "json", "json (one array) or ndjson (one incident per line)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to FILE (mode 0600) instead of stdout")
	return cmd
}

// runExport writes the export to stdout or, atomically, to a file.
func runExport(ctx context.Context, svc api.Service, q api.Query, format, output string, stdout io.Writer) (int, error) {
	if output == "" || output == "-" {
		w := bufio.NewWriterSize(stdout, 256<<10)
		n, err := svc.Export(ctx, q, format, w)
		damaged := asDamaged(err)
		if err != nil && damaged == nil {
			return n, err
		}
		if err := w.Flush(); err != nil {
			return n, fmt.Errorf("write export: %w", err)
		}
		return n, damaged
	}
	tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
	if err != nil {
		return 0, fmt.Errorf("create export file in %s: %w", filepath.Dir(output), err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("chmod export file: %w", err)
	}
	w := bufio.NewWriterSize(tmp, 256<<10)
	n, err := svc.Export(ctx, q, format, w)
	damaged := asDamaged(err)
	if err != nil && damaged == nil {
		return n, err
	}
	if err := errors.Join(w.Flush(), tmp.Sync(), tmp.Close()); err != nil {
		return n, fmt.Errorf("write export file %s: %w", output, err)
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return n, fmt.Errorf("move export into place at %s: %w", output, err)
	}
	keep = true
	return n, damaged
}

// asDamaged returns the warning of an export that skipped damaged
// incidents but wrote every other one (nil for success or other errors):
// the output is kept and the warning shown (exit 1).
func asDamaged(err error) error {
	if errors.Is(err, api.ErrDamaged) {
		return fmt.Errorf("warning: %w", err)
	}
	return nil
}

// lazyBar draws a progress bar only once an export has run for
// progressDelay. Progress may come from another goroutine.
type lazyBar struct {
	w     io.Writer
	start time.Time

	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func (b *lazyBar) update(done, total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar == nil {
		if time.Since(b.start) < progressDelay || total <= 0 {
			return
		}
		b.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetDescription("exporting"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	b.bar.Set(done)
}

func (b *lazyBar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.Finish()
		fmt.Fprintln(b.w)
	}
}

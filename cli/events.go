package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/sensor"
	"github.com/procwatch/procwatch/store"
)

func newEventsCmd(opts *Options) *cobra.Command {
	var asJSON bool
	var ringMiB int
	cmd := &cobra.Command{
		Use: "events",
		Example: `  procwatch events
  procwatch events --json > capture.ndjson`,
		Short: "Stream live process events (exec, escalation, exit) until Ctrl-C",
		Long: `Stream every exec (and failed exec), escalation to root (and refused
attempt) and process exit seen by the eBPF sensor, until Ctrl-C.

Default output is aligned columns with process strings escaped for the
terminal. --json writes one JSON object per line (NDJSON) with the field
names documented in the README; bytes that are not valid UTF-8 are written
as \udcXX escapes so the exact bytes can be recovered.

On exit, event and drop counts are printed to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var namer pipeline.ContainerNamer
			if c := openContainers(opts, slog.New(slog.DiscardHandler), true); c != nil {
				defer c.Close()
				namer = c
			}
			return runEventsNamed(ctx, os.Stdout, os.Stderr, asJSON, ringMiB, namer)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "write NDJSON, one event per line")
	cmd.Flags().IntVar(&ringMiB, "ring-buffer-mib", sensor.DefaultRingBufferBytes>>20, "BPF ring buffer size in MiB (a power of two)")
	return cmd
}

// flushDelay bounds how long an event waits in the output buffer of
// "procwatch events".
const flushDelay = 200 * time.Millisecond

func runEvents(ctx context.Context, stdout, stderr io.Writer, asJSON bool, ringMiB int) error {
	return runEventsNamed(ctx, stdout, stderr, asJSON, ringMiB, nil)
}

// runEventsNamed is runEvents with events in containers named by namer
// (nil: not named), as the pipeline names them.
func runEventsNamed(ctx context.Context, stdout, stderr io.Writer, asJSON bool, ringMiB int, namer pipeline.ContainerNamer) error {
	var s *sensor.Sensor
	s, err := sensor.New(sensor.Config{
		RingBufferBytes: ringMiB << 20,
		Attached: func() {
			fmt.Fprintf(stderr, "procwatch: sensor attached (mode %s, ring buffer %d MiB); Ctrl-C stops\n", s.Mode(), ringMiB)
		},
	})
	if err != nil {
		return err
	}
	defer s.Close()

	// Output is buffered for throughput and written out flushDelay after
	// the first event a flush left waiting, so the last events of a quiet
	// moment show up promptly and an idle stream never wakes.
	var mu sync.Mutex
	w := bufio.NewWriterSize(stdout, 256<<10)
	var writeErr error
	scheduled := false // a flush is due; under mu
	flush := time.AfterFunc(time.Hour, func() {
		mu.Lock()
		defer mu.Unlock()
		scheduled = false
		if writeErr == nil {
			writeErr = w.Flush()
		}
	})
	flush.Stop()
	flushLater := func() { // under mu
		if !scheduled {
			flush.Reset(flushDelay)
			scheduled = true
		}
	}
	var line []byte
	if !asJSON {
		fmt.Fprintln(w, eventHeader)
	}
	err = s.Run(ctx, func(ev *event.Event) {
		if namer != nil && ev.ContainerID != "" {
			namer.Enrich(ev)
		}
		mu.Lock()
		defer mu.Unlock()
		if writeErr != nil {
			return
		}
		if asJSON {
			// The same bytes as json.Marshal(ev), without its reflection.
			line = append(store.AppendEventJSON(line[:0], ev), '\n')
			_, writeErr = w.Write(line)
		} else {
			_, writeErr = io.WriteString(w, formatEvent(ev))
		}
		flushLater()
	})
	flush.Stop()
	mu.Lock()
	defer mu.Unlock()
	if ferr := w.Flush(); writeErr == nil {
		writeErr = ferr
	}
	st := s.Stats()
	fmt.Fprintf(stderr, "procwatch: %d exec, %d escalation, %d exit events; %d dropped; %d malformed\n",
		st.Exec, st.Escalation, st.Exit, st.Drops, st.Malformed)
	if err != nil {
		return err
	}
	if writeErr != nil {
		return fmt.Errorf("write events: %w", writeErr)
	}
	return nil
}

const eventHeader = "TIME          TYPE        OUTCOME  PID     PPID    UID    COMM             DETAIL"

// formatEvent renders one event as an aligned, terminal-safe line.
func formatEvent(ev *event.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-13s %-11s %-8s %-7d %-7d %-6d %-16s ",
		ev.Time.Format("15:04:05.000"), ev.Type, ev.Outcome, ev.PID, ev.PPID, ev.UID, ev.Comm.Display())
	switch ev.Type {
	case event.TypeExec:
		b.WriteString(ev.Exe.Display())
		if ev.Errno != "" {
			b.WriteString(" " + ev.Errno)
		}
		for _, a := range ev.Args[min(1, len(ev.Args)):] {
			b.WriteString(" " + a.Display())
		}
		if ev.ArgsTruncated {
			b.WriteString(" …")
		}
	case event.TypeEscalation:
		fmt.Fprintf(&b, "%s %s uid %d→%d euid %d→%d", ev.Method, ev.Exe.Display(),
			deref(ev.OldUID), deref(ev.NewUID), deref(ev.OldEUID), deref(ev.NewEUID))
		if ev.Errno != "" {
			b.WriteString(" " + ev.Errno)
		}
	case event.TypeExit:
		b.WriteString(ev.Exe.Display())
		if ev.Signal != "" {
			b.WriteString(" killed by " + ev.Signal)
			if ev.CoreDumped {
				b.WriteString(" (core dumped)")
			}
		} else if ev.ExitCode != nil {
			b.WriteString(" exit " + strconv.Itoa(*ev.ExitCode))
		}
		b.WriteString(" after " + time.Duration(ev.DurationNS).Round(time.Microsecond).String())
	}
	b.WriteByte('\n')
	return b.String()
}

func deref(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

package cli

import (
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/bench"
	"github.com/procwatch/procwatch/sensor"
)

func newBenchCmd(opts *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure what procwatch costs this host",
	}
	var cfg bench.ExecConfig
	var ringMiB int
	var cpuProfile string
	execCmd := &cobra.Command{
		Use:   "exec",
		Short: "Fork/exec storm without and with the sensor; prints the throughput ratio, capture, drops, CPU and RSS",
		Long: `Runs a storm of a static no-op binary (built with gcc) from N workers,
first without the sensor and then with it running and consuming events, for
the given number of rounds, and prints side-by-side figures: throughput
with/without (the ratio), events captured versus expected, drops, the
sensor's user+system CPU per event and its peak RSS. Needs root and gcc.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Workers < 1 || cfg.Rounds < 1 || cfg.Duration <= 0 {
				return fmt.Errorf("bench exec: --workers and --rounds must be at least 1 and --duration positive")
			}
			cfg.Sensor.RingBufferBytes = ringMiB << 20
			stopProfile, err := startCPUProfile("--cpuprofile", cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			res, err := bench.RunExec(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), res.Report())
			return nil
		},
	}
	execCmd.Flags().IntVar(&cfg.Workers, "workers", 2, "concurrent fork/exec loops")
	execCmd.Flags().DurationVar(&cfg.Duration, "duration", 5*time.Second, "length of each phase")
	execCmd.Flags().IntVar(&cfg.Rounds, "rounds", 2, "without/with pairs, alternated to even out noise")
	execCmd.Flags().IntVar(&ringMiB, "ring-buffer-mib", sensor.DefaultRingBufferBytes>>20, "BPF ring buffer size in MiB")
	execCmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file")
	cmd.AddCommand(execCmd, newBenchMemoryCmd())
	return cmd
}

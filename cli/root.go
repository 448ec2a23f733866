// Package cli holds procwatch's command line: one file per command, all
// hanging off the root command built here.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/pipeline"
)

// Options are the global flags every command can read.
type Options struct {
	RulesPath string // --rules: rules file; empty means the embedded default
	DBPath    string // --db: incident database; empty means the default path
	Socket    string // --socket: agent socket; empty means the default path
	// Hosts are the --host NAME=COMMAND flags: the TUI watches these
	// hosts (and those of the hosts file) instead of the local pipeline.
	Hosts []string
	// HostsFile is --hosts-file; empty means the default hosts file.
	HostsFile string
	// ContainerSockets are the --container-socket flags (cli/containers.go).
	ContainerSockets []string

	// agentHost and agentSource let the agent's fleet flags (fleet.go)
	// name the host and replace the sensor with a replayed capture.
	agentHost   string
	agentSource pipeline.EventSource
}

// Version is procwatch's version, printed by --version and sent in fleet
// status messages. Packaging sets it with -ldflags "-X ...cli.Version=...".
var Version = "0.1.0"

// ExitError carries a specific exit code out of a command, for commands
// whose contract names one (for example `rules check` exits 1 on a bad file).
type ExitError struct {
	Code int
	Err  error
}

// Error is the wrapped error's message alone: the exit code is for the
// shell, not for the line Main prints.
func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap gives the wrapped error, so errors.Is and errors.As see through
// the exit code.
func (e *ExitError) Unwrap() error { return e.Err }

// subcommands lists the constructor of every subcommand, one per file. To
// add a command, write its file and name its constructor here: this list
// and the two below are the whole command tree's map.
func subcommands() []func(*Options) *cobra.Command {
	return []func(*Options) *cobra.Command{
		newAgentCmd,     // agent.go
		newBenchCmd,     // bench.go
		newEventsCmd,    // events.go
		newExportCmd,    // export.go
		newHostsCmd,     // fleetcmds.go
		newFleetCmd,     // fleetcmds.go
		newIncidentsCmd, // incidents.go
		newMonitorCmd,   // monitor.go
		newRulesCmd,     // rules.go
		newServeCmd,     // serve.go
		newSkipCmd,      // skip.go
	}
}

// rootFlags add global flags that belong to one command's file (the TUI's
// --host), so that file keeps its flags next to the code that reads them.
func rootFlags() []func(root *cobra.Command, opts *Options) {
	return []func(root *cobra.Command, opts *Options){
		addContainerFlags, // containers.go: --container-socket
		addHostFlags,      // ui.go: --host, --hosts-file
	}
}

// rootHooks run once the whole command tree is built, so a file can adjust
// other files' commands. Order matters: the system rules default is set
// before the fleet front ends wrap the commands that read rules.
func rootHooks() []func(root *cobra.Command, opts *Options) {
	return []func(root *cobra.Command, opts *Options){
		defaultToSystemRules, // etcrules.go
		addFleetFrontEnds,    // fleetcmds.go: --nats on several commands
	}
}

// NewRoot builds the procwatch command tree.
func NewRoot() *cobra.Command {
	opts := &Options{}
	root := &cobra.Command{
		Use:   "procwatch",
		Short: "Live process monitor: every exec, root escalation and exit, from eBPF",
		Long: `procwatch watches every process on this host with an eBPF sensor:
each execution (and each failed one), each escalation to root (and each
refused attempt), and each exit. Rules turn events into incidents.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&opts.RulesPath, "rules", "", "rules file (default: /etc/procwatch/rules.yaml when it exists, else the built-in rules.yaml)")
	root.PersistentFlags().StringVar(&opts.DBPath, "db", "", "incident database (default: /var/lib/procwatch/procwatch.db as root)")
	root.PersistentFlags().StringVar(&opts.Socket, "socket", "", "agent socket (default: /run/procwatch/procwatch.sock)")
	for _, add := range rootFlags() {
		add(root, opts)
	}
	// Without a subcommand procwatch opens the terminal UI (ui.go).
	root.RunE = func(cmd *cobra.Command, args []string) error { return runUI(opts, cmd, args) }
	root.Args = cobra.NoArgs
	for _, c := range subcommands() {
		root.AddCommand(c(opts))
	}
	for _, h := range rootHooks() {
		h(root, opts)
	}
	// The completion command is added now, not when Execute runs, so that
	// its usage errors ("completion tcsh") are marked like every other's.
	root.InitDefaultCompletionCmd()
	writeCompletionsToOut(root)
	markUsageErrors(root)
	registerCompletions(root, opts)
	return root
}

// writeCompletionsToOut makes `completion SHELL` write where the command's
// output is set at run time: cobra's own commands keep the writer current
// when they were made, before a caller (a test) could set it.
func writeCompletionsToOut(root *cobra.Command) {
	gen := map[string]func(*cobra.Command) error{
		"bash":       func(c *cobra.Command) error { return root.GenBashCompletionV2(c.OutOrStdout(), true) },
		"zsh":        func(c *cobra.Command) error { return root.GenZshCompletion(c.OutOrStdout()) },
		"fish":       func(c *cobra.Command) error { return root.GenFishCompletion(c.OutOrStdout(), true) },
		"powershell": func(c *cobra.Command) error { return root.GenPowerShellCompletionWithDesc(c.OutOrStdout()) },
	}
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		for _, sub := range c.Commands() {
			if g, ok := gen[sub.Name()]; ok {
				sub.Run = nil
				sub.RunE = func(c *cobra.Command, _ []string) error { return g(c) }
			}
		}
	}
}

// markUsageErrors makes every way of calling a command wrongly (an unknown
// flag, a bad flag value, wrong arguments, an unknown subcommand) exit with
// code 2, as usage errors conventionally do; other failures exit with 1.
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &ExitError{Code: 2, Err: flagError(c, err)} })
	cmd.SuggestionsMinimumDistance = suggestDistance
	switch args := cmd.Args; {
	case cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil:
		// A group command such as `skip` or `rules`: an unknown subcommand.
		cmd.Args = func(c *cobra.Command, a []string) error {
			if len(a) > 0 {
				return unknownCommand(c, a[0])
			}
			return nil
		}
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	case cmd.HasSubCommands() && args != nil:
		// The root runs the TUI: an argument is a mistyped command.
		cmd.Args = func(c *cobra.Command, a []string) error {
			if len(a) > 0 {
				return unknownCommand(c, a[0])
			}
			return nil
		}
	case args != nil:
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				var ee *ExitError
				if errors.As(err, &ee) {
					return err
				}
				return &ExitError{Code: 2, Err: argsError(c, a, err)}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

// Main runs procwatch with args and returns the process exit code. Errors
// are printed as one line on stderr.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	return execute(root, os.Stderr)
}

// execute runs root, writes its error as one line on stderr and returns the
// exit code: the ExitError's code, else 1. Tests run commands through it
// so they see the codes Main gives.
func execute(root *cobra.Command, stderr io.Writer) int {
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "procwatch: %v\n", err)
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

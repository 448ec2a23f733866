package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// completeTimeout bounds how long a completion waits for the agent: a
// shell must not hang on a TAB.
const completeTimeout = 2 * time.Second

// fixedCompletions are the flags whose values are a closed list.
var fixedCompletions = map[string][]string{
	"severity": {"info", "low", "medium", "high", "critical"},
	"status":   {"open", "acknowledged", "masked"},
	"type":     {rules.TypeBinExecution, rules.TypeRootEscalation, rules.TypeTerminationFailure},
	"format":   {"json", "ndjson"},
}

// registerCompletions makes `procwatch completion bash|zsh|fish` complete
// flag values too: the closed lists above, rule names from the active
// rules, host names from the hosts file, and skip ids for `skip rm`.
func registerCompletions(root *cobra.Command, opts *Options) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		register := func(fs *pflag.FlagSet) {
			fs.VisitAll(func(f *pflag.Flag) {
				if _, done := c.GetFlagCompletionFunc(f.Name); done {
					return
				}
				var fn cobra.CompletionFunc
				if vals, ok := fixedCompletions[f.Name]; ok {
					fn = cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp)
				}
				switch f.Name {
				case "rule":
					fn = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
						return ruleNames(opts), cobra.ShellCompDirectiveNoFileComp
					}
				case "host":
					if c == root { // --host NAME=COMMAND
						fn = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
							return hostNames(opts, "="), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
						}
					} else { // a host by name (the fleet commands)
						fn = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
							return hostNames(opts, ""), cobra.ShellCompDirectiveNoFileComp
						}
					}
				}
				if fn != nil {
					_ = c.RegisterFlagCompletionFunc(f.Name, fn)
				}
			})
		}
		register(c.LocalNonPersistentFlags())
		if c == root {
			register(c.PersistentFlags())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// ruleNames lists the active rules: the agent's when one answers, else
// those of --rules (or the built-in file).
func ruleNames(opts *Options) []string {
	var rs []rules.Rule
	if c, err := protocol.Dial(socketPath(opts)); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
		rs, _ = c.Rules(ctx)
		cancel()
		c.Close()
	} else if set, err := rules.Load(opts.RulesPath); err == nil {
		rs = set.Rules
	}
	names := make([]string, 0, len(rs))
	for _, r := range rs {
		names = append(names, r.Name+"\t"+oneLine(r.Description))
	}
	return names
}

// hostNames lists the hosts file's names, each followed by suffix ("="
// to go on with a command, for the UI's --host NAME=COMMAND).
func hostNames(opts *Options, suffix string) []string {
	path, missingOK := opts.HostsFile, false
	if path == "" {
		def, err := hosts.DefaultFile()
		if err != nil {
			return nil
		}
		path, missingOK = def, true
	}
	specs, err := hosts.LoadFile(path, missingOK)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(specs))
	for _, s := range specs {
		out = append(out, s.Name+suffix)
	}
	return out
}

// skipIDs completes `skip rm`: the added skips' ids with what each is,
// from the agent or, with none, the database read-only.
func skipIDs(opts *Options) []string {
	var skips []rules.Skip
	if c, err := protocol.Dial(socketPath(opts)); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
		skips, _ = c.Skips(ctx)
		cancel()
		c.Close()
	} else if st, err := store.Open(dbPath(opts), store.Options{ReadOnly: true, RetentionAge: -1, RetentionCount: -1}); err == nil {
		skips, _ = st.Skips()
		st.Close()
	}
	var out []string
	for _, s := range skips {
		if s.Source == rules.SourceAdded && s.ID != "" {
			out = append(out, s.ID+"\t"+oneLine(describeSkip(s)))
		}
	}
	return out
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:59]) + "…"
	}
	return s
}

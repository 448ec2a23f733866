package cli

import (
	"os"

	"github.com/spf13/cobra"
)

// SystemRules is the rules file the Debian package installs as a conffile.
// Without --rules, procwatch uses it when it exists, and the built-in
// rules otherwise.
const SystemRules = "/etc/procwatch/rules.yaml"

// systemRulesPath is SystemRules; tests point it elsewhere.
var systemRulesPath = SystemRules

// defaultToSystemRules makes every command read SystemRules when --rules
// is not given and the file is there. A file that exists but cannot be
// read is still chosen, so its error is reported instead of silently
// falling back to other rules.
func defaultToSystemRules(root *cobra.Command, opts *Options) {
	prev := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if opts.RulesPath == "" {
			if _, err := os.Stat(systemRulesPath); err == nil {
				opts.RulesPath = systemRulesPath
			}
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

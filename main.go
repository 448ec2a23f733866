// Command procwatch is a live process monitor for Linux hosts: an eBPF
// sensor reports every exec, root escalation and exit, rules turn them into
// incidents, and a terminal UI lets an operator triage them.
package main

import (
	_ "embed"
	"os"

	"github.com/procwatch/procwatch/cli"
	"github.com/procwatch/procwatch/rules"
)

// defaultRules is the repository's rules.yaml, built in so that procwatch
// works without a rules file. It is embedded here because go:embed cannot
// reach the repository root from the rules package.
//
//go:embed rules.yaml
var defaultRules []byte

func main() {
	rules.DefaultYAML = defaultRules
	os.Exit(cli.Main(os.Args[1:]))
}

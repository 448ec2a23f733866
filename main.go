// Command procwatch is a live process monitor for Linux hosts: an eBPF
// sensor reports every exec, root escalation and exit, rules turn them into
// incidents, and a terminal UI lets an operator triage them.
package main

import (
	"os"

	"github.com/procwatch/procwatch/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}

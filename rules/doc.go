// Package rules turns sensor events into incidents. A rule has a type
// (bin-execution, root-escalation, termination-failure), selectors that say
// which processes it covers, a severity per outcome, and skip lists that cut
// false positives. Rules are read from rules.yaml (version 1).
package rules

// Package rules turns sensor events into incidents. A rule has a type
// (bin-execution, root-escalation, termination-failure), selectors that say
// which processes it covers, a severity per outcome, and skip lists that cut
// false positives. Rules are read from rules.yaml (version 1).
//
// Parse validates a file strictly and reports every problem with its
// position; Engine judges events against a RuleSet without allocating for
// events that raise nothing, aggregates repeats (dedup) and applies skips
// from the file and from the database. Global skips never hide a
// root-escalation incident: only a skip written for the escalation rule
// does. Watcher reloads a file on change or SIGHUP, keeping the previous
// rules when the new file is broken. Replay runs a capture through an
// Engine offline, and ImportDeepfence converts a Deepfence configuration.
// docs/rules.md is the operator's reference.
package rules

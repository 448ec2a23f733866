// Package sensor loads procwatch's eBPF programs (package bpf), reads their
// ring buffer, and turns the kernel's records into event.Events: it decodes
// them, keeps a process table for ancestry (filled from /proc for processes
// that started before it or whose events were lost), finds container ids
// in cgroup paths, and counts every loss. It runs on Linux only; elsewhere
// New says so. Only the assembly points (package daemon, the CLI and the
// benchmarks) import it: the rest of procwatch sees events through
// pipeline.EventSource (layering_test.go).
package sensor

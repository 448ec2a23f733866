// Package bpf holds procwatch's eBPF programs (procwatch.bpf.c) and the Go
// bindings bpf2go generates from them. The compiled objects are committed so
// that `go build` needs no clang; `go generate ./bpf` rebuilds them and needs
// Debian's clang, llvm and libbpf-dev.
//
// vmlinux.h holds the kernel's types for CO-RE. It was generated with
// bpftool (Debian package bpftool) and is committed, so that the objects
// rebuild identically on any machine:
//
//	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h
//
// CO-RE relocations adapt the compiled programs to the running kernel's
// layout at load time, so vmlinux.h need not match the target kernel.
package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -target bpfel -type event_hdr -type event_type -type esc_method -type event_flag Procwatch procwatch.bpf.c -- -I. -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror

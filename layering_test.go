package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the event path's dependencies pointing one way. The
// event types are shared by every package, so they depend on the standard
// library only; everything that consumes events (rules, store, the API, the
// protocol, the hosts layer and the UI) must build without the eBPF loader,
// which is what lets the operator's laptop build the multi-host UI.
func TestLayering(t *testing.T) {
	stdlibOnly := []string{"./event"}
	noLoader := []string{"./event", "./rules", "./store", "./api", "./protocol", "./hosts", "./tui", "./pipeline", "./metrics", "./fleet"}
	for _, pkg := range stdlibOnly {
		for _, dep := range deps(t, pkg) {
			if strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") && !strings.HasPrefix(dep, "github.com/procwatch/procwatch/event") {
				t.Errorf("%s depends on %s; it must use the standard library only", pkg, dep)
			}
		}
	}
	for _, pkg := range noLoader {
		for _, dep := range deps(t, pkg) {
			if strings.HasPrefix(dep, "github.com/cilium/ebpf") || dep == "github.com/procwatch/procwatch/sensor" || dep == "github.com/procwatch/procwatch/bpf" {
				t.Errorf("%s depends on %s; only the sensor and its commands may load BPF", pkg, dep)
			}
		}
	}
}

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

package fleet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/procwatch/procwatch/rules"
)

// requireReal skips (or fails with PROCWATCH_REQUIRE_BPF=1) without root.
func requireReal(t *testing.T) bool {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	require := os.Getenv("PROCWATCH_REQUIRE_BPF") == "1"
	if os.Geteuid() != 0 {
		if require {
			t.Fatal("PROCWATCH_REQUIRE_BPF=1 but not root")
		}
		t.Skip("not root")
	}
	return require
}

// startDebianServer runs the nats-server binary Debian installs, with
// JetStream, on a free loopback port.
func startDebianServer(t *testing.T, require bool, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nats-server"); err != nil {
			if require {
				t.Fatal("nats-server is not installed (apt-get install nats-server; .ci/run does)")
			}
			t.Skip("nats-server is not installed")
		}
	}
	port := freePort(t)
	cmd := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-sd", filepath.Join(dir, "js"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "nats-server listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "nats://" + addr
}

// fleetAgentProc is a real `procwatch agent --nats` with the real sensor.
type fleetAgentProc struct {
	cmd *exec.Cmd
	log *os.File
}

func startFleetAgent(t *testing.T, bin, dir, host, url string) *fleetAgentProc {
	t.Helper()
	d := filepath.Join(dir, host)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(d, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--db", filepath.Join(d, "procwatch.db"), "--socket", filepath.Join(d, "procwatch.sock"),
		"agent", "--nats", url, "--host-name", host)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &fleetAgentProc{cmd: cmd, log: lf}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		lf.Close()
	})
	return a
}

func (a *fleetAgentProc) logText() string {
	b, _ := os.ReadFile(a.log.Name())
	return string(b)
}

// TestDebianServerRealAgents: Debian's nats-server, two real agents with
// real sensors under two host names on this machine. A real set-uid
// escalation shows up in the fleet view for both hosts; a fleet-wide skip
// stops it on both; monitoring is switched off on one host. Root, BPF and
// the nats-server package are needed (it skips without them unless
// PROCWATCH_REQUIRE_BPF=1).
func TestDebianServerRealAgents(t *testing.T) {
	require := requireReal(t)
	dir, err := os.MkdirTemp("", "procwatch-fleet-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // the probe runs as nobody
	url := startDebianServer(t, require, dir)
	setupStreams(t, url, 1)
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	bin := filepath.Join(dir, "procwatch")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/procwatch/procwatch").CombinedOutput(); err != nil {
		t.Fatalf("build procwatch: %v\n%s", err, out)
	}
	probe := buildProbe(t, goTool, dir)

	hostsUp := []string{"fleet-a", "fleet-b"}
	agents := map[string]*fleetAgentProc{}
	for _, h := range hostsUp {
		agents[h] = startFleetAgent(t, bin, dir, h, url)
	}
	v := newViewer(t, url)
	for _, h := range hostsUp {
		ok := false
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && !ok {
			ok = strings.Contains(agents[h].logText(), "sensor attached") && v.Host(h, false).Conn().State.String() == "connected"
			time.Sleep(100 * time.Millisecond)
		}
		if !ok {
			log := agents[h].logText()
			if !require && (strings.Contains(log, "start sensor") || strings.Contains(log, "operation not permitted")) {
				t.Skipf("the agent's sensor did not load (no BPF here?):\n%s", log)
			}
			t.Fatalf("%s not up in the fleet view:\n%s", h, log)
		}
	}

	runProbe := func() {
		cmd := exec.Command(probe)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "euid=0") {
			t.Fatalf("probe: %v %s", err, out)
		}
	}
	escalations := func(host string) []rules.Incident {
		var out []rules.Incident
		for _, inc := range v.Incidents(host) {
			if inc.Type == rules.TypeRootEscalation && string(inc.Process.Exe) == probe {
				out = append(out, inc)
			}
		}
		return out
	}
	runProbe()
	waitFor(t, 20*time.Second, "the escalation in the fleet view for both hosts", func() bool {
		return len(escalations("fleet-a")) > 0 && len(escalations("fleet-b")) > 0
	})
	t.Logf("escalation seen on both hosts: %s", escalations("fleet-a")[0].Summary.Display())

	// A fleet-wide skip, scoped to the escalation rule (a global skip
	// never hides an escalation).
	ctx := context.Background()
	rule := escalations("fleet-a")[0].Rule
	if _, err := v.AddFleetSkip(ctx, "", rules.Skip{Kind: rules.SkipPath, Value: probe, Rule: rule, Note: "fleet test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both hosts masking the escalation", func() bool {
		for _, h := range hostsUp {
			for _, inc := range escalations(h) {
				if inc.Status != rules.StatusMasked {
					return false
				}
			}
		}
		return true
	})
	before := map[string]uint64{}
	for _, h := range hostsUp {
		for _, inc := range escalations(h) {
			before[h] += inc.Count
		}
	}
	runProbe()
	time.Sleep(2 * time.Second)
	for _, h := range hostsUp {
		var n uint64
		for _, inc := range escalations(h) {
			n += inc.Count
			if inc.Status == rules.StatusOpen {
				t.Errorf("%s: an open escalation after the fleet skip: %s", h, inc.Summary.Display())
			}
		}
		if n != before[h] {
			t.Errorf("%s: escalation count %d after the skip, was %d: the skip did not stop it", h, n, before[h])
		}
	}

	// Monitoring off on one host only.
	if err := v.Host("fleet-b", false).SetMonitoring(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "fleet-b reporting monitoring off", func() bool {
		for _, h := range v.Hosts() {
			if h.Name == "fleet-b" && h.Status != nil && !h.Status.Monitoring {
				return true
			}
		}
		return false
	})
	waitFor(t, 10*time.Second, "fleet-b detaching its sensor", func() bool {
		return strings.Contains(agents["fleet-b"].logText(), "sensor detached")
	})
	for _, h := range v.Hosts() {
		if h.Name == "fleet-a" && (h.Status == nil || !h.Status.Monitoring) {
			t.Error("fleet-a stopped monitoring too")
		}
	}
}

// buildProbe builds a program that prints its effective uid, root-owned
// and set-uid, in a world-readable directory.
func buildProbe(t *testing.T, goTool, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "probe-src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module fleetprobe\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Printf(\"euid=%d\\n\", os.Geteuid()) }\n"), 0o644)
	probe := filepath.Join(dir, "fleetprobe")
	build := exec.Command(goTool, "build", "-o", probe, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	if err := os.Chmod(probe, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	return probe
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/procwatch/procwatch/fleet"
	"github.com/procwatch/procwatch/rules"
)

// natsServer runs a JetStream server in the test process on a free port.
func natsServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

// runCLI runs procwatch with args in this process and returns the exit
// code and what it wrote.
func runFleetCLI(ctx context.Context, args ...string) (int, string) {
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	root.SetContext(ctx)
	code := execute(root, &out)
	return code, out.String()
}

// TestFleetCommands runs the fleet's command line against a real
// in-process server: fleet setup, an agent replaying a capture with
// --nats and --host-name, then hosts, incidents, monitor and skip with
// --nats, and the usage errors of flags that need --nats or --replay.
func TestFleetCommands(t *testing.T) {
	oldYAML := rules.DefaultYAML
	rules.DefaultYAML = rulesYAML(t)
	t.Cleanup(func() { rules.DefaultYAML = oldYAML })
	url := natsServer(t)
	dir := t.TempDir()
	capture := filepath.Join(dir, "capture.ndjson")
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, `{"type":"exec","time":"2026-11-29T05:00:00Z","pid":%d,"ppid":1,"uid":1000,"euid":1000,"comm":"payload","exe":"/tmp/payload","filename":"/tmp/payload","args":["/tmp/payload","x%d"],"outcome":"success"}`+"\n", 100+i, i)
	}
	os.WriteFile(capture, []byte(b.String()), 0o600)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--rate", "5"}, "--rate needs --replay"},
		{[]string{"agent", "--nats-creds", "x"}, "need --nats URL"},
		{[]string{"agent", "--nats", url, "--host-name", "web.1"}, "cannot be used on NATS"},
		{[]string{"skip", "add", "command", "x", "--fleet"}, "--fleet works with --nats URL only"},
		{[]string{"skip", "add", "command", "x", "--nats", url}, "give --host H (this host only) or --fleet"},
		{[]string{"monitor", "off", "--nats", url}, "give the hosts: --host H"},
		{[]string{"hosts"}, "hosts needs --nats URL"},
		{[]string{"incidents", "--host", "a"}, "--host works with --nats URL only"},
	} {
		code, out := runFleetCLI(t.Context(), tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("procwatch %s: exit %d, %q; want exit 2 and %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
	if code, out := runFleetCLI(t.Context(), "fleet", "setup", "--nats", url, "--replicas", "1"); code != 0 || !strings.Contains(out, "PROCWATCH_INCIDENTS: 1 replica") {
		t.Fatalf("fleet setup: %d %s", code, out)
	}

	ctx, stop := context.WithCancel(t.Context())
	agentDone := make(chan string, 1)
	go func() {
		_, out := runFleetCLI(ctx, "--db", filepath.Join(dir, "a.db"), "--socket", filepath.Join(dir, "a.sock"),
			"agent", "--replay", capture, "--host-name", "alpha", "--nats", url)
		agentDone <- out
	}()
	defer func() {
		stop()
		<-agentDone
	}()
	var hostsOut string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, hostsOut = runFleetCLI(t.Context(), "hosts", "--nats", url, "--json")
		if strings.Contains(hostsOut, `"host": "alpha"`) && strings.Contains(hostsOut, `"pending": 0`) && strings.Contains(hostsOut, `"exec": 12`) {
			break
		}
	}
	var hs []struct {
		Host  string `json:"host"`
		Stale bool   `json:"stale"`
	}
	if err := json.Unmarshal([]byte(hostsOut), &hs); err != nil || len(hs) != 1 || hs[0].Host != "alpha" || hs[0].Stale {
		t.Fatalf("hosts --json: %v\n%s", err, hostsOut)
	}
	code, out := runFleetCLI(t.Context(), "incidents", "--nats", url, "--host", "alpha", "--json")
	if n := strings.Count(out, "\n"); code != 0 || n != 12 {
		t.Fatalf("incidents --nats --json: exit %d, %d lines:\n%s", code, n, out)
	}
	if code, out := runFleetCLI(t.Context(), "incidents", "--nats", url); code != 0 || !strings.HasPrefix(out, "HOST") || !strings.Contains(out, "alpha") {
		t.Errorf("incidents --nats: exit %d\n%s", code, out)
	}
	if code, out := runFleetCLI(t.Context(), "monitor", "off", "--nats", url, "--host", "alpha", "--host", "ghost"); code != 1 ||
		!strings.Contains(out, "alpha: monitoring off: ok") || !strings.Contains(out, "ghost: monitoring off: failed") {
		t.Errorf("monitor off on two hosts: exit %d\n%s", code, out)
	}
	if code, out := runFleetCLI(t.Context(), "monitor", "status", "--nats", url, "--host", "alpha"); code != 0 || !strings.Contains(out, "monitoring:  off") {
		t.Errorf("monitor status: exit %d\n%s", code, out)
	}
	if code, out := runFleetCLI(t.Context(), "skip", "add", "user", "1000", "--fleet", "--nats", url); code != 0 || !strings.Contains(out, "for every host") {
		t.Fatalf("skip add --fleet: exit %d\n%s", code, out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, out = runFleetCLI(t.Context(), "incidents", "--nats", url, "--status", "open"); strings.Contains(out, "no incidents match") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "no incidents match") {
		stop()
		t.Errorf("the fleet skip left open incidents:\n%s\nagent:\n%s", out, <-agentDone)
		agentDone <- ""
	}
	// --follow prints what arrives after the listing: acknowledging an
	// incident through the control service publishes a new version.
	fctx, fstop := context.WithCancel(t.Context())
	fout := make(chan string, 1)
	go func() {
		_, o := runFleetCLI(fctx, "incidents", "--nats", url, "--follow", "--json", "--limit", "1")
		fout <- o
	}()
	time.Sleep(time.Second)
	code, list := runFleetCLI(t.Context(), "incidents", "--nats", url, "--json", "--limit", "1")
	var one rules.Incident
	if err := json.Unmarshal([]byte(list), &one); code != 0 || err != nil {
		t.Fatalf("incidents --limit 1: %d %v %s", code, err, list)
	}
	nc, err := fleet.Connect(fleet.ConnOptions{URLs: url, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fc, err := fleet.NewClient(t.Context(), nc, fleet.ClientOptions{Caller: "tester", NoHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if err := fc.Host("alpha", false).SetStatus(t.Context(), []rules.ID{one.ID}, rules.StatusAcknowledged); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	fstop()
	followed := <-fout
	if lines := strings.Split(strings.TrimSpace(followed), "\n"); len(lines) != 2 || !strings.Contains(lines[1], one.ID.String()) || !strings.Contains(lines[1], `"status":"acknowledged"`) {
		t.Errorf("--follow printed:\n%s\nwant the listing, then incident %s acknowledged", followed, one.ID)
	}
	if code, out := runFleetCLI(t.Context(), "skip", "rm", "--nats", url, "nosuch"); code != 1 || !strings.Contains(out, "no fleet skip") {
		t.Errorf("skip rm of an unknown key: exit %d %s", code, out)
	}
	if code, out := runFleetCLI(t.Context(), "skip", "list", "--nats", url, "--history"); code != 0 || !strings.Contains(out, "added") {
		t.Errorf("skip list --history: exit %d\n%s", code, out)
	}
	// A fleet skip keeps its pin; a dry run is refused rather than ignored.
	tool := filepath.Join(dir, "tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, out := runFleetCLI(t.Context(), "skip", "add", "path", tool, "--pin", "--fleet", "--nats", url); code != 0 || !strings.Contains(out, "pinned to sha256:") {
		t.Errorf("skip add --pin --fleet: exit %d\n%s", code, out)
	}
	if code, out := runFleetCLI(t.Context(), "skip", "add", "path", tool, "--dry-run", "--fleet", "--nats", url); code != 2 || !strings.Contains(out, "--dry-run works without --nats only") {
		t.Errorf("skip add --dry-run --fleet: exit %d\n%s", code, out)
	}
}

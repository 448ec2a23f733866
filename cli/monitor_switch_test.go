package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

const escalationTestRules = `version: 1
rules:
  - name: root-escalation
    type: root-escalation
    severity:
      success: high
      failure: critical
`

// fatesFollowed is how many escalated processes the rules follow to their
// end (rules' maxFates).
const fatesFollowed = 1 << 14

// TestMonitorStatusShowsSwitchAndLostFates runs a real agent: monitor off
// and on show who switched it in the text status, and more escalated
// processes alive at once than the rules follow show as lost fates in
// the text status and the metrics.
func TestMonitorStatusShowsSwitchAndLostFates(t *testing.T) {
	src := useFakeSensor(t)
	e := newTestEnv(t)
	if err := os.WriteFile(e.rules, []byte(escalationTestRules), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	startAgent(t, e, "--metrics-addr", "127.0.0.1:"+port)
	url := "http://127.0.0.1:" + port + "/metrics"

	out := mustRun(t, e, "monitor", "status")
	if !strings.Contains(out, "monitoring:  on\n") || strings.Contains(out, "fates lost") {
		t.Errorf("a fresh agent's status:\n%s\nwant a plain monitoring line and no lost fates", out)
	}
	// The CLI runs in this process: the kernel reports its pid.
	by := fmt.Sprintf("by root (uid 0, pid %d) at ", os.Getpid())
	mustRun(t, e, "monitor", "off")
	if out := mustRun(t, e, "monitor", "status"); !strings.Contains(out, "monitoring:  off (switched off "+by) {
		t.Errorf("status after monitor off:\n%s\nwant %q", out, "monitoring:  off (switched off "+by)
	}
	mustRun(t, e, "monitor", "on")
	out = mustRun(t, e, "monitor", "status")
	if !strings.Contains(out, "monitoring:  on (switched on "+by) {
		t.Errorf("status after monitor on:\n%s\nwant %q", out, "monitoring:  on (switched on "+by)
	}

	// Escalated processes that never exit, each by another user.
	const lost = 5
	for i := range fatesFollowed + lost {
		src.emit(t, &event.Event{
			Type: event.TypeEscalation, Time: time.Now(), PID: uint32(100_000 + i), PPID: 1, UID: 0, EUID: 0,
			Comm: "sudo", Exe: "/usr/bin/sudo", Outcome: event.Success, Method: event.MethodSuidExec,
			OldUID: event.Uint32(uint32(10_000 + i)), OldEUID: event.Uint32(uint32(10_000 + i)), NewUID: event.Uint32(0), NewEUID: event.Uint32(0),
		})
	}
	waitMetric(t, url, lost, "procwatch_fates_lost_total")
	out = mustRun(t, e, "monitor", "status")
	if want := fmt.Sprintf("fates lost:  %d root escalations will not get their process's end", lost); !strings.Contains(out, want) {
		t.Errorf("status after %d escalated processes:\n%s\nwant %q", fatesFollowed+lost, out, want)
	}
}

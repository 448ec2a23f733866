package hosts

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/protocol"
)

// spewCommand is a --host transport command that answers the hello and
// then writes frames without end (yes(1) repeats one line as fast as the
// pipe takes it), or one frame far over the limit.
func spewCommand(line string) string {
	hello := fmt.Sprintf(`{"type":"hello","version":%d,"software":"procwatch","role":"server"}`, protocol.Version)
	return fmt.Sprintf("printf '%%s\\n' '%s'; read hello; %s", hello, line)
}

// TestHostileHostIsMarkedFailed runs real --host commands that flood the
// client, and checks that the client holds only what it asked for, the
// host is marked failed with the reason, and memory stays bounded.
func TestHostileHostIsMarkedFailed(t *testing.T) {
	incident := `{"type":"incidents","id":%d,"incidents":[{"id":"0000000000000001","rule":"r","summary":"` + strings.Repeat("x", 2000) + `"}]}`
	var lines []string
	for id := 1; id <= 4; id++ {
		lines = append(lines, fmt.Sprintf(incident, id))
	}
	tests := []struct {
		name    string
		command string
		want    string
	}{
		{"endless incidents for a request", spewCommand("read request; yes '" + strings.Join(lines, "\n") + "'"), "more than the 10 incidents asked for"},
		{"endless frames for no request", spewCommand("yes '" + fmt.Sprintf(incident, 999) + "'"), "requests that had ended or never were"},
		{"one giant frame", spewCommand("read request; head -c 50000000 /dev/zero | tr '\\0' a; echo"), "frame over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New("evil", CommandDialer(tt.command), Options{MinBackoff: time.Minute, MaxBackoff: time.Minute})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			h.Start(ctx)
			defer h.Close()
			for h.Conn().State == Connecting {
				time.Sleep(10 * time.Millisecond)
			}
			callCtx, callCancel := context.WithTimeout(ctx, 30*time.Second)
			defer callCancel()
			_, err := h.Incidents(callCtx, api.Query{Limit: 10})
			if err == nil {
				t.Fatal("Incidents from a flooding host succeeded")
			}
			deadline := time.Now().Add(20 * time.Second)
			for h.Conn().State != Failed && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			c := h.Conn()
			if c.State != Failed || !strings.Contains(c.Reason, tt.want) {
				t.Errorf("host %s (%q), want failed with %q; the call said %v", c.State, c.Reason, tt.want, err)
			}
			runtime.ReadMemStats(&ms)
			if grew := int64(ms.HeapInuse) - int64(base); grew > 32<<20 {
				t.Errorf("heap grew by %d MiB", grew>>20)
			}
		})
	}
}

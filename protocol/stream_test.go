package protocol

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// TestEachIncidentStreams: the streamed answer keeps the agent's cap and
// the limit, an error from fn ends the request and leaves the connection
// serving other calls.
func TestEachIncidentStreams(t *testing.T) {
	svc := newRecordingService()
	for i := range 600 {
		svc.incidents = append(svc.incidents, sampleIncident(i, 10))
	}
	c := dial(t, startServer(t, &Server{Service: svc, MaxIncidents: 500}))
	count := func(limit int) (int, error) {
		n := 0
		err := c.EachIncident(context.Background(), api.Query{Limit: limit}, func(*rules.Incident) error { n++; return nil })
		return n, err
	}
	tests := []struct {
		limit, want int
		truncated   bool
	}{{0, 500, true}, {550, 500, true}, {300, 300, false}, {500, 500, false}}
	for _, tt := range tests {
		n, err := count(tt.limit)
		if n != tt.want || errors.Is(err, ErrTruncated) != tt.truncated || (!tt.truncated && err != nil) {
			t.Errorf("limit %d: %d incidents, %v; want %d, truncated %v", tt.limit, n, err, tt.want, tt.truncated)
		}
	}
	stopErr := errors.New("enough")
	n := 0
	err := c.EachIncident(context.Background(), api.Query{}, func(*rules.Incident) error {
		if n++; n == 10 {
			return stopErr
		}
		return nil
	})
	if !errors.Is(err, stopErr) || n != 10 {
		t.Fatalf("fn's error: %d incidents, %v", n, err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("the connection after a stopped stream: %v", err)
	}
	if n, err := count(300); n != 300 || err != nil {
		t.Fatalf("a second stream on the connection: %d, %v", n, err)
	}
}

// TestEachIncidentCutsOffAnAgentSendingTooMuch: an agent that sends more
// incidents than the limit is cut off with a ProtocolError.
func TestEachIncidentCutsOffAnAgentSendingTooMuch(t *testing.T) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		r := bufio.NewReader(server)
		fmt.Fprintf(server, `{"type":"hello","version":%d,"software":"evil","role":"agent"}`+"\n", Version)
		r.ReadString('\n') // the client's hello
		req, _ := r.ReadString('\n')
		if !strings.Contains(req, `"incidents"`) {
			return
		}
		frame := fmt.Sprintf(`{"type":"incidents","id":1,"incidents":[{"id":"0000000000000001","rule":"r","summary":"%s"}]}`+"\n", strings.Repeat("x", 1000))
		for range 1000 {
			if _, err := server.Write([]byte(frame)); err != nil {
				return
			}
		}
	}()
	c, err := NewClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	err = c.EachIncident(context.Background(), api.Query{Limit: 10}, func(*rules.Incident) error { n++; return nil })
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "more than the 10 incidents asked for") {
		t.Fatalf("err = %v, want the protocol error", err)
	}
	if n > 10 {
		t.Errorf("fn saw %d incidents, asked for 10", n)
	}
}

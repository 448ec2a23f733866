package protocol

import (
	"context"
	"testing"

	"github.com/procwatch/procwatch/api"
)

// BenchmarkStatusRoundTrip measures one request and its response over the
// unix socket: the latency floor of every CLI command against the agent.
func BenchmarkStatusRoundTrip(b *testing.B) {
	c := dialBench(b, newRecordingService())
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Status(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncidents100 measures fetching the newest 100 incidents (what
// `procwatch incidents` shows) over the socket, encoding included.
func BenchmarkIncidents100(b *testing.B) {
	svc := newRecordingService()
	for i := range 100 {
		svc.incidents = append(svc.incidents, sampleIncident(i, 64))
	}
	c := dialBench(b, svc)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := c.Incidents(ctx, api.Query{Limit: 100})
		if err != nil || len(got) != 100 {
			b.Fatal(len(got), err)
		}
	}
}

func dialBench(b *testing.B, svc api.Service) *Client {
	b.Helper()
	path := b.TempDir() + "/agent.sock"
	ln, err := Listen(path, NoGroups)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go (&Server{Service: svc}).ServeListener(ctx, ln)
	c, err := Dial(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

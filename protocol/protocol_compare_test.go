package protocol

import (
	"context"
	"net"
	"net/rpc"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// countingConn counts the bytes a client reads.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// gobService is api.Service's Status and Incidents as net/rpc methods:
// the well-kept standard-library alternative to the agent protocol.
type gobService struct{ svc api.Service }

func (g *gobService) Status(_ struct{}, out *api.Status) error {
	st, err := g.svc.Status(context.Background())
	*out = st
	return err
}

func (g *gobService) Incidents(q api.Query, out *[]rules.Incident) error {
	incs, err := g.svc.Incidents(context.Background(), q)
	*out = incs
	return err
}

// dialGob serves svc with net/rpc and gob on a unix socket and dials it.
func dialGob(b *testing.B, svc api.Service, read *atomic.Int64) *rpc.Client {
	b.Helper()
	srv := rpc.NewServer()
	if err := srv.RegisterName("Procwatch", &gobService{svc}); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("unix", b.TempDir()+"/gob.sock")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(conn)
		}
	}()
	conn, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := rpc.NewClient(countingConn{conn, read})
	b.Cleanup(func() { c.Close() })
	return c
}

// dialCounted is dialBench with the client's reads counted.
func dialCounted(b *testing.B, svc api.Service, read *atomic.Int64) *Client {
	b.Helper()
	path := b.TempDir() + "/agent.sock"
	ln, err := Listen(path, NoGroups)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go (&Server{Service: svc}).ServeListener(ctx, ln)
	conn, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewClient(countingConn{conn, read})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkProtocolVsNetRPC measures the agent protocol against net/rpc
// with gob, side by side: each iteration makes the same call through both,
// alternating which goes first, on the same service over unix sockets. It
// reports each one's time per call, their ratio (agent/gob; below 1 means
// the agent protocol is faster) and the bytes the client reads per
// incident. docs/protocol.md quotes the figures.
func BenchmarkProtocolVsNetRPC(b *testing.B) {
	svc := newRecordingService()
	for i := range 100 {
		svc.incidents = append(svc.incidents, sampleIncident(i, 64))
	}
	var (
		agentRead, gobRead atomic.Int64
		ac                 *Client
		gc                 *rpc.Client
	)
	ctx := context.Background()
	calls := []struct {
		name      string
		incidents int
		agent     func() error
		gob       func() error
	}{
		{"status", 0,
			func() error { _, err := ac.Status(ctx); return err },
			func() error { var st api.Status; return gc.Call("Procwatch.Status", struct{}{}, &st) }},
		{"incidents100", 100,
			func() error {
				incs, err := ac.Incidents(ctx, api.Query{Limit: 100})
				if err == nil && len(incs) != 100 {
					b.Fatalf("agent: %d incidents", len(incs))
				}
				return err
			},
			func() error {
				var incs []rules.Incident
				err := gc.Call("Procwatch.Incidents", api.Query{Limit: 100}, &incs)
				if err == nil && len(incs) != 100 {
					b.Fatalf("gob: %d incidents", len(incs))
				}
				return err
			}},
	}
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			// Fresh connections: each CLI command opens one. Their first
			// call is counted apart (gob describes its types once per
			// connection; the agent protocol says hello).
			agentRead.Store(0)
			gobRead.Store(0)
			ac, gc = dialCounted(b, svc, &agentRead), dialGob(b, svc, &gobRead)
			if err := c.agent(); err != nil {
				b.Fatal(err)
			}
			if err := c.gob(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(agentRead.Load()), "agent-first-B")
			b.ReportMetric(float64(gobRead.Load()), "gob-first-B")
			agentRead.Store(0)
			gobRead.Store(0)
			var agentTime, gobTime time.Duration
			timed := func(f func() error, total *time.Duration) {
				start := time.Now()
				if err := f(); err != nil {
					b.Fatal(err)
				}
				*total += time.Since(start)
			}
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					timed(c.agent, &agentTime)
					timed(c.gob, &gobTime)
				} else {
					timed(c.gob, &gobTime)
					timed(c.agent, &agentTime)
				}
			}
			b.ReportMetric(float64(agentTime.Microseconds())/float64(b.N), "agent-µs/call")
			b.ReportMetric(float64(gobTime.Microseconds())/float64(b.N), "gob-µs/call")
			b.ReportMetric(float64(agentTime)/float64(gobTime), "agent/gob")
			if c.incidents > 0 {
				per := float64(b.N * c.incidents)
				b.ReportMetric(float64(agentRead.Load())/per, "agent-B/incident")
				b.ReportMetric(float64(gobRead.Load())/per, "gob-B/incident")
			} else {
				b.ReportMetric(float64(agentRead.Load())/float64(b.N), "agent-B/call")
				b.ReportMetric(float64(gobRead.Load())/float64(b.N), "gob-B/call")
			}
		})
	}
}

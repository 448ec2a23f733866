package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
)

func TestListenAddr(t *testing.T) {
	cases := []struct {
		addr   string
		remote bool
		want   string // "" when refused
		local  bool   // refused because not loopback
	}{
		{":9464", false, "127.0.0.1:9464", false},
		{":9464", true, "127.0.0.1:9464", false}, // a bare port never means every interface
		{"localhost:9464", false, "127.0.0.1:9464", false},
		{"LOCALHOST:0", false, "127.0.0.1:0", false},
		{"127.0.0.1:9464", false, "127.0.0.1:9464", false},
		{"127.3.4.5:1", false, "127.3.4.5:1", false},
		{"[::1]:9464", false, "[::1]:9464", false},
		{"[::ffff:127.0.0.1]:9464", false, "127.0.0.1:9464", false},
		{"0.0.0.0:9464", false, "", true},
		{"[::]:9464", false, "", true},
		{"192.0.2.10:9464", false, "", true},
		{"metrics.example:9464", false, "", true},
		{"0.0.0.0:9464", true, "0.0.0.0:9464", false},
		{"192.0.2.10:9464", true, "192.0.2.10:9464", false},
		{"metrics.example:9464", true, "metrics.example:9464", false},
		{"9464", false, "", false},
		{"127.0.0.1:", false, "", false},
		{"127.0.0.1:http-alt-nope", false, "", false},
		{"127.0.0.1:99999", false, "", false},
	}
	for _, c := range cases {
		got, err := ListenAddr(c.addr, c.remote)
		switch {
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("ListenAddr(%q, %v) = %q, %v; want %q", c.addr, c.remote, got, err, c.want)
		case c.want == "" && err == nil:
			t.Errorf("ListenAddr(%q, %v) = %q; want an error", c.addr, c.remote, got)
		case c.want == "" && errors.Is(err, ErrNotLoopback) != c.local:
			t.Errorf("ListenAddr(%q, %v) error %v: wraps ErrNotLoopback = %v, want %v", c.addr, c.remote, err, !c.local, c.local)
		}
	}
}

// TestServeBindsLoopbackAndStops checks that a bare port really listens on
// 127.0.0.1, that /metrics answers there, and that Serve returns once its
// context ends and closes the port.
func TestServeBindsLoopbackAndStops(t *testing.T) {
	m, err := New(Sources{Status: func() (api.Status, error) { return api.Status{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(":0", false)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("bare port bound %s, want 127.0.0.1", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics: %s", resp.Status)
	}
	if resp, err := http.Get("http://" + addr.String() + "/nope"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /nope: %s, want 404", resp.Status)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Error("the metrics port still accepts connections after Serve returned")
	}
}

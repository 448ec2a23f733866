package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ErrNotLoopback is wrapped by ListenAddr's error for a host that is not a
// loopback address while remote access was not allowed. Metrics name the
// host's programs' behaviour in aggregate and cost a scrape's work, so
// they stay on the host unless the operator asks otherwise.
var ErrNotLoopback = errors.New("not a loopback address")

// ListenAddr turns an operator's address into the one to bind:
//
//   - no host (":9464") binds 127.0.0.1, never every interface;
//   - "localhost" binds 127.0.0.1; a loopback IP (127.0.0.0/8, ::1) binds
//     as given;
//   - any other host (0.0.0.0, ::, a LAN address, a host name) needs
//     allowRemote; without it the error wraps ErrNotLoopback.
//
// A host name other than localhost is never resolved here: with
// allowRemote it is passed to the listener as is.
func ListenAddr(addr string, allowRemote bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("metrics address %q: want HOST:PORT or :PORT: %w", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return "", fmt.Errorf("metrics address %q: bad port %q", addr, port)
	}
	switch {
	case host == "":
		return net.JoinHostPort("127.0.0.1", port), nil
	case strings.EqualFold(host, "localhost"):
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return net.JoinHostPort(ip.Unmap().String(), port), nil
	}
	if !allowRemote {
		return "", fmt.Errorf("metrics address %q: %s is %w", addr, host, ErrNotLoopback)
	}
	return net.JoinHostPort(host, port), nil
}

// Listen resolves addr with ListenAddr and opens a TCP listener on it.
func Listen(addr string, allowRemote bool) (net.Listener, error) {
	bind, err := ListenAddr(addr, allowRemote)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", bind, err)
	}
	return ln, nil
}

// Serve answers GET /metrics on ln until ctx ends, then shuts the server
// down (giving scrapes in flight a second) and returns nil; it returns an
// error only when serving fails.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "procwatch agent: metrics at /metrics")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// socketPath is the agent socket the global --socket flag chooses.
func socketPath(opts *Options) string {
	if opts.Socket != "" {
		return opts.Socket
	}
	return protocol.DefaultSocket
}

// dbPath is the database the global --db flag chooses.
func dbPath(opts *Options) string {
	if opts.DBPath != "" {
		return opts.DBPath
	}
	return store.DefaultPath()
}

// connectService returns the Service every front end talks to. When an
// agent answers on the socket it is a client of that agent, so commands see
// and change the live pipeline. Otherwise it opens the database directly
// and returns a pipeline.Local without a sensor: queries, skips, status and
// export work offline. A database held by another process with no agent
// answering gives the store's LockedError. close releases the connection
// or the database.
func connectService(ctx context.Context, opts *Options) (svc api.Service, close func() error, err error) {
	sock := socketPath(opts)
	c, err := protocol.Dial(sock)
	if err == nil {
		return c, c.Close, nil
	}
	if !noAgent(err) {
		if errors.Is(err, syscall.EACCES) {
			return nil, nil, fmt.Errorf("%w; run as root or start the agent with --socket-group", err)
		}
		return nil, nil, err
	}
	if opts.Socket != "" && opts.DBPath == "" {
		// The operator named an agent; reading the default database
		// instead would show another state as if it were that agent's.
		return nil, nil, &ExitError{Code: 1, Err: fmt.Errorf("no agent answers on %s (%v); start one with `sudo procwatch agent --socket %s`, or add --db PATH to read a database directly",
			sock, dialReason(err), sock)}
	}
	svc, closeFn, err := openOffline(ctx, opts, slog.New(slog.DiscardHandler))
	var locked *store.LockedError
	if errors.As(err, &locked) {
		return nil, nil, fmt.Errorf("no agent answers on %s, and %w; quit it, or run `sudo procwatch agent` so that commands reach the database through the socket", sock, err)
	}
	return svc, closeFn, err
}

// dialReason says in a few words why nobody answered on the socket.
func dialReason(err error) string {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		return "no such socket"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: a socket left by an agent that is gone"
	}
	return err.Error()
}

// noAgentHint names the socket tried and the database used instead, for
// commands that need a live agent.
func noAgentHint(opts *Options) string {
	return fmt.Sprintf("no agent answers on %s (the database %s was read directly, and without an agent nothing new is raised); start one with `sudo procwatch agent`",
		socketPath(opts), dbPath(opts))
}

// noAgent reports whether a dial error means that nobody listens on the
// socket (no file, or a file left by a dead agent).
func noAgent(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR)
}

// openOffline opens the database and runs a sensorless pipeline on it.
// Retention is off in this process: a command that only reads (or adds a
// skip) must never delete incidents; the agent that owns the database
// applies the retention policy when it runs.
func openOffline(ctx context.Context, opts *Options, log *slog.Logger) (api.Service, func() error, error) {
	// A database on a read-only file or filesystem is opened read-only:
	// it can still be read (monitor status says so); changes fail.
	st, err := store.Open(dbPath(opts), store.Options{RetentionAge: -1, RetentionCount: -1, ReadOnlyFallback: true})
	if err != nil {
		return nil, nil, err
	}
	engine, rulesErr := newEngine(opts)
	local, err := pipeline.New(pipeline.Config{
		Store:     st,
		Rules:     engine,
		RulesPath: rulesLabel(opts),
		Logger:    log,
	})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if rulesErr != nil {
		local.ApplyRules(nil, rulesErr)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- local.Run(runCtx) }()
	closeFn := func() error {
		cancel()
		err := <-done
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database %s: %w", st.Path(), cerr)
		}
		return err
	}
	return local, closeFn, nil
}

// newEngine builds a rules engine from --rules (or the built-in rules) for
// an offline pipeline, which raises nothing and so needs no host name.
// When the rules do not load it returns an engine without rules and the
// error, so offline commands that do not need rules still work and report it.
func newEngine(opts *Options) (*rules.Engine, error) {
	set, err := rules.Load(opts.RulesPath)
	if err != nil {
		return rules.NewEngine(nil, rules.EngineOptions{}), fmt.Errorf("load rules %s: %w", rulesLabel(opts), err)
	}
	return rules.NewEngine(set, rules.EngineOptions{}), nil
}

// rulesLabel names the rules in use, for Status and messages.
func rulesLabel(opts *Options) string {
	if opts.RulesPath != "" {
		return opts.RulesPath
	}
	return rules.DefaultName
}

// withService runs fn against connectService's Service and closes it,
// keeping fn's error first.
func withService(ctx context.Context, opts *Options, fn func(api.Service) error) error {
	svc, closeFn, err := connectService(ctx, opts)
	if err != nil {
		return err
	}
	err = fn(svc)
	if cerr := closeFn(); cerr != nil && err == nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	return err
}

package tui

import (
	"context"
	"errors"
	"fmt"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
)

// Run shows the UI on the terminal until the operator quits or ctx ends.
// Extra program options (input, output, colour profile) are for tests and
// harnesses; a normal start passes none.
func Run(ctx context.Context, svc api.Service, opts Options, progOpts ...tea.ProgramOption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return run(ctx, New(ctx, svc, opts), progOpts)
}

// RunHosts is Run on a list of hosts, one or several (see NewHosts).
func RunHosts(ctx context.Context, list []Host, opts Options, progOpts ...tea.ProgramOption) error {
	if len(list) == 0 {
		return errors.New("terminal UI: no hosts to show")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return run(ctx, NewHosts(ctx, list, opts), progOpts)
}

func run(ctx context.Context, m *Model, progOpts []tea.ProgramOption) error {
	p := tea.NewProgram(m, append([]tea.ProgramOption{tea.WithContext(ctx)}, progOpts...)...)
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("terminal UI: %w", err)
	}
	return nil
}

package api

import (
	"context"

	"github.com/procwatch/procwatch/rules"
)

// IncidentStreamer is implemented by services that can hand out query
// results one at a time instead of building the whole list: the agent's
// server streams through it, so a request for every incident costs a
// batch of memory, not the whole database. fn must not retain inc.
type IncidentStreamer interface {
	EachIncident(ctx context.Context, q Query, fn func(inc *rules.Incident) error) error
}

// EachIncident calls fn for every incident svc returns for q, streaming
// when svc supports it and walking Incidents' list otherwise.
func EachIncident(ctx context.Context, svc Service, q Query, fn func(inc *rules.Incident) error) error {
	if s, ok := svc.(IncidentStreamer); ok {
		return s.EachIncident(ctx, q, fn)
	}
	list, err := svc.Incidents(ctx, q)
	if err != nil {
		return err
	}
	for i := range list {
		if err := fn(&list[i]); err != nil {
			return err
		}
	}
	return nil
}

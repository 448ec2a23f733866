package fleet

import (
	"context"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// maxRepublish bounds the incidents one change queues again.
const maxRepublish = 100000

// republishing wraps the local pipeline so that changes of status (an
// acknowledgement, a mask, a skip masking or unmasking incidents) reach
// the fleet too: the pipeline reports only raised and updated incidents to
// the agent, so after each change the wrapper reads the incidents it
// touched and queues them again, each as a new revision.
type republishing struct {
	api.Service
	a *Agent
}

// Publishing returns s with its status changes published by a. The agent
// serves its control service and applies fleet skips through it; give it
// to the local socket server as well so changes made there travel too.
func (a *Agent) Publishing(s api.Service) api.Service {
	return &republishing{Service: s, a: a}
}

func (r *republishing) SetStatus(ctx context.Context, ids []rules.ID, st rules.Status) error {
	err := r.Service.SetStatus(ctx, ids, st)
	if err == nil {
		r.byID(ctx, ids)
	}
	return err
}

func (r *republishing) AddSkip(ctx context.Context, s rules.Skip) (rules.Skip, int, error) {
	added, masked, err := r.Service.AddSkip(ctx, s)
	if err == nil && masked > 0 {
		r.covered(ctx, added, rules.StatusMasked)
	}
	return added, masked, err
}

func (r *republishing) RemoveSkip(ctx context.Context, id string) (int, error) {
	var removed *rules.Skip
	if all, err := r.Service.Skips(ctx); err == nil {
		for i := range all {
			if all[i].ID == id && all[i].Source == rules.SourceAdded {
				removed = &all[i]
			}
		}
	}
	n, err := r.Service.RemoveSkip(ctx, id)
	if err == nil && n > 0 && removed != nil {
		r.covered(ctx, *removed, rules.StatusOpen)
	}
	return n, err
}

// byID queues the current version of each incident in ids.
func (r *republishing) byID(ctx context.Context, ids []rules.ID) {
	want := make(map[rules.ID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	for _, id := range ids {
		// An id is its raise time in nanoseconds, bumped on collision.
		t := time.Unix(0, int64(id))
		incs, err := r.Service.Incidents(ctx, api.Query{Since: t.Add(-time.Second), Until: t.Add(time.Second)})
		if err != nil {
			r.a.log.Warn("fleet: read changed incident", "id", id, "err", err)
			continue
		}
		for _, inc := range incs {
			if want[inc.ID] {
				r.a.Put(inc)
				delete(want, inc.ID)
			}
		}
	}
}

// covered queues the incidents in status st that s covers.
func (r *republishing) covered(ctx context.Context, s rules.Skip, st rules.Status) {
	incs, err := r.Service.Incidents(ctx, api.Query{Status: st, Limit: maxRepublish})
	if err != nil {
		r.a.log.Warn("fleet: read incidents a skip changed", "err", err)
		return
	}
	covers := s.Coverer()
	for i := range incs {
		if covers(&incs[i]) {
			r.a.Put(incs[i])
		}
	}
}

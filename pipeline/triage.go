package pipeline

import (
	"sync"

	"github.com/procwatch/procwatch/rules"
)

// maxTriaged bounds triageCache: past it the cache starts over, which
// costs one store read per repeated incident, never a wrong status.
const maxTriaged = 4096

// triageCache gives the repeats and fate updates the rules engine sends
// the triage status the store holds. The engine keeps its own copy of an
// incident to count repeats and attach the process's fate, and that copy
// stays "open" after an operator (or a skip) acknowledged or masked it.
// The store keeps the stored status on write, but subscribers and
// OnIncident (the fleet, --output) see the engine's copy: without this a
// repeat would show a masked incident as open again.
//
// Statuses are read from the store once per incident and remembered; any
// triage change (SetStatus, a skip added or removed) forgets them all, as
// changes are rare and repeats are many.
type triageCache struct {
	mu  sync.Mutex
	m   map[rules.ID]rules.Status
	gen uint64 // bumped by forget, so a read that raced a change is not kept
}

// apply sets inc.Status to the stored one when inc is an update of an
// incident the store may hold (a repeat or a fate); a new incident keeps
// the engine's "open".
func (c *triageCache) apply(inc *rules.Incident, st Store) {
	if inc.Count <= 1 && inc.Fate == nil && inc.Distinct == 0 {
		return
	}
	c.mu.Lock()
	s, ok := c.m[inc.ID]
	gen := c.gen
	c.mu.Unlock()
	if !ok {
		stored, found, err := st.Get(inc.ID)
		if err != nil || !found {
			return // not committed yet: nothing can have changed its status
		}
		s = stored.Status
		c.mu.Lock()
		if c.gen == gen {
			if c.m == nil || len(c.m) >= maxTriaged {
				c.m = make(map[rules.ID]rules.Status)
			}
			c.m[inc.ID] = s
		}
		c.mu.Unlock()
	}
	if s != "" {
		inc.Status = s
	}
}

// forget drops every remembered status, after a triage change.
func (c *triageCache) forget() {
	c.mu.Lock()
	c.m = nil
	c.gen++
	c.mu.Unlock()
}

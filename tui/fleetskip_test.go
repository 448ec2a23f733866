package tui

import (
	"context"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// fleetFake is a host of a NATS fleet: it also takes fleet-wide skips.
type fleetFake struct {
	*servicetest.Fake
	mu    sync.Mutex
	fleet []rules.Skip
}

func (f *fleetFake) AddFleetSkip(_ context.Context, s rules.Skip) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fleet = append(f.fleet, s)
	return "fleet.k1", nil
}

func (f *fleetFake) fleetSkips() []rules.Skip {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rules.Skip(nil), f.fleet...)
}

// TestFleetSkipAsksHostOrFleet: on a fleet host the one-key skip asks
// "this host or the whole fleet"; f stores it for the fleet (not on the
// host), y on the host only.
func TestFleetSkipAsksHostOrFleet(t *testing.T) {
	f := &fleetFake{Fake: newFake()}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := NewHosts(ctx, []Host{{Name: "web1", Service: f}}, testOptions())
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(160, 48),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	h := &harness{t: t, tm: tm, w: 160, h: 48}
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})
	h.waitFor("5 shown")
	h.typeKeys("jj") // shell-in-container: a command skip
	h.typeKeys("s")
	h.waitFor(`Skip command "bash" for rule shell-in-container on this host`, "or on the whole fleet?", "y this host only · f the whole fleet · n cancel")
	h.typeKeys("f")
	h.waitFor(`Skipped command "bash" for rule shell-in-container on the whole fleet (key fleet.k1)`)
	if got := f.fleetSkips(); len(got) != 1 || got[0].Value != "bash" || got[0].Rule != "shell-in-container" {
		t.Fatalf("fleet skips = %+v", got)
	}
	if n := countCalls(f.Fake, "AddSkip"); n != 0 {
		t.Fatalf("the fleet answer also added a host skip (%d calls)", n)
	}
	h.typeKeys("s")
	h.waitFor("or on the whole fleet?")
	h.typeKeys("y")
	h.waitFor(`Skipped command "bash" for rule shell-in-container`, "masked 1 incident(s)")
	if n := countCalls(f.Fake, "AddSkip"); n != 1 {
		t.Fatalf("y added %d host skips, want 1", n)
	}
	if got := f.fleetSkips(); len(got) != 1 {
		t.Fatalf("y added a fleet skip: %+v", got)
	}
}

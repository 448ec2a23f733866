package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// TestSplitUpdateKeepsVerdicts: an update too large for one frame is cut
// into several, and each event arrives with its own skip verdict, as JSON
// "skip" beside the event's fields, whatever frame it lands in.
func TestSplitUpdateKeepsVerdicts(t *testing.T) {
	u := servicetest.LoadBatch(time.Unix(1700000000, 0), 100, 40) // every 50th skipped: only the first
	for i := range u.Events {
		if i%7 == 3 {
			u.Events[i].Skip = &rules.SkipHit{Rule: fmt.Sprint("r", i), By: rules.SkipByAdded}
		}
	}
	frames, err := encode(message{Type: typeUpdate, ID: 1, Update: &u}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) < 4 {
		t.Fatalf("%d frames; the test wants the update split", len(frames))
	}
	var got []api.Envelope
	for _, f := range frames {
		var m message
		if err := json.Unmarshal(f, &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Update.Events...)
	}
	if len(got) != len(u.Events) {
		t.Fatalf("%d events after the split, want %d", len(got), len(u.Events))
	}
	for i := range got {
		w, g := u.Events[i], got[i]
		if g.PID != w.PID || (g.Skip == nil) != (w.Skip == nil) || g.Skip != nil && *g.Skip != *w.Skip {
			t.Errorf("event %d: pid %d skip %+v, want pid %d skip %+v", i, g.PID, g.Skip, w.PID, w.Skip)
		}
	}
	if !strings.Contains(string(frames[0]), `"skip":{"rule":"load","by":"global"}`) {
		t.Errorf("the first frame lacks the first event's verdict:\n%s", frames[0])
	}
}

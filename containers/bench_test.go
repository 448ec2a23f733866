package containers

import (
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
)

// BenchmarkEnrich is the cost on the sensor's goroutine of one event in a
// known container (a hit) and in one whose lookup is pending.
func BenchmarkEnrich(b *testing.B) {
	f := newFakeEngine(b, "Podman Engine")
	proc := b.TempDir()
	id := testID(7)
	cg := f.addContainer(proc, id, "web", "localhost/app:v2", 4242)
	c, err := New(Config{Sources: []Source{NewDockerAPI(f.socket)}, ProcRoot: proc})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Enrich(&event.Event{ContainerID: id, Cgroup: event.Text(cg)})
	for c.Stats().Found == 0 {
		time.Sleep(time.Millisecond)
	}
	b.Run("hit", func(b *testing.B) {
		ev := event.Event{ContainerID: id, Cgroup: event.Text(cg + "/sub")}
		for b.Loop() {
			c.Enrich(&ev)
		}
		if ev.ContainerName != "web" {
			b.Fatal("not named")
		}
	})
	b.Run("pending", func(b *testing.B) {
		f.holdInspects()
		defer f.release()
		ev := event.Event{ContainerID: testID(8), Cgroup: "/x"}
		for b.Loop() {
			c.Enrich(&ev)
		}
	})
}

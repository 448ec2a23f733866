package cli

import (
	"log/slog"
	"testing"

	"github.com/procwatch/procwatch/rules"
)

// `rules list` names a rule's images selector.
func TestDescribeSelectorsShowsImages(t *testing.T) {
	tr := true
	got := describeSelectors(rules.Selectors{Container: &tr, Images: []string{"**/nginx:*", "localhost/*"}})
	if want := "container=true images=**/nginx:*,localhost/*"; got != want {
		t.Errorf("describeSelectors = %q, want %q", got, want)
	}
}

// --container-socket is a global flag; none turns lookups off.
func TestContainerSocketFlag(t *testing.T) {
	opts := &Options{ContainerSockets: []string{"none"}}
	if c := openContainers(opts, slog.New(slog.DiscardHandler), true); c != nil {
		c.Close()
		t.Error("--container-socket none still built a cache")
	}
	opts.ContainerSockets = []string{"/nonexistent/docker.sock", "cri:/nonexistent/k3s.sock"}
	c := openContainers(opts, slog.New(slog.DiscardHandler), true)
	if c == nil {
		t.Fatal("no cache for named sockets")
	}
	defer c.Close()
	if got := c.Stats().Sources; len(got) != 2 || got[0] != "/nonexistent/docker.sock" || got[1] != "cri:/nonexistent/k3s.sock" {
		t.Errorf("sources %q", got)
	}
	if c := openContainers(opts, slog.New(slog.DiscardHandler), false); c != nil {
		c.Close()
		t.Error("a cache without a sensor")
	}
}

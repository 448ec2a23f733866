package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// The detail pane names the container, escaping the name and image, which
// whoever started the container chose.
func TestDetailShowsContainer(t *testing.T) {
	in := servicetest.HostileIncidents(hostileHost, t0)[0]
	in.Process.ContainerID = strings.Repeat("ab", 32)
	in.Process.ContainerName = "web\x1b[2J"
	in.Process.ContainerImage = "localhost/app:v2\u202e"
	in.Process.ContainerRuntime = "podman"
	s := incidentDetail(&in, nil, newUserCache(nil), time.UTC)
	checkNoHazards(t, "detail", s)
	for _, want := range []string{
		"Container   " + strings.Repeat("ab", 32),
		`  name      web\x1b[2J`,
		`  image     localhost/app:v2\u{202e}`,
		"  runtime   podman",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("detail lacks %q:\n%s", want, s)
		}
	}
}

// A rule's images selector is shown, escaped like every other selector.
func TestSelectorTextShowsImages(t *testing.T) {
	s := selectorText(rules.Selectors{Images: []string{"**/nginx:*", "x\x1b[2J"}})
	if s != `images=**/nginx:*,x\x1b[2J` {
		t.Errorf("selector text %q", s)
	}
}

package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressBarOnlyForLongExports(t *testing.T) {
	var quick bytes.Buffer
	b := &lazyBar{w: &quick, start: time.Now()}
	b.update(5, 10)
	b.finish()
	if quick.Len() != 0 {
		t.Errorf("a quick export drew %q", quick.String())
	}

	var slow bytes.Buffer
	b = &lazyBar{w: &slow, start: time.Now().Add(-2 * progressDelay)}
	b.update(5, 10)
	if !strings.Contains(slow.String(), "5/10") {
		t.Errorf("a long export drew %q, want a count of 5/10", slow.String())
	}
	b.update(10, 10)
	b.finish()

	var none *lazyBar
	none.finish() // no terminal: no bar, and finish must not fail
}

package tui

import (
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// TestHelpListsEveryKey opens the help at both sizes, scrolls it to the end
// and checks that every binding of every screen was on screen at some
// point, key and description.
func TestHelpListsEveryKey(t *testing.T) {
	for _, several := range []bool{false, true} {
		for _, sz := range sizes {
			name := sz.name
			if several {
				name += "-hosts"
			}
			t.Run(name, func(t *testing.T) {
				var h *harness
				if several {
					h = startHosts(t, threeHosts(), sz.w, sz.h, testOptions())
					h.waitFor("7 shown")
				} else {
					h = start(t, newFake(), sz.w, sz.h, testOptions())
					h.waitFor("5 shown")
				}
				h.typeKeys("?")
				first := h.waitFor("Keys · every screen")
				if !several {
					h.golden(first)
				}
				seen := first
				for range 40 {
					var atBottom bool
					h.with(func(m *Model) { atBottom = m.helpVP.AtBottom() })
					if atBottom {
						break
					}
					h.press(tea.KeyPgDown)
					seen += h.screen()
				}
				km := newKeyMap()
				for _, sec := range km.keySections(several) {
					if !strings.Contains(seen, sec.title) {
						t.Errorf("help lacks section %q", sec.title)
					}
					for _, b := range sec.keys {
						hb := b.Help()
						if !strings.Contains(seen, hb.Key) || !strings.Contains(seen, hb.Desc) {
							t.Errorf("help lacks %q %q", hb.Key, hb.Desc)
						}
					}
				}
				if several && !strings.Contains(seen, "Hosts (8)") {
					t.Errorf("help with several hosts lacks the Hosts screen")
				}
				for i, l := range strings.Split(h.screen(), "\n") {
					if w := ansi.StringWidth(l); w > sz.w {
						t.Errorf("line %d is %d wide (> %d): %q", i, w, sz.w, l)
					}
				}
				h.typeKeys("q") // closes the help, does not quit
				if several {
					h.waitFor("7 shown")
				} else {
					h.waitFor("5 shown")
				}
			})
		}
	}
}

// TestQuitAndEscBackOut checks that q and esc close what is open and that
// only q at the top level quits.
func TestQuitAndEscBackOut(t *testing.T) {
	h := start(t, newFake(), 80, 24, testOptions())
	h.waitFor("5 shown")
	h.press(tea.KeyEnter)
	h.waitFor("Incident 18")
	h.typeKeys("q") // closes the detail pane
	h.waitFor("5 shown")
	h.typeKeys("s")
	h.waitFor("[y/n]")
	h.typeKeys("q") // cancels the dialog
	h.waitFor("cancelled")
	h.press(tea.KeyEscape) // at the top level: clears, never quits
	h.waitFor("5 shown")
	h.typeKeys("q")
	h.tm.WaitFinished(t)
}

func TestScreensLeftRight(t *testing.T) {
	h := start(t, newFake(), 80, 24, testOptions())
	h.waitFor("5 shown")
	for _, step := range []struct {
		key  string
		want string
	}{{"l", "Exec ·"}, {"l", "Escalations ·"}, {"h", "Exec ·"}, {"h", "Incidents ·"}, {"h", "Rules ·"}} {
		h.typeKeys(step.key)
		h.waitFor(step.want)
	}
	h.press(tea.KeyRight)
	h.waitFor("Incidents ·")
	h.press(tea.KeyLeft)
	h.waitFor("Rules ·")
}

func TestUnknownKeyHint(t *testing.T) {
	h := start(t, newFake(), 80, 24, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("z")
	h.waitFor("unknown key z · ? lists every key")
	h.typeKeys("m") // exists on the Rules screen
	h.waitFor("m (monitoring on/off) works in Rules (7), not here")
}

// TestMessagesExpire checks that a result on the message line goes away
// by itself.
func TestMessagesExpire(t *testing.T) {
	h := start(t, newFake(), 80, 24, testOptions())
	h.waitFor("5 shown")
	h.typeKeys("z")
	h.waitFor("unknown key z")
	h.with(func(m *Model) {
		// Time passes: the expiry of the shown message arrives.
		m.Update(msgExpiredMsg{seq: m.msgSeq})
	})
	h.waitGone("unknown key z")
}

// TestHintKeepsWholeBindings checks at every screen and width that the
// hint line holds only whole bindings, starting with help and quit.
func TestHintKeepsWholeBindings(t *testing.T) {
	km := newKeyMap()
	th := newTheme(true)
	for s := range screenCount {
		for _, detail := range []bool{false, true} {
			for _, w := range []int{40, 80, 160} {
				c := keyContext{screen: s, detail: detail, several: true}
				line := fitHint(th, km.hint(c), w)
				if ansi.StringWidth(line) > w {
					t.Errorf("%s detail=%v width %d: hint %d wide", screenNames[s], detail, w, ansi.StringWidth(line))
				}
				if strings.Contains(line, "…") {
					t.Errorf("hint cut: %q", line)
				}
				first := "? help"
				if detail {
					first = "esc back"
				}
				if !strings.HasPrefix(ansi.Strip(line), first) {
					t.Errorf("%s detail=%v width %d: hint %q does not start with %q", screenNames[s], detail, w, ansi.Strip(line), first)
				}
			}
		}
	}
}

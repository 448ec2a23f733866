package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// keyMap holds every binding, grouped by where it applies. The help screen,
// the one-line hint and the "unknown key" check are all built from the same
// bindings (see keySections), so none of them can drift from what the keys
// do.
type keyMap struct {
	// Global.
	Quit, ForceQuit, Help, Next, Prev, Filter key.Binding
	Screens                                   [screenCount]key.Binding

	// Lists.
	Up, Down, PageUp, PageDown, Home, End, Open, Close key.Binding

	// Incidents.
	Ack, Mask, Reopen, AckAll, MaskAll, Sort, Export key.Binding

	// Skips from incidents, streams and noise.
	SkipCmd, SkipPath, SkipCmdAll, SkipPathAll, Undo key.Binding

	// Streams.
	Pause key.Binding

	// Noise, skips, rules.
	Window, Refresh, Delete, Monitor key.Binding

	// Several hosts: the Hosts screen, and host scope on incidents.
	Select, SelectAll, Activate, Deactivate, HostFilter, FanOut key.Binding

	// Confirmation dialog and text input.
	Yes, No, Edit, Fleet, Apply, CancelInput key.Binding
}

func newKeyMap() keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	km := keyMap{
		Quit:      b([]string{"q"}, "q", "quit (closes a pane first)"),
		ForceQuit: b([]string{"ctrl+c"}, "ctrl+c", "quit at once"),
		Help:      b([]string{"?"}, "?", "help"),
		Next:      b([]string{"tab", "right", "l"}, "→/l/tab", "next screen"),
		Prev:      b([]string{"shift+tab", "left", "h"}, "←/h/shift+tab", "previous screen"),
		Filter:    b([]string{"/"}, "/", "filter"),

		Up:       b([]string{"up", "k"}, "↑/k", "up"),
		Down:     b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:   b([]string{"pgup", "ctrl+b"}, "pgup", "page up"),
		PageDown: b([]string{"pgdown", "ctrl+f"}, "pgdn", "page down"),
		Home:     b([]string{"home", "g"}, "g/home", "first row"),
		End:      b([]string{"end", "G"}, "G/end", "last row (follow)"),
		Open:     b([]string{"enter"}, "enter", "details"),
		Close:    b([]string{"esc"}, "esc", "clear filter"),

		Ack:     b([]string{"a"}, "a", "acknowledge"),
		Mask:    b([]string{"x"}, "x", "mask"),
		Reopen:  b([]string{"R"}, "R", "reopen (acknowledged or masked)"),
		AckAll:  b([]string{"A"}, "A", "acknowledge all shown"),
		MaskAll: b([]string{"X"}, "X", "mask all shown"),
		Sort:    b([]string{"o"}, "o", "sort time/severity"),
		Export:  b([]string{"e"}, "e", "export shown to JSON"),

		SkipCmd:     b([]string{"s"}, "s", "skip command (rule; binary if escalation)"),
		SkipPath:    b([]string{"p"}, "p", "skip this binary (rule)"),
		SkipCmdAll:  b([]string{"S"}, "S", "skip command (all rules)"),
		SkipPathAll: b([]string{"P"}, "P", "skip binary (all rules)"),
		Undo:        b([]string{"u"}, "u", "undo last skip"),

		Pause: b([]string{"space"}, "space", "pause/resume view"),

		Window:  b([]string{"t"}, "t", "last hour/day"),
		Refresh: b([]string{"r"}, "r", "refresh"),
		Delete:  b([]string{"d", "delete"}, "d", "delete skip"),
		Monitor: b([]string{"m"}, "m", "monitoring on/off"),

		Select:     b([]string{"space"}, "space", "select host"),
		SelectAll:  b([]string{"*"}, "*", "select all/none"),
		Activate:   b([]string{"a"}, "a", "monitoring on (selected)"),
		Deactivate: b([]string{"d"}, "d", "monitoring off (selected)"),
		HostFilter: b([]string{"H"}, "H", "one host/all hosts"),
		FanOut:     b([]string{"F"}, "F", "act on incident's host/selected hosts"),

		Yes:         b([]string{"y", "enter"}, "y/enter", "confirm"),
		No:          b([]string{"n", "esc", "q"}, "n/esc/q", "cancel"),
		Edit:        b([]string{"e"}, "e", "edit the path (widen the skip)"),
		Fleet:       b([]string{"f"}, "f", "skip on the whole fleet (--nats)"),
		Apply:       b([]string{"enter"}, "enter", "apply"),
		CancelInput: b([]string{"esc"}, "esc", "cancel (a filter is cleared)"),
	}
	for i := range km.Screens {
		k := string(rune('1' + i))
		km.Screens[i] = b([]string{k}, k, screenNames[i])
	}
	return km
}

// with returns a copy of b with another help text, for a key that does
// something slightly different in one place.
func with(b key.Binding, k, desc string) key.Binding {
	b.SetHelp(k, desc)
	return b
}

// keySection is one group of bindings on the help screen.
type keySection struct {
	title string
	keys  []key.Binding
	modal bool // keys of a dialog or input, not of a screen
}

// keyContext says where the operator is, which decides what keys do.
type keyContext struct {
	screen  screen
	detail  bool
	several bool // several hosts: the Hosts screen and host keys exist
}

func (k *keyMap) listKeys() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End, k.Filter, k.Close}
}

func (k *keyMap) skipKeys() []key.Binding {
	return []key.Binding{k.SkipCmd, k.SkipPath, k.SkipCmdAll, k.SkipPathAll, k.Undo}
}

// screenKeys are the bindings of one screen beyond the list keys.
func (k *keyMap) screenKeys(s screen, several bool) []key.Binding {
	switch {
	case s == screenIncidents:
		out := []key.Binding{k.Open, k.Ack, k.Mask, k.Reopen, k.AckAll, k.MaskAll, k.Sort, k.Export}
		out = append(out, k.skipKeys()...)
		if several {
			out = append(out, k.HostFilter, k.FanOut)
		}
		return out
	case s.isStream():
		return append([]key.Binding{k.Open, k.Pause}, k.skipKeys()...)
	case s == screenNoise:
		return []key.Binding{with(k.Open, "enter", "apply the suggested skip"), with(k.SkipCmd, "s", "apply the suggested skip"),
			with(k.SkipCmdAll, "S", "apply it for every rule"), with(k.SkipPath, "p", "edit the path first (widen)"),
			with(k.SkipPathAll, "P", "edit the path, every rule"), k.Undo, k.Window, k.Refresh}
	case s == screenSkips:
		return []key.Binding{k.Delete, k.Refresh}
	case s == screenRules:
		return []key.Binding{k.Monitor, k.Refresh}
	case s == screenHosts:
		return []key.Binding{k.Select, k.SelectAll, k.Activate, k.Deactivate, with(k.Open, "enter", "this host's incidents"), k.Refresh}
	}
	return nil
}

// detailKeys are the bindings of the detail pane.
func (k *keyMap) detailKeys(s screen) []key.Binding {
	out := []key.Binding{with(k.Close, "esc/q", "close the pane"), with(k.Up, "↑/k", "scroll up"), with(k.Down, "↓/j", "scroll down"),
		k.PageUp, k.PageDown, with(k.Home, "g/home", "top"), with(k.End, "G/end", "bottom")}
	if s == screenIncidents {
		out = append(out, k.Ack, k.Mask, k.Reopen)
	}
	return append(out, k.skipKeys()...)
}

// globalKeys work everywhere outside dialogs and inputs.
func (k *keyMap) globalKeys(several bool) []key.Binding {
	n := screenCount
	if !several {
		n-- // no Hosts screen
	}
	out := append([]key.Binding{}, k.Screens[:n]...)
	return append(out, k.Next, k.Prev, k.Help, k.Quit, k.ForceQuit)
}

// keySections lists every binding of every screen, for the help screen.
func (k *keyMap) keySections(several bool) []keySection {
	secs := []keySection{
		{title: "Everywhere", keys: k.globalKeys(several)},
		{title: "Every list", keys: k.listKeys()},
		{title: "Incidents (1)", keys: k.screenKeys(screenIncidents, several)},
		{title: "Exec, Escalations, Exits (2-4)", keys: k.screenKeys(screenExec, several)},
		{title: "Noise (5)", keys: k.screenKeys(screenNoise, several)},
		{title: "Skips (6)", keys: k.screenKeys(screenSkips, several)},
		{title: "Rules (7)", keys: k.screenKeys(screenRules, several)},
	}
	if several {
		secs = append(secs, keySection{title: "Hosts (8)", keys: k.screenKeys(screenHosts, several)})
	}
	return append(secs,
		keySection{title: "Detail pane", keys: k.detailKeys(screenIncidents)},
		keySection{"Confirmation", []key.Binding{k.Yes, k.No, k.Edit, k.Fleet}, true},
		keySection{"Filter and path input", []key.Binding{k.Apply, k.CancelInput}, true},
		keySection{"This help", []key.Binding{with(k.Down, "↓/j pgdn", "scroll"), with(k.Close, "esc/q/?", "close")}, true},
	)
}

// active returns every binding that does something in c, for telling an
// unknown key from a known one.
func (k *keyMap) active(c keyContext, screenKeys []key.Binding) []key.Binding {
	out := k.globalKeys(c.several)
	if c.detail {
		return append(out, k.detailKeys(c.screen)...)
	}
	out = append(out, k.listKeys()...)
	return append(out, screenKeys...)
}

// hint is the always-visible line of keys, most important first: the ones
// that fit are shown whole, the rest are left to `?`, so the line never
// ends in a cut binding.
func (k *keyMap) hint(c keyContext) []key.Binding {
	if c.detail {
		out := []key.Binding{with(k.Close, "esc", "back"), k.Help}
		if c.screen == screenIncidents {
			out = append(out, with(k.Ack, "a", "ack"), k.Mask, with(k.Reopen, "R", "reopen"))
		}
		return append(out, with(k.SkipPath, "p", "skip binary"), with(k.SkipCmd, "s", "skip"), with(k.Undo, "u", "undo"), with(k.Down, "↑↓", "scroll"))
	}
	head := []key.Binding{k.Help, with(k.Quit, "q", "quit")}
	// Terse descriptions, so more keys fit on 80 columns.
	skips := []key.Binding{with(k.SkipPath, "p", "skip binary"), with(k.SkipCmd, "s", "skip"), with(k.Undo, "u", "undo")}
	var rest []key.Binding
	switch {
	case c.screen == screenIncidents:
		rest = append([]key.Binding{k.Open, with(k.Ack, "a", "ack"), k.Mask}, skips...)
		rest = append(rest, with(k.Reopen, "R", "reopen"), k.Filter)
		if c.several {
			rest = append(rest, with(k.HostFilter, "H", "host"), with(k.FanOut, "F", "fan out"))
		}
		rest = append(rest, with(k.AckAll, "A", "ack all"), with(k.MaskAll, "X", "mask all"), with(k.Sort, "o", "sort"), with(k.Export, "e", "export"))
	case c.screen == screenHosts:
		rest = []key.Binding{k.Select, k.SelectAll, k.Activate, k.Deactivate, k.Open}
	case c.screen.isStream():
		rest = append([]key.Binding{with(k.Pause, "space", "pause"), k.Open}, skips...)
		rest = append(rest, k.Filter, with(k.End, "G", "follow"))
	case c.screen == screenNoise:
		rest = []key.Binding{with(k.SkipCmd, "s/enter", "apply skip"), with(k.SkipPath, "p", "edit"), with(k.Undo, "u", "undo"), k.Window, k.Refresh}
	case c.screen == screenSkips:
		rest = []key.Binding{k.Delete, k.Refresh}
	case c.screen == screenRules:
		rest = []key.Binding{k.Monitor, k.Refresh}
	}
	return append(append(head, rest...), with(k.Next, "←→", "screens"))
}

// fitHint renders bindings as "key desc" items separated by " • ", in
// order, dropping whole items that do not fit in width.
func fitHint(th theme, bindings []key.Binding, width int) string {
	sep := th.help.ShortSeparator.Render(" • ")
	var parts []string
	used := 0
	for _, b := range bindings {
		h := b.Help()
		item := th.help.ShortKey.Render(h.Key) + " " + th.help.ShortDesc.Render(h.Desc)
		w := ansi.StringWidth(item)
		if len(parts) > 0 {
			w += ansi.StringWidth(sep)
		}
		if used+w > width {
			continue // a shorter item further on may still fit
		}
		parts = append(parts, item)
		used += w
	}
	return strings.Join(parts, sep)
}

// helpText renders every section, in columns as wide as the widest
// section when several fit side by side.
func helpText(th theme, secs []keySection, width int) string {
	blocks := make([][]string, len(secs))
	colW := 0
	for i, s := range secs {
		kw := 0
		for _, b := range s.keys {
			kw = max(kw, ansi.StringWidth(b.Help().Key))
		}
		lines := []string{th.title.Render(s.title)}
		for _, b := range s.keys {
			h := b.Help()
			lines = append(lines, "  "+th.help.FullKey.Render(h.Key+strings.Repeat(" ", kw-ansi.StringWidth(h.Key)))+"  "+th.help.FullDesc.Render(h.Desc))
		}
		for _, l := range lines {
			colW = max(colW, ansi.StringWidth(l))
		}
		blocks[i] = append(lines, "")
	}
	cols := max(1, min(len(blocks), (width+2)/(colW+2)))
	total := 0
	for _, b := range blocks {
		total += len(b)
	}
	// Fill columns in order, each up to about an equal share of lines.
	per := (total + cols - 1) / cols
	columns := make([][]string, 0, cols)
	var cur []string
	for _, b := range blocks {
		if len(cur) > 0 && len(cur)+len(b) > per && len(columns) < cols-1 {
			columns = append(columns, cur)
			cur = nil
		}
		cur = append(cur, b...)
	}
	columns = append(columns, cur)
	height := 0
	for _, c := range columns {
		height = max(height, len(c))
	}
	var out strings.Builder
	for i := range height {
		var line strings.Builder
		for j, c := range columns {
			cell := ""
			if i < len(c) {
				cell = c[i]
			}
			if j < len(columns)-1 {
				cell += strings.Repeat(" ", colW+2-ansi.StringWidth(cell))
			}
			line.WriteString(cell)
		}
		out.WriteString(strings.TrimRight(line.String(), " "))
		if i < height-1 {
			out.WriteByte('\n')
		}
	}
	return ansi.Wrap(out.String(), width, "")
}

// knownElsewhere names a screen where key msg does something, for the
// hint on a key that does nothing here.
func (k *keyMap) knownElsewhere(msg tea.KeyPressMsg, several bool) (string, key.Binding, bool) {
	for _, s := range k.keySections(several) {
		if s.modal {
			continue
		}
		for _, b := range s.keys {
			if key.Matches(msg, b) {
				return s.title, b, true
			}
		}
	}
	return "", key.Binding{}, false
}

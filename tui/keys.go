package tui

import "charm.land/bubbles/v2/key"

// keyMap holds every binding, grouped by where it applies. The help screen
// and the one-line hint are built from the same bindings, so they cannot
// drift from what the keys do.
type keyMap struct {
	// Global.
	Quit, Help, Next, Prev, Filter key.Binding
	Screens                        [screenCount]key.Binding

	// Lists.
	Up, Down, PageUp, PageDown, Home, End, Open, Close key.Binding

	// Incidents.
	Ack, Mask, Sort, Export key.Binding

	// Skips from incidents, streams and noise.
	SkipCmd, SkipPath, SkipCmdAll, SkipPathAll, Undo key.Binding

	// Streams.
	Pause key.Binding

	// Noise, skips, rules.
	Window, Refresh, Delete, Monitor key.Binding

	// Several hosts: the Hosts screen, and host scope on incidents.
	Select, SelectAll, Activate, Deactivate, HostFilter, FanOut key.Binding

	// Confirmation line.
	Yes, No key.Binding
}

func newKeyMap() keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	km := keyMap{
		Quit:   b([]string{"q", "ctrl+c"}, "q", "quit"),
		Help:   b([]string{"?"}, "?", "help"),
		Next:   b([]string{"tab"}, "tab", "next screen"),
		Prev:   b([]string{"shift+tab"}, "shift+tab", "previous screen"),
		Filter: b([]string{"/"}, "/", "filter (esc clears)"),

		Up:       b([]string{"up", "k"}, "↑/k", "up"),
		Down:     b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:   b([]string{"pgup", "ctrl+b"}, "pgup", "page up"),
		PageDown: b([]string{"pgdown", "ctrl+f"}, "pgdn", "page down"),
		Home:     b([]string{"home", "g"}, "g/home", "first row"),
		End:      b([]string{"end", "G"}, "G/end", "last row (follow)"),
		Open:     b([]string{"enter"}, "enter", "details"),
		Close:    b([]string{"esc"}, "esc", "close / clear filter"),

		Ack:    b([]string{"a"}, "a", "acknowledge"),
		Mask:   b([]string{"x"}, "x", "mask"),
		Sort:   b([]string{"o"}, "o", "sort time/severity"),
		Export: b([]string{"e"}, "e", "export shown to JSON"),

		SkipCmd:     b([]string{"s"}, "s", "skip command (rule)"),
		SkipPath:    b([]string{"p"}, "p", "skip path (rule)"),
		SkipCmdAll:  b([]string{"S"}, "S", "skip command (all rules)"),
		SkipPathAll: b([]string{"P"}, "P", "skip path (all rules)"),
		Undo:        b([]string{"u"}, "u", "undo last skip"),

		Pause: b([]string{"space", " "}, "space", "pause/resume view"),

		Window:  b([]string{"t"}, "t", "last hour/day"),
		Refresh: b([]string{"r"}, "r", "refresh"),
		Delete:  b([]string{"d", "delete"}, "d", "delete skip"),
		Monitor: b([]string{"m"}, "m", "monitoring on/off"),

		Select:     b([]string{"space", " "}, "space", "select host"),
		SelectAll:  b([]string{"*"}, "*", "select all/none"),
		Activate:   b([]string{"a"}, "a", "monitoring on (selected)"),
		Deactivate: b([]string{"d"}, "d", "monitoring off (selected)"),
		HostFilter: b([]string{"h"}, "h", "one host/all hosts"),
		FanOut:     b([]string{"F"}, "F", "act on incident's host/selected hosts"),

		Yes: b([]string{"y", "enter"}, "y", "confirm"),
		No:  b([]string{"n", "esc"}, "n", "cancel"),
	}
	for i := range km.Screens {
		k := string(rune('1' + i))
		km.Screens[i] = b([]string{k}, k, screenNames[i])
	}
	return km
}

// screenHelp adapts the key map to bubbles/help for one screen.
type screenHelp struct {
	km     *keyMap
	screen screen
	detail bool
	multi  bool // several hosts: the Hosts screen and host keys exist
}

// ShortHelp is the always-visible hint line: the keys that matter most on
// the current screen.
func (h screenHelp) ShortHelp() []key.Binding {
	k := h.km
	if h.detail {
		return []key.Binding{k.Help, k.Close, k.Up, k.Down, k.SkipCmd, k.SkipPath, k.Undo, k.Quit}
	}
	switch h.screen {
	case screenIncidents:
		if h.multi {
			return []key.Binding{k.Help, k.Open, k.Ack, k.Mask, k.SkipCmd, k.SkipPath, k.Undo, k.HostFilter, k.FanOut, k.Filter, k.Sort, k.Next, k.Quit}
		}
		return []key.Binding{k.Help, k.Open, k.Ack, k.Mask, k.SkipCmd, k.SkipPath, k.Undo, k.Filter, k.Sort, k.Export, k.Next, k.Quit}
	case screenHosts:
		return []key.Binding{k.Help, k.Select, k.SelectAll, k.Activate, k.Deactivate, k.Open, k.Next, k.Quit}
	case screenExec, screenEscalations, screenExits:
		return []key.Binding{k.Help, k.Pause, k.Open, k.SkipCmd, k.SkipPath, k.Undo, k.Filter, k.End, k.Next, k.Quit}
	case screenNoise:
		return []key.Binding{k.Help, k.SkipCmd, k.SkipCmdAll, k.Window, k.Refresh, k.Next, k.Quit}
	case screenSkips:
		return []key.Binding{k.Help, k.Delete, k.Refresh, k.Next, k.Quit}
	case screenRules:
		return []key.Binding{k.Help, k.Monitor, k.Refresh, k.Next, k.Quit}
	}
	return []key.Binding{k.Help, k.Quit}
}

// FullHelp lists every key, grouped in columns.
func (h screenHelp) FullHelp() [][]key.Binding {
	k := h.km
	n := len(k.Screens)
	if !h.multi {
		n-- // no Hosts screen
	}
	screens := make([]key.Binding, 0, n+2)
	screens = append(screens, k.Screens[:n]...)
	screens = append(screens, k.Next, k.Prev)
	groups := [][]key.Binding{
		screens,
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End, k.Open, k.Close, k.Filter},
		{k.Ack, k.Mask, k.Sort, k.Export, k.Pause, k.Window, k.Refresh},
		{k.SkipCmd, k.SkipPath, k.SkipCmdAll, k.SkipPathAll, k.Undo, k.Delete, k.Monitor},
	}
	if h.multi {
		groups = append(groups, []key.Binding{k.Select, k.SelectAll, k.Activate, k.Deactivate, k.HostFilter, k.FanOut})
	}
	return append(groups, []key.Binding{k.Yes, k.No, k.Help, k.Quit})
}

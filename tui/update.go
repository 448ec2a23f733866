package tui

import (
	"fmt"
	"path/filepath"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/sensor"
)

// resubscribeAfter is how long the UI waits before reopening a
// subscription that ended.
const resubscribeAfter = 2 * time.Second

// Update handles one message. It never does I/O: service calls are
// returned as commands.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return m, nil
	case tea.BackgroundColorMsg:
		m.th = newTheme(msg.IsDark())
		m.help.Styles = m.th.help
		return m, nil
	case tickMsg:
		if msg.gen != m.gen {
			return m, nil // from a subscription that was replaced
		}
		m.apply(msg.batch)
		if msg.closed {
			m.hdr.connErr = "subscription ended; reconnecting"
			return m, tea.Tick(resubscribeAfter, func(time.Time) tea.Msg { return resubscribeMsg{} })
		}
		return m, drainEvery(m.opts.Tick, m.box, m.users, m.gen)
	case subscribedMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		if msg.err != nil {
			m.hdr.connErr = sensor.DisplayString(msg.err.Error())
			return m, tea.Tick(resubscribeAfter, func(time.Time) tea.Msg { return resubscribeMsg{} })
		}
		m.hdr.connErr = ""
		// Load stored incidents only now, so nothing raised between the
		// query and the subscription can be missed.
		return m, tea.Batch(drainEvery(m.opts.Tick, m.box, m.users, m.gen),
			loadIncidents(m.ctx, m.svc, m.opts.Incidents, m.users))
	case resubscribeMsg:
		return m, m.resubscribe(m.inc.lastID)
	case statusPollMsg:
		return m, loadStatus(m.ctx, m.svc, true)
	case tea.KeyPressMsg:
		return m, m.handleKey(msg)
	case tea.PasteMsg:
		if m.mode != inputNone {
			var cmd tea.Cmd
			m.input, cmd = m.input.Update(msg)
			m.inputChanged()
			return m, cmd
		}
		return m, nil
	}
	return m, m.handleResult(msg)
}

// apply folds one drained batch into the screens. Incidents go first so
// that stream rows of events that raised one can show its severity.
func (m *Model) apply(b batch) {
	type evKey struct {
		t   sensor.EventType
		pid uint32
		tid uint32
		at  int64
	}
	var raised map[evKey]*rules.Incident
	if len(b.incidents) > 0 {
		m.inc.upsert(b.incidents, m.users, m.opts.Location)
		raised = make(map[evKey]*rules.Incident, len(b.incidents))
		for i := range b.incidents {
			p := &b.incidents[i].Process
			raised[evKey{p.Type, p.PID, p.TID, p.Time.UnixNano()}] = &b.incidents[i]
		}
	}
	for i := range b.items {
		it := &b.items[i]
		if in := raised[evKey{it.ev.Type, it.ev.PID, it.ev.TID, it.ev.Time.UnixNano()}]; in != nil {
			it.sev, it.incident, it.rule = in.Severity, in.ID, in.Rule
		}
		switch it.ev.Type {
		case sensor.TypeExec:
			m.streams[0].add(it, m.users, m.opts.Location)
		case sensor.TypeEscalation:
			m.streams[1].add(it, m.users, m.opts.Location)
		case sensor.TypeExit:
			m.streams[2].add(it, m.users, m.opts.Location)
		}
	}
	if b.status != nil {
		m.hdr.observe(*b.status)
	}
	m.hdr.uiDropped += b.dropped
	m.refreshActive()
}

// refreshActive hands new rows to the visible screen only; the others catch
// up when they are shown.
func (m *Model) refreshActive() {
	switch {
	case m.active == screenIncidents:
		m.inc.refresh()
	case m.active.isStream():
		m.activeStream().refresh()
	}
}

// handleResult handles the replies of service calls.
func (m *Model) handleResult(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case incidentsMsg:
		if msg.err != nil {
			m.setErr("load incidents", msg.err)
			return nil
		}
		m.inc.upsert(msg.list, m.users, m.opts.Location)
		m.loaded = true
		m.refreshActive()
	case statusMsg:
		var next tea.Cmd
		if msg.poll {
			next = pollStatusLater()
		}
		if msg.err != nil {
			m.hdr.connErr = sensor.DisplayString(msg.err.Error())
			return next
		}
		m.hdr.observe(msg.st)
		return next
	case rulesMsg:
		if msg.err != nil {
			m.setErr("load rules", msg.err)
			return nil
		}
		m.ruleByName = make(map[string]*rules.Rule, len(msg.list))
		for i := range msg.list {
			m.ruleByName[msg.list[i].Name] = &msg.list[i]
		}
		m.rulesList.SetRows(ruleRows(msg.list))
	case skipsMsg:
		if msg.err != nil {
			m.setErr("load skips", msg.err)
			return nil
		}
		m.skips.SetRows(skipRows(msg.list, m.opts.Location))
	case noiseMsg:
		if msg.err != nil {
			m.setErr("load noise", msg.err)
			return nil
		}
		if msg.window == m.noiseWin {
			m.noise.SetRows(noiseRows(msg.noise))
		}
	case statusSetMsg:
		if msg.err != nil {
			m.setErr("change incident status", msg.err)
			return nil
		}
		m.inc.setStatus(msg.ids, msg.status, m.users, m.opts.Location)
		m.inc.refresh()
		verb := "Acknowledged"
		if msg.status == rules.StatusMasked {
			verb = "Masked"
		}
		m.setMsg("%s %d incident(s)", verb, len(msg.ids))
		return loadStatus(m.ctx, m.svc, false)
	case skipPreviewMsg:
		if msg.err != nil {
			m.setErr("check skip", msg.err)
			return nil
		}
		m.confirm = &confirmation{
			prompt: fmt.Sprintf("Skip %s? It masks %d open incident(s) now and stops new ones.", describeSkip(msg.skip), msg.count),
			yes:    addSkip(m.ctx, m.svc, msg.skip),
		}
	case skipAddedMsg:
		if msg.err != nil {
			m.setErr("add skip", msg.err)
			return nil
		}
		m.undo = append(m.undo, msg.skip)
		m.setMsg("Skipped %s: masked %d incident(s) · u undoes", describeSkip(msg.skip), msg.masked)
		return m.reloadAfterSkip()
	case skipRemovedMsg:
		if msg.err != nil {
			m.setErr("remove skip", msg.err)
			return nil
		}
		verb := "Removed"
		if msg.undo {
			verb = "Undid"
		}
		m.setMsg("%s skip %s: unmasked %d incident(s)", verb, describeSkip(msg.skip), msg.unmasked)
		return m.reloadAfterSkip()
	case monitoringMsg:
		if msg.err != nil {
			m.setErr("switch monitoring", msg.err)
			return nil
		}
		m.hdr.st.Monitoring = msg.on
		if msg.on {
			m.setMsg("Monitoring on: the sensor is attached")
		} else {
			m.setMsg("Monitoring off: the sensor is detached")
		}
		return loadStatus(m.ctx, m.svc, false)
	case exportedMsg:
		if msg.err != nil {
			m.setErr("export", msg.err)
			return nil
		}
		m.setMsg("Exported %d incident(s) to %s", msg.count, sensor.DisplayString(msg.path))
	}
	return nil
}

func (m *Model) reloadAfterSkip() tea.Cmd {
	cmds := []tea.Cmd{loadIncidents(m.ctx, m.svc, m.opts.Incidents, m.users), loadSkips(m.ctx, m.svc), loadStatus(m.ctx, m.svc, false)}
	if m.active == screenNoise {
		cmds = append(cmds, loadNoise(m.ctx, m.svc, m.opts.Now(), m.noiseWin))
	}
	return tea.Batch(cmds...)
}

// describeSkip says in words what a skip covers; its value is escaped.
func describeSkip(s rules.Skip) string {
	scope := "for every rule"
	if s.Rule != "" {
		scope = "for rule " + sensor.DisplayString(s.Rule)
	}
	return fmt.Sprintf("%s %q %s", s.Kind, sensor.DisplayString(s.Value), scope)
}

func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	if msg.String() == "ctrl+c" {
		m.quitting = true
		return tea.Quit
	}
	if m.mode != inputNone {
		return m.handleInputKey(msg)
	}
	if m.confirm != nil {
		c := m.confirm
		switch {
		case key.Matches(msg, k.Yes):
			m.confirm = nil
			m.setMsg("working…")
			return c.yes
		case key.Matches(msg, k.No):
			m.confirm = nil
			m.setMsg("cancelled")
		}
		return nil
	}
	if m.showHelp {
		if key.Matches(msg, k.Help, k.Close, k.Quit) {
			m.showHelp = false
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Quit):
		m.quitting = true
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.showHelp = true
		return nil
	case key.Matches(msg, k.Next):
		return m.switchTo((m.active + 1) % screenCount)
	case key.Matches(msg, k.Prev):
		return m.switchTo((m.active + screenCount - 1) % screenCount)
	}
	for i, b := range k.Screens {
		if key.Matches(msg, b) {
			return m.switchTo(screen(i))
		}
	}
	if m.detail.open {
		return m.handleDetailKey(msg)
	}
	return m.handleListKey(msg)
}

func (m *Model) switchTo(s screen) tea.Cmd {
	m.active = s
	m.detail.Close()
	m.refreshActive()
	switch s {
	case screenNoise:
		return loadNoise(m.ctx, m.svc, m.opts.Now(), m.noiseWin)
	case screenSkips:
		return loadSkips(m.ctx, m.svc)
	case screenRules:
		return loadRules(m.ctx, m.svc)
	}
	return nil
}

func (m *Model) handleInputKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		if m.mode == inputFilter {
			m.activeList().SetFilter("")
		}
		m.mode = inputNone
		m.input.Blur()
		return nil
	case "enter":
		mode := m.mode
		m.mode = inputNone
		m.input.Blur()
		if mode == inputPath {
			s := m.pathSkip
			s.Value = m.input.Value()
			if s.Value == "" {
				m.setMsg("cancelled: empty path")
				return nil
			}
			return previewSkip(m.ctx, m.svc, s)
		}
		return nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	m.inputChanged()
	return cmd
}

func (m *Model) inputChanged() {
	if m.mode == inputFilter {
		m.activeList().SetFilter(m.input.Value())
	}
}

func (m *Model) openInput(mode inputMode, value string) tea.Cmd {
	m.mode = mode
	m.input.SetValue(value)
	m.input.CursorEnd()
	return m.input.Focus()
}

// handleNav moves the selection of l; it reports whether msg was a
// navigation key.
func (m *Model) handleNav(l *listView, msg tea.KeyPressMsg) bool {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Up):
		l.Move(-1)
	case key.Matches(msg, k.Down):
		l.Move(1)
	case key.Matches(msg, k.PageUp):
		l.Move(-l.Page())
	case key.Matches(msg, k.PageDown):
		l.Move(l.Page())
	case key.Matches(msg, k.Home):
		l.Home()
	case key.Matches(msg, k.End):
		l.End()
	default:
		return false
	}
	return true
}

func (m *Model) handleListKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	l := m.activeList()
	if m.handleNav(l, msg) {
		return nil
	}
	switch {
	case key.Matches(msg, k.Filter):
		return m.openInput(inputFilter, l.Filter())
	case key.Matches(msg, k.Close):
		if l.Filter() != "" {
			l.SetFilter("")
		} else {
			m.msg, m.msgErr = "", false
		}
		return nil
	case key.Matches(msg, k.Undo):
		return m.undoSkip()
	}
	switch {
	case m.active == screenIncidents:
		return m.handleIncidentKey(msg)
	case m.active.isStream():
		return m.handleStreamKey(msg)
	case m.active == screenNoise:
		return m.handleNoiseKey(msg)
	case m.active == screenSkips:
		return m.handleSkipsKey(msg)
	case m.active == screenRules:
		return m.handleRulesKey(msg)
	}
	return nil
}

func (m *Model) handleIncidentKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Open):
		m.openDetail()
	case key.Matches(msg, k.Sort):
		m.inc.toggleSort()
	case key.Matches(msg, k.Export):
		list := m.inc.shown()
		if len(list) == 0 {
			m.setMsg("nothing to export: no incidents shown")
			return nil
		}
		return exportIncidents(m.opts.ExportDir, m.hdr.st.Host, m.opts.Now(), list)
	default:
		return m.actOnSelection(msg)
	}
	return nil
}

func (m *Model) handleStreamKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Pause):
		m.activeStream().togglePause()
	case key.Matches(msg, k.Open):
		m.openDetail()
	default:
		return m.actOnSelection(msg)
	}
	return nil
}

func (m *Model) handleDetailKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Close):
		m.detail.Close()
	case key.Matches(msg, k.Up):
		m.detail.vp.ScrollUp(1)
	case key.Matches(msg, k.Down):
		m.detail.vp.ScrollDown(1)
	case key.Matches(msg, k.PageUp):
		m.detail.vp.PageUp()
	case key.Matches(msg, k.PageDown):
		m.detail.vp.PageDown()
	case key.Matches(msg, k.Home):
		m.detail.vp.GotoTop()
	case key.Matches(msg, k.End):
		m.detail.vp.GotoBottom()
	case key.Matches(msg, k.Undo):
		return m.undoSkip()
	default:
		return m.actOnSelection(msg)
	}
	return nil
}

// openDetail shows the selected incident or event.
func (m *Model) openDetail() {
	switch {
	case m.active == screenIncidents:
		if in := m.inc.selected(); in != nil {
			m.detail.Show("Incident "+in.ID.String(), incidentDetail(in, m.ruleByName[in.Rule], m.users, m.opts.Location))
		}
	case m.active.isStream():
		if it := m.activeStream().selected(); it != nil {
			m.detail.Show(screenNames[m.active]+" event", eventDetail(it, m.users, m.opts.Location))
		}
	}
}

// selectedEvent returns the event under the cursor and the rule it raised
// an incident for ("" when none).
func (m *Model) selectedEvent() (*sensor.Event, string, *rules.Incident) {
	switch {
	case m.active == screenIncidents:
		if in := m.inc.selected(); in != nil {
			return &in.Process, in.Rule, in
		}
	case m.active.isStream():
		if it := m.activeStream().selected(); it != nil {
			return &it.ev, it.rule, nil
		}
	}
	return nil, "", nil
}

// actOnSelection handles the keys that act on the selected incident or
// event: acknowledge, mask and the four skips.
func (m *Model) actOnSelection(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	ev, rule, in := m.selectedEvent()
	if ev == nil {
		return nil
	}
	switch {
	case key.Matches(msg, k.Ack), key.Matches(msg, k.Mask):
		if in == nil {
			m.setMsg("acknowledge and mask work on incidents (screen 1)")
			return nil
		}
		st := rules.StatusAcknowledged
		if key.Matches(msg, k.Mask) {
			st = rules.StatusMasked
		}
		return setStatus(m.ctx, m.svc, []rules.ID{in.ID}, st)
	case key.Matches(msg, k.SkipCmd), key.Matches(msg, k.SkipCmdAll):
		all := key.Matches(msg, k.SkipCmdAll)
		if !all && rule == "" {
			m.setMsg("this event raised no incident, so it has no rule: S skips it for every rule")
			return nil
		}
		s := m.newSkip(rules.SkipCommand, commandName(ev), rule, all)
		return previewSkip(m.ctx, m.svc, s)
	case key.Matches(msg, k.SkipPath), key.Matches(msg, k.SkipPathAll):
		all := key.Matches(msg, k.SkipPathAll)
		if !all && rule == "" {
			m.setMsg("this event raised no incident, so it has no rule: P skips its path for every rule")
			return nil
		}
		if ev.Exe == "" {
			m.setMsg("this event has no executable path to skip")
			return nil
		}
		m.pathSkip = m.newSkip(rules.SkipPath, "", rule, all)
		return m.openInput(inputPath, filepath.Dir(string(ev.Exe)))
	}
	return nil
}

func (m *Model) newSkip(kind, value, rule string, all bool) rules.Skip {
	s := rules.Skip{Kind: kind, Value: value, Rule: rule, Note: "added in the procwatch TUI"}
	if all {
		s.Rule = ""
	}
	return s
}

func (m *Model) undoSkip() tea.Cmd {
	if len(m.undo) == 0 {
		m.setMsg("no skip to undo")
		return nil
	}
	s := m.undo[len(m.undo)-1]
	m.undo = m.undo[:len(m.undo)-1]
	return removeSkip(m.ctx, m.svc, s, true)
}

func (m *Model) handleNoiseKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Window):
		if m.noiseWin == time.Hour {
			m.noiseWin = 24 * time.Hour
		} else {
			m.noiseWin = time.Hour
		}
		m.noise.SetRows(nil)
		return loadNoise(m.ctx, m.svc, m.opts.Now(), m.noiseWin)
	case key.Matches(msg, k.Refresh):
		return loadNoise(m.ctx, m.svc, m.opts.Now(), m.noiseWin)
	}
	r := m.noise.Selected()
	if r == nil {
		return nil
	}
	e := r.item.(*noiseEntry)
	switch {
	case key.Matches(msg, k.SkipCmd), key.Matches(msg, k.SkipCmdAll):
		all := key.Matches(msg, k.SkipCmdAll)
		if !all && e.Rule == "" {
			all = true
		}
		return previewSkip(m.ctx, m.svc, m.newSkip(e.kind, e.Value, e.Rule, all))
	case key.Matches(msg, k.SkipPath), key.Matches(msg, k.SkipPathAll):
		if e.kind != rules.SkipPath {
			m.setMsg("p edits a path skip: select a path row, or press s to skip this command")
			return nil
		}
		m.pathSkip = m.newSkip(rules.SkipPath, "", e.Rule, key.Matches(msg, k.SkipPathAll))
		return m.openInput(inputPath, e.Value)
	}
	return nil
}

func (m *Model) handleSkipsKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Refresh):
		return loadSkips(m.ctx, m.svc)
	case key.Matches(msg, k.Delete):
		r := m.skips.Selected()
		if r == nil {
			return nil
		}
		s := *r.item.(*rules.Skip)
		if s.Source != rules.SourceAdded || s.ID == "" {
			m.setMsg("this skip is written in %s: edit that file to remove it", sensor.DisplayString(s.Source))
			return nil
		}
		m.confirm = &confirmation{
			prompt: fmt.Sprintf("Delete skip %s? The incidents it masked reopen.", describeSkip(s)),
			yes:    removeSkip(m.ctx, m.svc, s, false),
		}
	}
	return nil
}

func (m *Model) handleRulesKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Refresh):
		return tea.Batch(loadRules(m.ctx, m.svc), loadStatus(m.ctx, m.svc, false))
	case key.Matches(msg, k.Monitor):
		on := !m.hdr.st.Monitoring
		if on {
			return setMonitoring(m.ctx, m.svc, true)
		}
		m.confirm = &confirmation{
			prompt: "Switch monitoring off? The sensor detaches and no events are seen until it is back on.",
			yes:    setMonitoring(m.ctx, m.svc, false),
		}
	}
	return nil
}

package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/hosts"
	"github.com/procwatch/procwatch/rules"
)

// resubscribeAfter is how long the UI waits before reopening a
// subscription that ended or failed. A subscription of a host that keeps
// its own connection (it reports one: a remote or fleet host) is reopened
// sooner when it ended: the host's Subscribe itself waits for the
// reconnection.
const (
	resubscribeAfter     = 2 * time.Second
	hostResubscribeAfter = 100 * time.Millisecond
)

func resubscribeLater(host int, d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return resubscribeMsg{host: host} })
}

// msgExpiredMsg clears the message line if message seq is still shown.
type msgExpiredMsg struct{ seq uint64 }

// Update handles one message. It never does I/O: service calls are
// returned as commands. A message set while handling msg gets its expiry
// timer here, in one place.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	seq := m.msgSeq
	_, cmd := m.update(msg)
	if m.hostsDirty {
		m.refreshHosts() // once per message, however many hosts changed
	}
	if m.headerHeight() != m.hdrH {
		m.resize(m.width, m.height) // a banner line came or went
	}
	if m.msgSeq != seq {
		if exp := m.msgExpiry(); exp != nil {
			cmd = tea.Batch(cmd, exp)
		}
	}
	return m, cmd
}

func (m *Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case msgExpiredMsg:
		if msg.seq == m.msgSeq {
			m.msg, m.msgErr = "", false
		}
		return m, nil
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return m, nil
	case tea.BackgroundColorMsg:
		m.th = newTheme(msg.IsDark())
		m.help.Styles = m.th.help
		return m, nil
	case frameMsg:
		return m, m.applyFrame(msg)
	case subscribedMsg:
		h := m.hosts[msg.host]
		if msg.gen != h.gen {
			return m, nil
		}
		if msg.err != nil {
			h.subErr = event.DisplayString(msg.err.Error())
			m.refreshHosts()
			return m, resubscribeLater(msg.host, resubscribeAfter)
		}
		h.subErr = ""
		m.refreshHosts()
		// Load stored incidents only now, so nothing raised between the
		// query and the subscription can be missed.
		return m, tea.Batch(loadIncidents(m.ctx, m.target(msg.host), m.opts.Incidents, m.users), m.loadStatus(msg.host, false))
	case hostAddedMsg:
		return m, tea.Batch(m.addHost(msg.h), waitHost(m.ctx, m.opts.MoreHosts))
	case resubscribeMsg:
		return m, m.resubscribe(msg.host, m.hosts[msg.host].lastID)
	case statusPollMsg:
		if m.several() {
			m.hdr.sparkSample() // the summed header observes no status, so it samples here
		}
		ts := make([]target, len(m.hosts))
		conns := make([]func() hosts.Conn, len(m.hosts))
		for i, h := range m.hosts {
			ts[i], conns[i] = m.target(i), h.conn
		}
		return m, pollStatuses(m.ctx, ts, conns)
	case statusesMsg:
		for _, s := range msg.list {
			m.statusResult(s)
		}
		return m, pollStatusLater()
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

// applyFrame folds one frame's batch of every host into the screens,
// restarts the subscriptions that ended and re-arms the drain.
func (m *Model) applyFrame(msg frameMsg) tea.Cmd {
	m.apply(msg.batch)
	if msg.left != m.uiBacklog {
		m.uiBacklog = msg.left
		m.hostsDirty = true // the header says how far behind the screen is
	}
	cmds := []tea.Cmd{drainNext(m.ctx, m.opts.Tick, msg.at, m.box, m.users)}
	for _, n := range msg.hosts {
		if !n.closed || n.host >= len(m.hosts) || n.gen != m.hosts[n.host].gen {
			continue
		}
		h := m.hosts[n.host]
		h.subErr = "subscription ended; reconnecting"
		after := resubscribeAfter
		if h.conn != nil {
			after = hostResubscribeAfter // its Subscribe waits for the reconnection
		}
		cmds = append(cmds, resubscribeLater(n.host, after), m.loadStatus(n.host, false))
		m.hostsDirty = true
	}
	return tea.Batch(cmds...)
}

// current says whether an update of host from subscription gen is still
// wanted: a replaced subscription's leftovers are not.
func (m *Model) current(host, gen int) bool {
	return host < len(m.hosts) && m.hosts[host].gen == gen
}

// apply folds one drained batch into the screens. Incidents go first so
// that stream rows of events that raised one can show its severity. Its
// cost is that of the batch, not of what the screens hold.
func (m *Model) apply(b batch) {
	type evKey struct {
		host int
		t    event.EventType
		pid  uint32
		tid  uint32
		at   int64
	}
	var raised map[evKey]*rules.Incident
	if len(b.incidents) > 0 {
		last := m.inc.upsert(b.incidents, m.current, m.users, m.opts.Location)
		for host, id := range last {
			h := m.hosts[host]
			h.lastID = max(h.lastID, id)
		}
		if len(b.items) > 0 {
			raised = make(map[evKey]*rules.Incident, len(b.incidents))
			for i := range b.incidents {
				hi := &b.incidents[i]
				p := &hi.inc.Process
				raised[evKey{hi.host, p.Type, p.PID, p.TID, p.Time.UnixNano()}] = &hi.inc
			}
		}
	}
	for i := range b.items {
		it := &b.items[i]
		if !m.current(it.host, it.gen) {
			continue
		}
		if in := raised[evKey{it.host, it.ev.Type, it.ev.PID, it.ev.TID, it.ev.Time.UnixNano()}]; in != nil {
			it.sev, it.incident, it.rule = in.Severity, in.ID, in.Rule
		}
		switch it.ev.Type {
		case event.TypeExec:
			m.streams[0].add(it, m.users, m.opts.Location)
		case event.TypeEscalation:
			m.streams[1].add(it, m.users, m.opts.Location)
		case event.TypeExit:
			m.streams[2].add(it, m.users, m.opts.Location)
		}
	}
	if len(b.incidents) > 0 {
		m.refreshDetail()
	}
	for _, n := range b.hosts {
		if !m.current(n.host, n.gen) {
			continue
		}
		hdr := &m.hosts[n.host].hdr
		if n.status != nil {
			hdr.observe(*n.status)
		}
		hdr.uiDropped += n.dropped
		if n.status != nil || n.dropped > 0 {
			m.hostsDirty = true
		}
	}
	if b.dropped > 0 || b.incDropped > 0 {
		m.uiDropped += b.dropped
		m.uiIncDropped += b.incDropped
		m.hostsDirty = true
	}
	m.refreshActive()
}

// refreshActive hands new rows to the visible screen only; the others catch
// up when they are shown.
func (m *Model) refreshActive() { m.comp().refresh() }

// handleResult handles the replies of service calls.
func (m *Model) handleResult(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case incidentsMsg:
		if msg.err != nil {
			m.setErr(m.onHost("load incidents", msg.host), msg.err)
			return nil
		}
		h := m.hosts[msg.host]
		h.lastID = max(h.lastID, m.inc.upsertHost(msg.host, msg.list, m.users, m.opts.Location))
		m.refreshActive()
		m.refreshDetail()
		if m.active == screenNoise && msg.host == m.focus {
			return m.loadNoise() // a skip masked some: suggest anew
		}
	case statusMsg:
		return m.statusResult(msg)
	case rulesMsg:
		if msg.host != m.focus {
			return nil
		}
		if msg.err != nil {
			m.setErr(m.onHost("load rules", msg.host), msg.err)
			return nil
		}
		m.ruleByName = make(map[string]*rules.Rule, len(msg.list))
		for i := range msg.list {
			m.ruleByName[msg.list[i].Name] = &msg.list[i]
		}
		m.rulesList.SetRows(ruleRows(msg.list))
		m.refreshDetail()
	case skipsMsg:
		if msg.host != m.focus {
			return nil
		}
		if msg.err != nil {
			m.setErr(m.onHost("load skips", msg.host), msg.err)
			return nil
		}
		m.skips.SetRows(skipRows(msg.list, m.opts.Location))
	case noiseMsg:
		if msg.host == m.focus && msg.window == m.noiseWin {
			m.noise.SetRows(noiseRows(msg.list))
		}
	case statusSetMsg:
		return m.statusSetResult(msg)
	case skipPreviewMsg:
		m.confirmSkip(msg)
	case fleetSkipAddedMsg:
		m.fleetSkipAdded(msg)
	case skipAddedMsg:
		return m.skipAdded(msg)
	case skipRemovedMsg:
		return m.skipRemoved(msg)
	case monitoringMsg:
		return m.monitoringResult(msg)
	case exportedMsg:
		if msg.err != nil {
			m.setErr("export", msg.err)
			return nil
		}
		m.setMsg("Exported %d incident(s) to %s", msg.count, event.DisplayString(msg.path))
	}
	return nil
}

// statusResult takes a host's status (or why it could not be had) into
// its header, and re-arms the poll when the reply is the poll's.
func (m *Model) statusResult(msg statusMsg) tea.Cmd {
	var next tea.Cmd
	if msg.poll {
		next = pollStatusLater()
	}
	h := m.hosts[msg.host]
	if msg.conn != nil {
		h.state, h.haveState = *msg.conn, true
	}
	h.statusErr = ""
	switch {
	case msg.err != nil:
		h.statusErr = event.DisplayString(msg.err.Error())
	case !msg.pushed:
		h.hdr.observe(msg.st)
	}
	m.hostsDirty = true
	return next
}

// statusSetResult shows a triage change at once in the list and in an
// open detail pane, and says how it went.
func (m *Model) statusSetResult(msg statusSetMsg) tea.Cmd {
	ok, bad := split(msg.results)
	if len(ok) == 0 {
		m.setErr(m.onHosts("change incident status", bad), bad[0].err)
		return nil
	}
	n := 0
	var cmds []tea.Cmd
	for _, r := range ok {
		m.inc.setStatus(r.host, r.ids, msg.status, m.users, m.opts.Location)
		n += len(r.ids)
		cmds = append(cmds, m.loadStatus(r.host, false))
	}
	m.inc.refresh()
	m.refreshDetail()
	verb := "Acknowledged"
	switch msg.status {
	case rules.StatusMasked:
		verb = "Masked"
	case rules.StatusOpen:
		verb = "Re-opened"
	}
	m.setMsg("%s %d incident(s)%s%s", verb, n, m.onWhat(ok), m.failures(bad))
	return tea.Batch(cmds...)
}

// monitoringResult shows, per host and on the message line, how switching
// monitoring on one or several hosts went. The sensors attach or detach in
// the background: the header says when they have, from the next status.
func (m *Model) monitoringResult(msg monitoringMsg) tea.Cmd {
	word := "off"
	if msg.on {
		word = "on"
	}
	ok, bad := split(msg.results)
	var cmds []tea.Cmd
	for _, r := range msg.results {
		h := m.hosts[r.host]
		if r.err != nil {
			h.result, h.resultErr = "monitoring "+word+": failed", true
			h.resultDetail = "monitoring " + word + " failed: " + event.DisplayString(r.err.Error())
			continue
		}
		h.result, h.resultErr, h.resultDetail = "monitoring "+word+": ok", false, ""
		h.hdr.st.Monitoring = msg.on
		cmds = append(cmds, m.loadStatus(r.host, false))
	}
	m.refreshHosts()
	switch {
	case len(ok) == 0:
		m.setErr(m.onHosts("switch monitoring "+word, bad), bad[0].err)
	case len(bad) > 0:
		m.setErrText(fmt.Sprintf("Monitoring %s: done on %d of %d host(s)%s", word, len(ok), len(msg.results), m.failures(bad)))
	default:
		verb := "attached"
		if !msg.on {
			verb = "detached"
		}
		sensors := "the sensor is being "
		if len(ok) > 1 {
			sensors = "the sensors are being "
		}
		m.setMsg("Monitoring %s%s: %s%s", word, m.onWhat(ok), sensors, verb)
	}
	return tea.Batch(cmds...)
}

// split separates the hosts that did what was asked from those that failed.
func split(results []hostResult) (ok, bad []hostResult) {
	for _, r := range results {
		if r.err != nil {
			bad = append(bad, r)
		} else {
			ok = append(ok, r)
		}
	}
	return ok, bad
}

// total sums what the hosts counted: incidents a skip masks, masked or
// unmasked.
func total(results []hostResult) int {
	n := 0
	for _, r := range results {
		n += r.n
	}
	return n
}

// failures lists the hosts that failed and why, for the end of a message.
func (m *Model) failures(bad []hostResult) string {
	if len(bad) == 0 {
		return ""
	}
	parts := make([]string, len(bad))
	for i, r := range bad {
		parts[i] = event.DisplayString(m.hosts[r.host].name) + ": " + event.DisplayString(r.err.Error())
	}
	return " · failed on " + strings.Join(parts, "; ")
}

// onHost adds the host's name to what failed, when there are several.
func (m *Model) onHost(what string, host int) string {
	return m.onHosts(what, []hostResult{{host: host}})
}

// onHosts adds the hosts' names to what failed (see onWhat).
func (m *Model) onHosts(what string, results []hostResult) string {
	return what + m.onWhat(results)
}

func (m *Model) reloadAfterSkip(results []hostResult) tea.Cmd {
	var cmds []tea.Cmd
	for _, r := range results {
		cmds = append(cmds, loadIncidents(m.ctx, m.target(r.host), m.opts.Incidents, m.users), m.loadStatus(r.host, false))
	}
	cmds = append(cmds, loadSkips(m.ctx, m.target(m.focus)))

	return tea.Batch(cmds...)
}

func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	if key.Matches(msg, k.ForceQuit) {
		return tea.Quit
	}
	if m.mode != inputNone {
		return m.handleInputKey(msg)
	}
	if m.confirm != nil {
		return m.handleConfirmKey(msg)
	}
	if m.showHelp {
		return m.handleHelpKey(msg)
	}
	ctx := m.keyContext()
	if !key.Matches(msg, k.active(ctx, m.comp().keys())...) {
		m.unknownKey(msg)
		return nil
	}
	switch {
	case key.Matches(msg, k.Quit):
		// q backs out of a pane first; only the top level quits.
		if m.detail.open {
			m.detail.Close()
			return nil
		}
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.openHelp()
		return nil
	case key.Matches(msg, k.Next):
		return m.switchTo((m.active + 1) % m.screenCount())
	case key.Matches(msg, k.Prev):
		return m.switchTo((m.active + m.screenCount() - 1) % m.screenCount())
	}
	for i, b := range k.Screens[:m.screenCount()] {
		if key.Matches(msg, b) {
			return m.switchTo(screen(i))
		}
	}
	if m.detail.open {
		return m.handleDetailKey(msg)
	}
	return m.handleListKey(msg)
}

// handleConfirmKey answers a pending confirmation: y or enter runs it, n,
// esc or q cancels it, anything else reminds what is asked.
func (m *Model) handleConfirmKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	c := m.confirm
	switch {
	case key.Matches(msg, k.Yes):
		m.confirm = nil
		m.setWorking()
		return c.yes
	case key.Matches(msg, k.No):
		m.confirm = nil
		m.setMsg("cancelled")
	case c.fleet != nil && key.Matches(msg, k.Fleet):
		m.confirm = nil
		m.setWorking()
		return c.fleet
	case c.edit != nil && key.Matches(msg, k.Edit):
		m.confirm = nil
		return m.editOffer(*c.edit)
	default:
		m.setMsg("answer the question: y or enter confirms, n, esc or q cancels")
	}
	return nil
}

func (m *Model) openHelp() {
	m.showHelp = true
	m.helpVP.SetContent(helpText(m.th, m.keys.keySections(m.several()), m.width))
	m.helpVP.GotoTop()
}

// handleHelpKey scrolls or closes the help screen.
func (m *Model) handleHelpKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	vp := &m.helpVP
	switch {
	case key.Matches(msg, k.Help, k.Close, k.Quit):
		m.showHelp = false
	case key.Matches(msg, k.Up):
		vp.ScrollUp(1)
	case key.Matches(msg, k.Down):
		vp.ScrollDown(1)
	case key.Matches(msg, k.PageUp):
		vp.PageUp()
	case key.Matches(msg, k.PageDown):
		vp.PageDown()
	case key.Matches(msg, k.Home):
		vp.GotoTop()
	case key.Matches(msg, k.End):
		vp.GotoBottom()
	default:
		m.setMsg("keys here: ↑/↓ or pgup/pgdn scroll the help; esc, q or ? close it")
	}
	return nil
}

// unknownKey tells the operator, briefly, that a key does nothing here,
// and where it does something when it does.
func (m *Model) unknownKey(msg tea.KeyPressMsg) {
	name := msg.String()
	switch name {
	case "shift", "ctrl", "alt", "super", "meta", "hyper", "capslock", "numlock", "scrolllock":
		return // a modifier on its own
	}
	name = event.DisplayString(name)
	if where, b, ok := m.keys.knownElsewhere(msg, m.several()); ok {
		if m.detail.open {
			m.setMsg("%s (%s) works in %s, not in the detail pane · esc closes it · ? lists every key", name, b.Help().Desc, where)
			return
		}
		m.setMsg("%s (%s) works in %s, not here · ? lists every key", name, b.Help().Desc, where)
		return
	}
	m.setMsg("unknown key %s · ? lists every key", name)
}

func (m *Model) switchTo(s screen) tea.Cmd {
	m.active = s
	m.detail.Close()
	m.refreshActive()
	return m.comp().shown()
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
			v := m.input.Value()
			if v == "" {
				m.setMsg("cancelled: empty path")
				return nil
			}
			return m.pathEdited(v)
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
func (m *Model) handleNav(l lister, msg tea.KeyPressMsg) bool {
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
			m.clearMsg()
		}
		return nil
	case key.Matches(msg, k.Undo):
		return m.undoSkip()
	}
	return m.comp().update(msg)
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
		name := m.hdr.st.Host
		if m.several() {
			name = "all-hosts"
			if m.inc.onlyHost >= 0 {
				name = m.hosts[m.inc.onlyHost].name
			}
		}
		return exportIncidents(m.opts.ExportDir, name, m.opts.Now(), list)
	case key.Matches(msg, k.AckAll, k.MaskAll):
		st := rules.StatusAcknowledged
		if key.Matches(msg, k.MaskAll) {
			st = rules.StatusMasked
		}
		m.confirmAll(st)
	case key.Matches(msg, k.HostFilter): // bound with several hosts only
		return m.cycleHostFilter()
	case key.Matches(msg, k.FanOut):
		m.toggleFanOut()
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
		if in, host := m.inc.selected(); in != nil {
			title, body := m.incidentDetailOf(in, host)
			m.detail.showIncident(incKey{host, in.ID}, title, body)
		}
	case m.active.isStream():
		if it := m.activeStream().selected(); it != nil {
			m.detail.Show(screenNames[m.active]+" event", eventDetail(it, m.users, m.opts.Location))
		}
	}
}

// incidentDetailOf is the detail pane's title and text for in.
func (m *Model) incidentDetailOf(in *rules.Incident, host int) (string, string) {
	title := "Incident " + in.ID.String()
	if m.several() {
		title += " · host " + event.DisplayString(m.hosts[host].name)
	}
	return title, incidentDetail(in, m.ruleByName[in.Rule], m.users, m.opts.Location)
}

// refreshDetail redraws an open incident's detail pane from what the UI
// holds now, so a new status, a repeat, its fate or a rules reload shows
// at once, without moving the scroll position.
func (m *Model) refreshDetail() {
	if !m.detail.open || !m.detail.isInc {
		return
	}
	r := m.inc.byID[m.detail.inc]
	if r == nil {
		return
	}
	m.detail.update(m.incidentDetailOf(r.item, m.detail.inc.host))
}

// selectedEvent returns the event under the cursor, the rule it raised an
// incident for ("" when none), the incident on the incidents screen, and
// the host it came from.
func (m *Model) selectedEvent() (*event.Event, string, *rules.Incident, int) {
	switch {
	case m.active == screenIncidents:
		if in, host := m.inc.selected(); in != nil {
			return &in.Process, in.Rule, in, host
		}
	case m.active.isStream():
		if it := m.activeStream().selected(); it != nil {
			return &it.ev, it.rule, nil, it.host
		}
	}
	return nil, "", nil, 0
}

// actOnSelection handles the keys that act on the selected incident or
// event: acknowledge, mask and the four skips.
func (m *Model) actOnSelection(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	ev, rule, in, host := m.selectedEvent()
	if ev == nil {
		return nil
	}
	switch {
	case key.Matches(msg, k.Ack, k.Mask, k.Reopen):
		if in == nil {
			m.setMsg("acknowledge, mask and reopen work on incidents (screen 1)")
			return nil
		}
		st := rules.StatusAcknowledged
		switch {
		case key.Matches(msg, k.Mask):
			st = rules.StatusMasked
		case key.Matches(msg, k.Reopen):
			st = rules.StatusOpen
		}
		if in.Status == st {
			m.setMsg("incident %s is already %s", in.ID, statusLong(st))
			return nil
		}
		return setStatus(m.ctx, m.statusTargets(in, host), st)
	case key.Matches(msg, k.SkipCmd, k.SkipCmdAll, k.SkipPath, k.SkipPathAll):
		return m.offerSkip(msg, ev, rule, in, host)
	}
	return nil
}

func (m *Model) undoSkip() tea.Cmd {
	if len(m.undo) == 0 {
		m.setMsg("no skip to undo")
		return nil
	}
	group := m.undo[len(m.undo)-1]
	m.undo = m.undo[:len(m.undo)-1]
	to := make([]target, len(group))
	for i, r := range group {
		to[i] = m.target(r.host)
		to[i].skip = &group[i].skip
	}
	return removeSkip(m.ctx, to, true)
}

func (m *Model) handleSkipsKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Refresh):
		return loadSkips(m.ctx, m.target(m.focus))
	case key.Matches(msg, k.Delete):
		r := m.skips.Selected()
		if r == nil {
			return nil
		}
		s := *r.item
		if s.Source != rules.SourceAdded || s.ID == "" {
			m.setMsg("this skip is written in %s: edit that file to remove it", event.DisplayString(s.Source))
			return nil
		}
		t := m.target(m.focus)
		t.skip = &s
		m.confirm = &confirmation{
			prompt: fmt.Sprintf("Delete skip %s%s? The incidents it masked reopen.", describeSkip(s), m.onWhat([]hostResult{{host: m.focus}})),
			yes:    removeSkip(m.ctx, []target{t}, false),
		}
	}
	return nil
}

func (m *Model) handleRulesKey(msg tea.KeyPressMsg) tea.Cmd {
	k := &m.keys
	switch {
	case key.Matches(msg, k.Refresh):
		return tea.Batch(loadRules(m.ctx, m.target(m.focus)), m.loadStatus(m.focus, false))
	case key.Matches(msg, k.Monitor):
		to := []target{m.target(m.focus)}
		on := !m.hosts[m.focus].hdr.st.Monitoring
		if on {
			return setMonitoring(m.ctx, to, true)
		}
		m.confirm = &confirmation{
			prompt: fmt.Sprintf("Switch monitoring off%s? The sensor detaches and no events are seen until it is back on.", m.onWhat([]hostResult{{host: m.focus}})),
			yes:    setMonitoring(m.ctx, to, false),
		}
	}
	return nil
}

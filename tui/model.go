// Package tui is procwatch's terminal UI: live exec, escalation and exit
// streams, incidents with their ancestry, and one-key skips for false
// positives. It talks to the pipeline only through api.Service, so the
// same UI runs on an in-process pipeline or on a remote agent.
//
// Structure: one root Model owns what every screen shares (the header, the
// hosts, the detail pane, the help, dialogs and inputs) and one component
// per screen (incident list, three event streams, noise, skips, rules,
// hosts; see component.go): each says its title, lists its keys with their
// help, handles them, draws its body and is told its size.
// One host is the multi-host UI with one host: every host, one or
// several, has a hostView whose status and subscription go through the
// same code, and the header is built from them; only what is worth
// showing (HOST column, Hosts screen, host names) depends on how many
// there are (Model.several).
// Update does no I/O: every service call is a tea.Cmd whose result comes
// back as a message. Updates of every host arrive through one inbox that
// the subscriptions fill and one drain empties at most once a frame (20
// times a second by default) with a bounded budget, so the UI costs about
// the same whether 10 or 10,000 events a second flow, from one host or
// from 200, and a key waits for at most one frame's work (feed.go).
package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/suggest"
)

// Options tune the UI. Zero values pick the defaults.
type Options struct {
	// Rows is how many events each stream keeps (default 10,000). Older
	// rows are dropped, so memory stays bounded at any event rate.
	Rows int
	// Tick is the shortest time between two drains of the subscriptions'
	// pending updates into the screens: one frame (default 50ms). A drain
	// happens as soon as something arrives, never while all is idle, and
	// carries what every host sent in one message.
	Tick time.Duration
	// Incidents is how many stored incidents are loaded at start
	// (default 10,000).
	Incidents int
	// MaxIncidents bounds the incidents the list holds (default 200,000,
	// about 2 KiB each): past it the most expendable tenth goes
	// (rules.ExpendableFirst: masked, acknowledged, then the lowest
	// severities, oldest first), counted in the list's title. They stay in
	// the hosts' stores.
	MaxIncidents int
	// Location is the time zone for times on screen (default time.Local).
	Location *time.Location
	// Now returns the current time (default time.Now); tests fix it.
	Now func() time.Time
	// ExportDir is where `e` writes its JSON file (default ".").
	ExportDir string
	// LookupUser maps a uid to a user name (default: rules.UserName, the
	// system's user database as the rules see it). It is called from
	// commands, never from Update.
	LookupUser func(uid uint32) (string, bool)
	// Notice is shown on the message line at start, e.g. that the
	// pipeline runs without its sensor.
	Notice string
	// Agent is the socket of the agent this UI is a client of; OwnSocket,
	// when the UI runs its own pipeline instead, is the socket it serves
	// to the other commands. The header names the one that is set.
	Agent, OwnSocket string
	// OwnPipeline says the UI runs the pipeline itself (OwnSocket may
	// still be empty when it serves none).
	OwnPipeline bool
	// NoStatusPoll disables the once-a-second status request; tests that
	// compare screens use it so the header does not change under them.
	NoStatusPoll bool
	// MoreHosts, when set, brings hosts that appear after the start (a
	// fleet host's first status message); each is added to the Hosts
	// screen with a subscription of its own. The UI then shows the
	// several-hosts layout (HOST column, Hosts screen) even with one host.
	MoreHosts <-chan Host
}

func (o *Options) defaults() {
	if o.Rows <= 0 {
		o.Rows = 10_000
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	if o.Incidents <= 0 {
		o.Incidents = 10_000
	}
	if o.MaxIncidents <= 0 {
		o.MaxIncidents = 200_000
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ExportDir == "" {
		o.ExportDir = "."
	}
}

type inputMode int

const (
	inputNone inputMode = iota
	inputFilter
	inputPath
)

// confirmation is a pending yes/no question, shown as a dialog above the
// message line: the question, what it covers, and its dangers in words.
type confirmation struct {
	prompt   string   // the question, escaped
	lines    []string // what it covers, escaped
	warnings []string // dangers, escaped
	yes      tea.Cmd
	// edit, for a path skip, is the offer `e` opens in the path input.
	edit *skipOffer
	// fleet, for a skip on a host of a NATS fleet, adds it for every host
	// instead (the f key); yes then means this host only.
	fleet tea.Cmd
}

// Model is the root Bubble Tea model of the UI.
type Model struct {
	ctx   context.Context
	opts  Options
	keys  keyMap
	th    theme
	help  help.Model
	users *userCache

	width, height int
	hdrH          int // header height with its banner, as laid out
	active        screen

	// hosts holds one entry per host: one for a single pipeline, one per
	// configured host otherwise. One host is the same UI as several; what
	// is only worth showing with several (the HOST column, the Hosts
	// screen, host names in titles and messages) asks several().
	hosts []*hostView
	// focus is the host whose noise, skips and rules screens are shown.
	focus int
	// fanOut sends skips, acknowledgements and masks to every selected
	// host instead of only the incident's own.
	fanOut    bool
	hostsList *listView[*hostView]
	comps     [screenCount]component
	// box is where every host's subscription puts its updates; one drain
	// hands them to Update once a frame (feed.go).
	box *inbox
	// uiDropped and uiIncDropped count what the inbox dropped (events,
	// incidents) when the UI fell behind, whichever hosts they came from.
	uiDropped, uiIncDropped uint64
	// uiBacklog is what the last frame left in the inbox.
	uiBacklog int
	// hostsDirty asks for the Hosts rows and the header to be rebuilt
	// once at the end of a frame, not once per host that changed.
	hostsDirty bool

	hdr        header
	inc        *incidentsScreen
	streams    [3]*streamScreen
	noise      *listView[*suggest.Suggestion]
	noiseWin   time.Duration
	skips      *listView[*rules.Skip]
	rulesList  *listView[*rules.Rule]
	ruleByName map[string]*rules.Rule
	detail     detailPane
	showHelp   bool
	helpVP     viewport.Model

	input     textinput.Model
	mode      inputMode
	pathOffer skipOffer // the skip offer a path input edits
	confirm   *confirmation
	undo      [][]hostResult // each entry: the skips one action added
	msg       string
	msgErr    bool
	// msgSeq counts messages; a message expires msgTTL after it was set
	// unless a newer one replaced it. A sticky message ("working…")
	// stays until the result replaces it.
	msgSeq    uint64
	msgSticky bool
}

// New builds the UI on svc: NewHosts with one host. ctx bounds every
// service call and the subscription; cancel it to stop them.
func New(ctx context.Context, svc api.Service, opts Options) *Model {
	return NewHosts(ctx, []Host{{Service: svc}}, opts)
}

func newModel(ctx context.Context, hv []*hostView, opts Options) *Model {
	opts.defaults()
	var names []string // host names for the HOST column; nil with one host
	if len(hv) > 1 || opts.MoreHosts != nil {
		names = make([]string, 0, len(hv))
		for _, h := range hv {
			names = append(names, h.name)
		}
	}
	m := &Model{
		ctx:        ctx,
		hosts:      hv,
		box:        newInbox(4*opts.Rows, inboxIncidents),
		opts:       opts,
		keys:       newKeyMap(),
		th:         newTheme(true),
		help:       help.New(),
		users:      newUserCache(opts.LookupUser),
		inc:        newIncidentsScreen(names, opts.MaxIncidents),
		hostsList:  newListView[*hostView](hostColumns(), -1, false, "no hosts"),
		noise:      newListView[*suggest.Suggestion](noiseColumns(), -1, false, "no incidents in this window"),
		noiseWin:   time.Hour,
		skips:      newListView[*rules.Skip](skipColumns(), -1, false, "no skips"),
		rulesList:  newListView[*rules.Rule](ruleColumns(), -1, false, "no rules loaded"),
		ruleByName: map[string]*rules.Rule{},
		detail:     newDetailPane(),
		input:      textinput.New(),
		helpVP:     viewport.New(),
		width:      80,
		height:     24,
	}
	m.noise.follow, m.skips.follow, m.rulesList.follow, m.hostsList.follow = false, false, false, false
	for i, t := range []event.EventType{event.TypeExec, event.TypeEscalation, event.TypeExit} {
		m.streams[i] = newStreamScreen(t, opts.Rows, names)
	}
	m.comps = newComponents(m)
	m.refreshHosts()
	m.help.Styles = m.th.help
	m.resize(m.width, m.height)
	if opts.Notice != "" {
		m.setErrText(event.DisplayString(opts.Notice))
	}
	switch {
	case m.several():
	case opts.Agent != "":
		m.hdr.source, m.hdr.sourceShort = "agent "+event.DisplayString(opts.Agent), "agent"
	case opts.OwnPipeline && opts.OwnSocket != "":
		m.hdr.source, m.hdr.sourceShort = "own pipeline, serving "+event.DisplayString(opts.OwnSocket), "own pipeline"
	case opts.OwnPipeline:
		m.hdr.source, m.hdr.sourceShort = "own pipeline", "own pipeline"
	}
	return m
}

// Init starts the subscriptions, the drain ticks and the first loads.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{tea.RequestBackgroundColor, drainNext(m.ctx, m.opts.Tick, time.Time{}, m.box, m.users)}
	for i := range m.hosts {
		cmds = append(cmds, m.resubscribe(i, 0), m.loadStatus(i, i == 0 && !m.opts.NoStatusPoll))
	}
	cmds = append(cmds, loadRules(m.ctx, m.target(m.focus)), loadSkips(m.ctx, m.target(m.focus)))
	if m.opts.MoreHosts != nil {
		cmds = append(cmds, waitHost(m.ctx, m.opts.MoreHosts))
	}
	return tea.Batch(cmds...)
}

// hostAddedMsg brings a host that appeared after the start.
type hostAddedMsg struct{ h Host }

// waitHost waits for the next host of ch; nil when ch closes or ctx ends.
func waitHost(ctx context.Context, ch <-chan Host) tea.Cmd {
	return func() tea.Msg {
		select {
		case h, ok := <-ch:
			if ok {
				return hostAddedMsg{h}
			}
		case <-ctx.Done():
		}
		return nil
	}
}

// addHost adds a host that appeared after the start: a row on the Hosts
// screen, its name for the HOST column, and its subscription.
func (m *Model) addHost(h Host) tea.Cmd {
	for _, hv := range m.hosts {
		if hv.name == h.Name {
			return nil // already shown
		}
	}
	i := len(m.hosts)
	m.hosts = append(m.hosts, &hostView{name: h.Name, svc: h.Service, conn: h.Conn})
	names := append(slices.Clip(m.inc.names), h.Name)
	m.inc.names = names
	for _, s := range m.streams {
		s.names = names
	}
	m.hostsDirty = true
	m.resize(m.width, m.height) // the Hosts table grows by a row
	return tea.Batch(m.resubscribe(i, 0), m.loadStatus(i, false))
}

// resubscribe starts a new subscription generation of one host with its
// own inbox, so leftovers of a dead subscription cannot mix into the new
// one.
func (m *Model) resubscribe(host int, after rules.ID) tea.Cmd {
	h := m.hosts[host]
	h.gen++
	return subscribe(m.ctx, h.svc, after, m.box.port(host, h.gen))
}

// several says the UI shows more than one host. It is the one place the
// number of hosts decides what is shown; the code paths are the same.
func (m *Model) several() bool { return len(m.hosts) > 1 || m.opts.MoreHosts != nil }

// screenCount is how many screens this UI has: the Hosts screen is worth
// showing only with several hosts.
func (m *Model) screenCount() screen {
	if m.several() {
		return screenCount
	}
	return screenCount - 1
}

// target returns host i as the target of a call.
func (m *Model) target(i int) target { return target{host: i, svc: m.hosts[i].svc} }

func (m *Model) loadStatus(i int, poll bool) tea.Cmd {
	return loadStatus(m.ctx, m.target(i), m.hosts[i].conn, poll)
}

const (
	headerLines = 3 // without banner lines
	footerLines = 2
)

// maxBanner is how many banner lines the header may take: enough for a
// full reason on 80×24, more on a tall terminal.
func (m *Model) maxBanner() int {
	if m.height >= 40 {
		return 8
	}
	return 4
}

// headerHeight is the header's height now: its three lines and the banner.
func (m *Model) headerHeight() int {
	return headerLines + len(m.hdr.bannerLines(m.th, m.width, m.maxBanner()))
}

func (m *Model) resize(w, h int) {
	m.width, m.height = max(w, 20), max(h, headerLines+footerLines+4)
	m.hdrH = m.headerHeight()
	body := m.height - m.hdrH - footerLines - 1 // one title line
	for _, c := range m.comps {
		c.setSize(m.width, body)
	}
	m.detail.SetSize(m.width, body+1)
	m.help.SetWidth(m.width)
	m.helpVP.SetWidth(m.width)
	m.helpVP.SetHeight(body)
	if m.showHelp {
		m.helpVP.SetContent(helpText(m.th, m.keys.keySections(m.several()), m.width))
	}
	m.input.SetWidth(max(m.width-20, 10))
}

// activeList returns the list of the current screen.
func (m *Model) activeList() lister { return m.comp().list() }

func (m *Model) activeStream() *streamScreen {
	if c, ok := m.comp().(streamComp); ok {
		return c.s
	}
	return nil
}

// View renders the whole screen.
func (m *Model) View() tea.View {
	var b strings.Builder
	b.WriteString(m.hdr.View(m.th, m.width, m.active, int(m.screenCount()), m.maxBanner()))
	b.WriteByte('\n')
	bodyH := m.height - m.hdrH - footerLines
	var body string
	switch {
	case m.showHelp:
		body = m.helpTitle() + "\n" + m.helpVP.View()
	case m.detail.open:
		body = m.detail.View(m.th)
	default:
		body = m.titleLine() + "\n" + m.comp().view()
	}
	msg := m.messageLines()
	if extra := len(msg) - 1; extra > 0 {
		bodyH -= extra // a long message takes the body's last lines
	}
	if m.confirm != nil && !m.showHelp {
		// The dialog takes the bottom of the body; what it is about is
		// named in it.
		d := m.confirmView(bodyH)
		body = fitLines(body, bodyH-strings.Count(d, "\n")-1) + "\n" + d
	}
	b.WriteString(fitLines(body, bodyH))
	b.WriteByte('\n')
	b.WriteString(strings.Join(msg, "\n"))
	b.WriteByte('\n')
	b.WriteString(m.hintLine())

	v := tea.NewView(b.String())
	v.AltScreen = true
	v.WindowTitle = m.windowTitle()
	return v
}

func (m *Model) windowTitle() string {
	open := 0
	for _, n := range m.hdr.st.OpenBySev {
		open += n
	}
	host := "procwatch"
	switch {
	case m.several():
		host = fmt.Sprintf("%d hosts", len(m.hosts))
	case m.hdr.have:
		host = event.DisplayString(m.hdr.st.Host)
	}
	return fmt.Sprintf("procwatch · %s · %d open", host, open)
}

// titleLine names the screen with what the screen adds (counts, sort,
// pause state, host) and the filter.
func (m *Model) titleLine() string {
	parts := append([]string{m.th.title.Render(screenNames[m.active])}, m.comp().title()...)
	if f := m.activeList().Filter(); f != "" {
		parts = append(parts, m.th.warn.Render("filter: "+event.DisplayString(f)))
	}
	return ansi.Truncate(strings.Join(parts, m.th.dim.Render(" · ")), m.width, "…")
}

// maxMsgLines is how many lines a long message may take; the body gives
// them up while it is shown.
const maxMsgLines = 3

// messageLines shows, in order of priority: the text input, a pending
// confirmation (in full in its dialog), or the last message wrapped by
// words, so that a result or an error is read whole.
func (m *Model) messageLines() []string {
	one := func(s string) []string { return []string{ansi.Truncate(s, m.width, "…")} }
	switch {
	case m.mode == inputFilter:
		return one("filter " + m.input.View())
	case m.mode == inputPath:
		return one("skip path " + m.input.View())
	case m.confirm != nil:
		q := "[y/n] " + m.confirm.prompt
		if m.confirm.fleet != nil {
			q = "[y/f/n] " + m.confirm.prompt
		}
		if ansi.StringWidth(q) > m.width {
			q = "[y/n] the question above"
		}
		return one(m.th.confirm.Render(q))
	}
	lines := wrapWords(m.msg, m.width)
	if len(lines) > maxMsgLines {
		lines = lines[:maxMsgLines]
		lines[maxMsgLines-1] = ansi.Truncate(lines[maxMsgLines-1], m.width-1, "") + "…"
	}
	if m.msgErr {
		for i, l := range lines {
			lines[i] = m.th.errText.Render(l)
		}
	}
	return lines
}

// hintLine is the last line: the keys that matter most where the
// operator is, whole ones only.
func (m *Model) hintLine() string {
	var keys []key.Binding
	switch {
	case m.mode != inputNone:
		keys = []key.Binding{m.keys.Apply, m.keys.CancelInput}
	case m.confirm != nil:
		keys = []key.Binding{m.keys.Yes, m.keys.No}
		if m.confirm.fleet != nil {
			keys = []key.Binding{with(m.keys.Yes, "y", "this host"), m.keys.Fleet, m.keys.No}
		}
		if m.confirm.edit != nil {
			keys = append(keys, m.keys.Edit)
		}
	case m.showHelp:
		keys = []key.Binding{with(m.keys.Close, "esc/q/?", "close help"), with(m.keys.Down, "↑↓ pgup pgdn", "scroll")}
	case m.detail.open:
		keys = m.keys.hint(m.keyContext())
	default:
		keys = m.comp().hint()
	}
	return fitHint(m.th, keys, m.width)
}

func (m *Model) keyContext() keyContext {
	return keyContext{screen: m.active, detail: m.detail.open, several: m.several()}
}

// helpTitle names the help screen and how far it is scrolled.
func (m *Model) helpTitle() string {
	t := m.th.title.Render("Keys") + m.th.dim.Render(" · every screen · esc, q or ? closes")
	if !m.helpVP.AtTop() || !m.helpVP.AtBottom() {
		t += m.th.dim.Render(fmt.Sprintf(" · %3.0f%% (↓ scrolls)", m.helpVP.ScrollPercent()*100))
	}
	return ansi.Truncate(t, m.width, "…")
}

// Message lifetimes: results fade after a few seconds, errors stay a bit
// longer so they can be read.
const (
	msgTTL    = 5 * time.Second
	errMsgTTL = 10 * time.Second
)

func (m *Model) setMsg(format string, args ...any) {
	m.msg, m.msgErr, m.msgSticky = fmt.Sprintf(format, args...), false, false
	m.msgSeq++
}

func (m *Model) setErr(what string, err error) {
	m.setErrText(what + ": " + event.DisplayString(err.Error()))
}

// setErrText shows an error that is already escaped.
func (m *Model) setErrText(s string) {
	m.msg, m.msgErr, m.msgSticky = s, true, false
	m.msgSeq++
}

// setWorking shows that an action is on its way; it stays until its
// result replaces it.
func (m *Model) setWorking() {
	m.setMsg("working…")
	m.msgSticky = true
}

func (m *Model) clearMsg() {
	m.msg, m.msgErr, m.msgSticky = "", false, false
	m.msgSeq++
}

// msgExpiry returns the command that clears the current message when its
// time is up, or nil when it does not expire.
func (m *Model) msgExpiry() tea.Cmd {
	if m.msg == "" || m.msgSticky {
		return nil
	}
	ttl := msgTTL
	if m.msgErr {
		ttl = errMsgTTL
	}
	seq := m.msgSeq
	return tea.Tick(ttl, func(time.Time) tea.Msg { return msgExpiredMsg{seq: seq} })
}

// confirmView draws the pending confirmation as a box as wide as the
// screen and at most maxH lines tall: the question, what it covers, and
// each warning on lines of its own, wrapped by words, never cut.
func (m *Model) confirmView(maxH int) string {
	c := m.confirm
	inner := max(m.width-4, 10)
	var lines []string
	add := func(s string, style lipgloss.Style, indent string) {
		for i, l := range wrapWords(s, inner-len(indent)) {
			if i > 0 {
				l = indent + l
			}
			lines = append(lines, style.Render(l))
		}
	}
	add(c.prompt, m.th.bold, "")
	for _, l := range c.lines {
		add(l, lipgloss.NewStyle(), "")
	}
	for _, w := range c.warnings {
		add("⚠ "+w, m.th.warn, "  ")
	}
	keys := "y confirm · n cancel"
	if c.fleet != nil {
		keys = "y this host only · f the whole fleet · n cancel"
	}
	if c.edit != nil {
		keys += " · e edit the path (widen)"
	}
	add(keys, m.th.dim, "")
	if limit := max(maxH-2, 3); len(lines) > limit {
		lines = append(lines[:limit-1], m.th.dim.Render("…"))
	}
	title := "─ Confirm "
	var b strings.Builder
	b.WriteString(m.th.confirm.Render("╭" + title + strings.Repeat("─", max(inner+2-ansi.StringWidth(title), 0)) + "╮"))
	for _, l := range lines {
		b.WriteString("\n" + m.th.confirm.Render("│") + " " + l + strings.Repeat(" ", max(inner-ansi.StringWidth(l), 0)) + " " + m.th.confirm.Render("│"))
	}
	b.WriteString("\n" + m.th.confirm.Render("╰"+strings.Repeat("─", inner+2)+"╯"))
	return b.String()
}

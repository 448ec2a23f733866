package tui

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

const sparkSamples = 60

// header is the status block on top of every screen: host, monitoring,
// event rates with a sparkline of the last minute, drops, rules file status
// and open incidents by severity. Rates come from the sensor's counters in
// successive status snapshots, so they measure what the sensor saw, not
// what reached the UI.
type header struct {
	st        api.Status
	have      bool
	rates     [3]float64 // exec, escalation, exit per second
	spark     []float64  // total events per second, oldest first
	uiDropped uint64     // events the UI itself lost (slow subscriber)
	// uiIncDropped counts incidents the UI's inbox had to drop when it fell
	// behind; they are still in their hosts' stores.
	uiIncDropped uint64
	// uiBacklog is how many updates wait in the UI's inbox for the next
	// frames: the screen is that far behind.
	uiBacklog int
	connErr   string
	// who replaces the host and monitoring part of line 1 when the UI
	// shows several hosts; hostAlerts then holds the hosts' alerts.
	who        string
	hostAlerts []alert
	// source says where the data comes from ("agent /run/….sock"), in
	// full and short; empty says nothing.
	source, sourceShort string
}

// observe takes a new status snapshot and updates the rates.
func (h *header) observe(st api.Status) {
	if h.have && st.Time.After(h.st.Time) {
		dt := st.Time.Sub(h.st.Time).Seconds()
		a, b := h.st.Sensor, st.Sensor
		if b.Exec >= a.Exec && b.Escalation >= a.Escalation && b.Exit >= a.Exit {
			h.rates = [3]float64{
				float64(b.Exec-a.Exec) / dt,
				float64(b.Escalation-a.Escalation) / dt,
				float64(b.Exit-a.Exit) / dt,
			}
		} else {
			h.rates = [3]float64{} // counters restarted
		}
		h.sparkSample()
	}
	if !h.have || !st.Time.Before(h.st.Time) {
		h.st, h.have = st, true
	}
}

// sparkSample adds the current total rate to the sparkline, keeping the
// last sparkSamples points.
func (h *header) sparkSample() {
	h.spark = append(h.spark, h.rates[0]+h.rates[1]+h.rates[2])
	if len(h.spark) > sparkSamples {
		h.spark = h.spark[len(h.spark)-sparkSamples:]
	}
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// sparkline draws samples in width cells, merging neighbours (by maximum)
// when there are more samples than cells.
func sparkline(samples []float64, width int) string {
	if width <= 0 {
		return ""
	}
	cells := make([]float64, width)
	filled := 0
	if len(samples) > 0 {
		per := max(float64(sparkSamples)/float64(width), 1)
		// Right-align: the newest sample is the last cell.
		for i := range cells {
			hi := len(samples) - int(float64(width-1-i)*per)
			lo := hi - int(per)
			if hi <= 0 {
				continue
			}
			lo = max(lo, 0)
			filled++
			for _, v := range samples[lo:hi] {
				cells[i] = max(cells[i], v)
			}
		}
	}
	peak := 0.0
	for _, v := range cells {
		peak = max(peak, v)
	}
	var b strings.Builder
	for i, v := range cells {
		switch {
		case i < width-filled:
			b.WriteRune(' ')
		case peak == 0:
			b.WriteRune(sparkRunes[0])
		default:
			b.WriteRune(sparkRunes[int(v/peak*float64(len(sparkRunes)-1)+0.5)])
		}
	}
	return b.String()
}

// compact writes a rate briefly: 12, 1.2k, 15k, 1.2M.
func compact(v float64) string {
	switch {
	case v < 1000:
		return fmt.Sprintf("%.0f", v)
	case v < 10_000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v < 1_000_000:
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.1fM", v/1_000_000)
}

// alert is a state the operator must see in full: it gets banner lines
// under the header, wrapped, never cut to fit a line.
type alert struct {
	text string // escaped
	err  bool   // red; otherwise a warning colour
}

// Sensor states as the header tells them.
const (
	sensorUnknown  = "unknown" // no status yet
	sensorAttached = "attached"
	sensorOff      = "off"
	sensorFailed   = "failed"
	// sensorStarting: loaded, monitoring on, its programs not attached
	// yet (they attach within moments of the start).
	sensorStarting = "starting"
)

// sensorState says whether the sensor really runs and, when it does not
// although monitoring is wanted, why. It goes by the state the pipeline
// reports for its sensor, never by the monitoring setting alone.
func (h *header) sensorState() (state, reason string) {
	sn := h.st.Sensor
	switch {
	case !h.have:
		return sensorUnknown, ""
	case sn.State == event.SensorFailed:
		return sensorFailed, cmp.Or(sn.Error, "the sensor failed (no reason given)")
	case !h.st.Monitoring:
		return sensorOff, ""
	case sn.State == event.SensorAttached, sn.State == "" && sn.Mode != "":
		// (An agent older than Stats.State reports only the hooks.)
		return sensorAttached, ""
	case sn.State == event.SensorOff && sn.Mode != "":
		return sensorStarting, ""
	}
	return sensorFailed, "monitoring is on but no sensor runs in this pipeline"
}

// monitoringWord is the short form of the sensor's state for line 1.
func (h *header) monitoringWord(th theme) string {
	switch state, _ := h.sensorState(); state {
	case sensorUnknown:
		return th.dim.Render("monitoring ?")
	case sensorOff:
		return th.warn.Render("○ monitoring OFF")
	case sensorFailed:
		return th.errText.Render("✖ NOT MONITORING")
	case sensorStarting:
		return th.warn.Render("◌ attaching the sensor…")
	}
	return th.ok.Render("● monitoring")
}

// alerts lists what the operator must see in full: a sensor that does not
// run, monitoring switched off, a lost connection, a rules file that
// failed to load, and events lost.
func (h *header) alerts() []alert {
	if h.connErr != "" {
		return []alert{{text: "✖ disconnected: " + h.connErr, err: true}}
	}
	var out []alert
	if h.who != "" { // the sum of several hosts: their own alerts, named
		out = append(out, h.hostAlerts...)
	} else {
		switch state, reason := h.sensorState(); state {
		case sensorFailed:
			out = append(out, alert{text: "✖ not monitoring: " + event.DisplayString(reason), err: true})
		case sensorOff:
			out = append(out, alert{text: "○ monitoring is off: the sensor is detached and no events are seen · m on the Rules screen (7) switches it on"})
		}
		if h.st.RulesError != "" {
			out = append(out, alert{text: "✖ rules error: " + event.DisplayString(h.st.RulesError) + " (the previous rules stay active)", err: true})
		}
		out = append(out, storeAlerts(h.st.Store)...)
	}
	return out
}

// storeAlerts are the database's states the operator must read in full:
// commits failing (incidents wait in memory) and incidents given up on.
func storeAlerts(db *api.StoreStatus) []alert {
	if db == nil {
		return nil
	}
	var out []alert
	if db.CommitError != "" {
		out = append(out, alert{text: fmt.Sprintf("✖ database: commits failing, %s incident(s) wait in memory: %s",
			groupDigits(uint64(db.Pending)), event.DisplayString(db.CommitError)), err: true})
	}
	if db.Dropped > 0 {
		out = append(out, alert{text: fmt.Sprintf("✖ database: %s incident(s) dropped while commits failed (see the log)", groupDigits(db.Dropped)), err: true})
	}
	return out
}

// bannerLines renders the alerts wrapped to width, each continuation
// indented under its text, at most maxLines in all.
func (h *header) bannerLines(th theme, width, maxLines int) []string {
	var out []string
	for _, a := range h.alerts() {
		style := th.warn
		if a.err {
			style = th.errText
		}
		wrapped := wrapWords(a.text, width-2)
		for i, l := range wrapped {
			if i > 0 {
				l = "  " + l
			}
			out = append(out, style.Render(l))
		}
	}
	if len(out) > maxLines {
		out = out[:maxLines]
		last := ansi.Strip(out[maxLines-1])
		out[maxLines-1] = th.errText.Render(ansi.Truncate(last, width-1, "") + "…")
	}
	return out
}

// seg is one part of a header line: a full and a short form, and how
// readily it gives way when the line is too narrow (0: never; higher
// values are shortened, then dropped, first).
type seg struct {
	full, short string
	give        int
}

// fitSegs joins segments with sep within width: first the segments that
// give way most are shortened, then dropped, so what must be seen stays
// whole.
func fitSegs(segs []seg, sep string, width int) string {
	cur := make([]string, len(segs))
	for i, s := range segs {
		cur[i] = s.full
	}
	join := func() string {
		var parts []string
		for _, c := range cur {
			if c != "" {
				parts = append(parts, c)
			}
		}
		return strings.Join(parts, sep)
	}
	maxGive := 0
	for _, s := range segs {
		maxGive = max(maxGive, s.give)
	}
	for _, drop := range []bool{false, true} {
		for g := maxGive; g >= 1; g-- {
			for i := len(segs) - 1; i >= 0; i-- {
				if ansi.StringWidth(join()) <= width {
					return join()
				}
				if segs[i].give != g {
					continue
				}
				if drop {
					cur[i] = ""
				} else if segs[i].short != "" {
					cur[i] = segs[i].short
				}
			}
		}
	}
	return ansi.Truncate(join(), width, "…")
}

// View renders the header: three lines, then a banner line for each state
// the operator must see in full; tabs is how many screens exist.
func (h *header) View(th theme, width int, active screen, tabs int, maxBanner int) string {
	lines := append([]string{h.line1(th, width), h.line2(th, width)}, h.bannerLines(th, width, maxBanner)...)
	return lipgloss.JoinVertical(lipgloss.Left, append(lines, tabLine(th, width, active, tabs))...)
}

// line1 is who, the sensor's real state, open incidents and where the
// data comes from.
func (h *header) line1(th theme, width int) string {
	sep := th.dim.Render(" │ ")
	if h.connErr != "" {
		return fitSegs([]seg{{full: th.title.Render("procwatch"), give: 1}, {full: th.errText.Render("✖ disconnected")}}, sep, width)
	}
	host := "connecting…"
	if h.have {
		host = event.DisplayString(h.st.Host)
	}
	segs := []seg{{full: th.title.Render("procwatch"), give: 4}}
	if h.who != "" {
		segs = append(segs, seg{full: h.who}, h.openSeg(th))
	} else {
		segs = append(segs, seg{full: th.bold.Render(host), give: 1}, seg{full: h.monitoringWord(th)}, h.openSeg(th))
	}
	if h.source != "" {
		segs = append(segs, seg{full: th.dim.Render(h.source), short: th.dim.Render(h.sourceShort), give: 3})
	}
	return fitSegs(segs, sep, width)
}

// openSeg counts open incidents by severity: every severity by name, or
// in short the total and the non-zero ones by initial.
func (h *header) openSeg(th theme) seg {
	var full, short []string
	total := 0
	for s := rules.SeverityCritical; s >= rules.SeverityInfo; s-- {
		n := h.st.OpenBySev[s.String()]
		total += n
		style := th.dim
		if n > 0 {
			style = th.sevStyle(s)
			short = append(short, style.Render(fmt.Sprintf("%c%d", s.String()[0], n)))
		}
		full = append(full, style.Render(fmt.Sprintf("%s %d", s, n)))
	}
	open := seg{full: th.bold.Render("open") + " " + strings.Join(full, " "),
		short: th.bold.Render(fmt.Sprintf("open %d", total)), give: 2}
	if len(short) > 0 {
		open.short += " " + strings.Join(short, " ")
	}
	return open
}

// line2 is the event rates with their sparkline, drops, the database's
// notices and the rules status; drops and evictions never give way.
func (h *header) line2(th theme, width int) string {
	drops := h.st.Sensor.Drops + h.st.QueueDropped + h.uiDropped
	dropTxt := th.dim.Render("drops 0")
	if drops > 0 {
		dropTxt = th.errText.Render(fmt.Sprintf("drops %s", groupDigits(drops)))
		if h.st.QueueDropped > 0 {
			dropTxt += th.errText.Render(fmt.Sprintf(" (queues %s)", groupDigits(h.st.QueueDropped)))
		}
		if h.uiDropped > 0 {
			dropTxt += th.errText.Render(fmt.Sprintf(" (ui %s)", groupDigits(h.uiDropped)))
		}
	}
	if h.uiIncDropped > 0 {
		dropTxt += th.errText.Render(fmt.Sprintf(" · ui dropped %s incidents", groupDigits(h.uiIncDropped)))
	}
	if h.uiBacklog > 0 {
		dropTxt += th.warn.Render(fmt.Sprintf(" · ui %s behind", groupDigits(uint64(h.uiBacklog))))
	}
	rulesSeg := seg{full: th.ok.Render("rules ok") + " " + th.dim.Render(event.DisplayString(h.st.RulesPath)), short: th.ok.Render("rules ok"), give: 2}
	if h.st.RulesPath == "" {
		rulesSeg.full = rulesSeg.short
	}
	if h.st.RulesError != "" {
		// The reason is in the banner.
		rulesSeg = seg{full: th.errText.Render("✖ rules error"), give: 1}
	}
	sw := 16
	if width >= 140 {
		sw = sparkSamples
	}
	rates := fmt.Sprintf("exec %s/s  esc %s/s  exit %s/s", compact(h.rates[0]), compact(h.rates[1]), compact(h.rates[2]))
	spark := th.title.Render(sparkline(h.spark, sw))
	segs := append([]seg{{full: rates + " " + spark, short: rates, give: 2}, {full: dropTxt}}, storeNotice(th, h.st.Store)...)
	return fitSegs(append(segs, rulesSeg), th.dim.Render(" │ "), width)
}

// tabLine names the screens, the active one reversed: padded when they
// fit; on narrow terminals (eight tabs on 80 columns) idle tabs lose their
// padding so that none is cut.
func tabLine(th theme, width int, active screen, tabs int) string {
	idle, join := th.tabIdle, ""
	plain := 0
	for i := range tabs {
		plain += len(fmt.Sprintf("%d %s", i+1, screenNames[i])) + 2
	}
	if plain > width {
		idle, join = idle.Padding(0), " "
	}
	labels := make([]string, tabs)
	for i := range labels {
		label := fmt.Sprintf("%d %s", i+1, screenNames[i])
		if screen(i) == active {
			labels[i] = th.tabActive.Render(label)
		} else {
			labels[i] = idle.Render(label)
		}
	}
	return ansi.Truncate(strings.Join(labels, join), width, "…")
}

// storeNotice says what the database is losing or failing to write (no
// segment while all is well): failing commits with their pending count
// (their reason is in the banner, so this gives way first), and evictions
// by the count limit, which never gives way.
func storeNotice(th theme, db *api.StoreStatus) []seg {
	if db == nil {
		return nil
	}
	var out []seg
	if db.CommitError != "" {
		out = append(out, seg{full: th.errText.Render(fmt.Sprintf("db: %s pending, commits failing", groupDigits(uint64(db.Pending)))), give: 1})
	}
	if db.EvictedByCount > 0 {
		out = append(out, seg{full: th.warn.Render(fmt.Sprintf("db full: %s evicted", groupDigits(db.EvictedByCount)))})
	}
	return out
}

// statusPollEvery is how often the header asks for a fresh status.
const statusPollEvery = time.Second

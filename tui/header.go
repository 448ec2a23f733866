package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/service"
)

const sparkSamples = 60

// header is the status block on top of every screen: host, monitoring,
// event rates with a sparkline of the last minute, drops, rules file status
// and open incidents by severity. Rates come from the sensor's counters in
// successive status snapshots, so they measure what the sensor saw, not
// what reached the UI.
type header struct {
	st        service.Status
	have      bool
	rates     [3]float64 // exec, escalation, exit per second
	spark     []float64  // total events per second, oldest first
	uiDropped uint64     // events the UI itself lost (slow subscriber)
	connErr   string
	// who replaces the host and monitoring part of line 1 when the UI
	// shows several hosts.
	who string
}

// observe takes a new status snapshot and updates the rates.
func (h *header) observe(st service.Status) {
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

// View renders the three header lines; tabs is how many screens exist.
func (h *header) View(th theme, width int, active screen, tabs int) string {
	sep := th.dim.Render(" │ ")
	// Line 1: who and what.
	host := "connecting…"
	if h.have {
		host = event.DisplayString(h.st.Host)
	}
	var mon string
	switch {
	case !h.have:
		mon = th.dim.Render("monitoring ?")
	case h.st.Monitoring:
		mon = th.ok.Render("● monitoring")
	default:
		mon = th.warn.Render("○ monitoring OFF")
	}
	open := []string{th.bold.Render("open")}
	for s := rules.SeverityCritical; s >= rules.SeverityInfo; s-- {
		n := h.st.OpenBySev[s.String()]
		txt := fmt.Sprintf("%s %d", s, n)
		if n > 0 {
			txt = th.sevStyle(s).Render(txt)
		} else {
			txt = th.dim.Render(txt)
		}
		open = append(open, txt)
	}
	l1 := th.title.Render("procwatch") + sep + th.bold.Render(host) + sep + mon + sep + strings.Join(open, " ")
	if h.who != "" {
		l1 = h.who + sep + strings.Join(open, " ")
	}
	if h.connErr != "" {
		l1 = th.title.Render("procwatch") + sep + th.errText.Render("disconnected: "+h.connErr)
	}

	// Line 2: rates, drops, rules.
	sw := 16
	if width >= 140 {
		sw = sparkSamples
	}
	rates := fmt.Sprintf("exec %s/s  esc %s/s  exit %s/s ", compact(h.rates[0]), compact(h.rates[1]), compact(h.rates[2]))
	drops := h.st.Sensor.Drops + h.uiDropped
	dropTxt := th.dim.Render("drops 0")
	if drops > 0 {
		dropTxt = th.errText.Render(fmt.Sprintf("drops %s", groupDigits(drops)))
		if h.uiDropped > 0 {
			dropTxt += th.errText.Render(fmt.Sprintf(" (ui %s)", groupDigits(h.uiDropped)))
		}
	}
	rulesTxt := th.ok.Render("rules ok") + " " + th.dim.Render(event.DisplayString(h.st.RulesPath))
	if h.st.RulesError != "" {
		rulesTxt = th.errText.Render("rules error: " + event.DisplayString(h.st.RulesError))
	}
	l2 := rates + th.title.Render(sparkline(h.spark, sw)) + sep + dropTxt + sep + rulesTxt

	// Line 3: tabs.
	// Padded tabs when they fit; on narrow terminals (eight tabs on 80
	// columns) idle tabs lose their padding so that none is cut.
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
	l3 := strings.Join(labels, join)
	fit := func(s string) string { return ansi.Truncate(s, width, "…") }
	return lipgloss.JoinVertical(lipgloss.Left, fit(l1), fit(l2), fit(l3))
}

// statusPollEvery is how often the header asks for a fresh status.
const statusPollEvery = time.Second

package tui

import (
	"sync/atomic"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/table"
	"charm.land/lipgloss/v2"

	"github.com/procwatch/procwatch/rules"
)

// theme holds every style the UI uses. It is rebuilt when the terminal
// reports its background colour, so text stays readable on light and dark
// backgrounds. Meaning never rests on colour alone: severities are also
// spelled out and the selected row is reversed, so NO_COLOR terminals (where
// Bubble Tea drops colours but keeps attributes) lose nothing.
type theme struct {
	isDark  bool
	version int64 // changes whenever the theme is rebuilt

	title, dim, bold, warn, errText, ok lipgloss.Style
	tabActive, tabIdle                  lipgloss.Style
	sev                                 [rules.SeverityCritical + 1]lipgloss.Style
	table                               table.Styles
	help                                help.Styles
	confirm, paused                     lipgloss.Style
}

var themeVersion atomic.Int64

func newTheme(isDark bool) theme {
	ld := lipgloss.LightDark(isDark)
	c := func(light, dark string) lipgloss.Style {
		return lipgloss.NewStyle().Foreground(ld(lipgloss.Color(light), lipgloss.Color(dark)))
	}
	t := theme{isDark: isDark, version: themeVersion.Add(1)}
	t.title = c("#5a2ca0", "#c3a6ff").Bold(true)
	t.dim = c("#8a8a8a", "#6c6c6c").Faint(true)
	t.bold = lipgloss.NewStyle().Bold(true)
	t.warn = c("#a35200", "#ffaf5f").Bold(true)
	t.errText = c("#b00020", "#ff6b6b").Bold(true)
	t.ok = c("#1b7a1b", "#87d787")
	t.tabActive = lipgloss.NewStyle().Bold(true).Reverse(true).Padding(0, 1)
	t.tabIdle = lipgloss.NewStyle().Padding(0, 1)
	t.sev[rules.SeverityNone] = lipgloss.NewStyle()
	t.sev[rules.SeverityInfo] = c("#0b6e99", "#87d7ff")
	t.sev[rules.SeverityLow] = c("#1b7a1b", "#87d787")
	t.sev[rules.SeverityMedium] = c("#8a6d00", "#ffd75f")
	t.sev[rules.SeverityHigh] = c("#c24e00", "#ff875f").Bold(true)
	t.sev[rules.SeverityCritical] = c("#b00020", "#ff5f87").Bold(true)
	t.table = table.Styles{
		Header:   lipgloss.NewStyle().Bold(true).Underline(true).PaddingRight(1),
		Cell:     lipgloss.NewStyle().PaddingRight(1),
		Selected: lipgloss.NewStyle().Reverse(true),
	}
	t.help = help.DefaultStyles(isDark)
	t.confirm = c("#5a2ca0", "#d7afff").Bold(true)
	t.paused = lipgloss.NewStyle().Bold(true).Reverse(true).Padding(0, 1)
	return t
}

// sevStyle returns the style of severity s, tolerating unknown values.
func (t theme) sevStyle(s rules.Severity) lipgloss.Style {
	if int(s) < len(t.sev) {
		return t.sev[s]
	}
	return t.sev[rules.SeverityCritical]
}

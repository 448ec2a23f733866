package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/suggest"
)

// This file is the one-key skip: which skip a key offers for the selected
// incident or event (the narrowest that silences it, from package
// suggest), the confirmation that says in words what it covers, and the
// explicit edit that widens it.

// skipOffer is a skip on its way to the confirmation: why it is the one
// offered, and what the warnings need to know about it.
type skipOffer struct {
	skip rules.Skip
	why  string
	inc  *rules.Incident // the incident it is for, when there is one
	// exact says the path names one file (the incident's own binary),
	// not a directory; an edited path is not known to be one file.
	exact bool
	to    []target
	// orig is the skip as first offered, before an edit: editing back to
	// its path restores its pin.
	orig rules.Skip
}

// ruleType returns the type of the rule named name, "" when unknown.
func (m *Model) ruleType(name string) string {
	if r := m.ruleByName[name]; r != nil {
		return r.Type
	}
	return ""
}

// offerSkip handles s, S, p and P on the selected incident or event.
func (m *Model) offerSkip(msg tea.KeyPressMsg, ev *event.Event, rule string, in *rules.Incident, host int) tea.Cmd {
	k := &m.keys
	all := key.Matches(msg, k.SkipCmdAll, k.SkipPathAll)
	byPath := key.Matches(msg, k.SkipPath, k.SkipPathAll)
	if in == nil {
		// A stream event: judge it as the incident it raised, if any.
		in = &rules.Incident{Rule: rule, Type: m.ruleType(rule), Process: *ev}
	}
	escalation := in.Type == rules.TypeRootEscalation
	switch {
	case all && escalation:
		m.setMsg("a skip for every rule does not silence root escalations: p skips this binary for rule %s", event.DisplayString(in.Rule))
		return nil
	case !all && rule == "":
		m.setMsg("this event raised no incident, so it has no rule: S or P skip it for every rule")
		return nil
	}
	o := skipOffer{inc: in, to: m.targets(host)}
	switch {
	case byPath || escalation:
		// The exact binary, pinned in writable places; for an escalation
		// s does the same: a command name is the process's choice.
		sg := suggest.ForIncident(in)
		o.skip, o.why, o.exact = sg.Skip, sg.Why, sg.Skip.Kind == rules.SkipPath
		if escalation && !byPath {
			o.why = "a root escalation is skipped by its binary, never by a command name: " + o.why
		}
	default:
		o.skip = rules.Skip{Kind: rules.SkipCommand, Value: commandName(ev), Rule: in.Rule}
		o.why = "every program whose name is " + event.DisplayString(commandName(ev))
	}
	if all {
		o.skip.Rule = ""
		o.why = strings.Replace(o.why, "for rule "+in.Rule, "for every rule", 1)
	}
	o.skip.Note = "added in the procwatch TUI"
	o.orig = o.skip
	return previewSkip(m.ctx, o)
}

// editOffer opens the path input on an offered path skip: widening it is
// the operator's explicit edit.
func (m *Model) editOffer(o skipOffer) tea.Cmd {
	m.pathOffer = o
	return m.openInput(inputPath, o.skip.Value)
}

// pathEdited makes the offer for an edited path: the pin is kept only for
// the file it was made for, and anything else may cover a directory.
func (m *Model) pathEdited(value string) tea.Cmd {
	o := m.pathOffer
	o.skip.Value = value
	o.skip.Pin = ""
	o.exact = false
	if value == o.orig.Value {
		o.skip, o.exact = o.orig, true
	} else {
		o.why = "edited: " + event.DisplayString(value) + " and everything below it"
	}
	return previewSkip(m.ctx, o)
}

// confirmSkip turns a preview into the confirmation dialog.
func (m *Model) confirmSkip(msg skipPreviewMsg) {
	ok, bad := split(msg.results)
	if len(ok) == 0 {
		m.setErr(m.onHosts("check skip", bad), bad[0].err)
		return
	}
	o := msg.offer
	o.to = o.to[:0:0]
	for _, r := range ok {
		o.to = append(o.to, m.target(r.host))
	}
	n := total(ok)
	c := &confirmation{
		prompt: fmt.Sprintf("Skip %s%s? It masks %d open incident(s) now and stops new ones.%s", describeSkip(o.skip), m.onWhat(ok), n, m.failures(bad)),
		yes:    addSkip(m.ctx, o.to, o.skip),
	}
	if fs := fleetSkipper(o.to); fs != nil {
		c.prompt = fmt.Sprintf("Skip %s on this host%s, or on the whole fleet? It masks %d open incident(s) here now and stops new ones.%s", describeSkip(o.skip), m.onWhat(ok), n, m.failures(bad))
		c.fleet = addFleetSkip(m.ctx, fs, o.skip)
	}
	if o.why != "" {
		c.lines = append(c.lines, "Covers "+o.why+".")
	}
	check := suggest.Check{Skip: o.skip, Masked: n, ExactFile: o.exact, Incident: o.inc, Rule: m.ruleByName[o.skip.Rule]}
	for _, w := range suggest.Warnings(check) {
		c.warnings = append(c.warnings, w.Text)
	}
	if o.skip.Kind == rules.SkipPath {
		offer := o
		c.edit = &offer
	}
	m.confirm = c
}

// describeSkip says in words what a skip covers; its value is escaped.
func describeSkip(s rules.Skip) string {
	scope := "for every rule"
	if s.Rule != "" {
		scope = "for rule " + event.DisplayString(s.Rule)
	}
	pin := ""
	if s.Pin != "" {
		p := event.DisplayString(s.Pin)
		pin = " pinned to SHA-256 " + p[:min(len(p), 12)] + "…"
	}
	return fmt.Sprintf("%s \"%s\"%s %s", event.DisplayString(s.Kind), event.DisplayString(s.Value), pin, scope)
}

// loadNoise suggests skips for the focused host's open incidents seen in
// the Noise screen's window.
func (m *Model) loadNoise() tea.Cmd {
	since := m.opts.Now().Add(-m.noiseWin)
	var incs []*rules.Incident
	for k, r := range m.inc.byID {
		if k.host != m.focus {
			continue
		}
		if in := r.item; in.Status == rules.StatusOpen && !in.LastSeen.Before(since) {
			incs = append(incs, in)
		}
	}
	// Newest first, as the incident list: ties in count keep that order.
	slices.SortFunc(incs, func(a, b *rules.Incident) int { return cmp.Compare(b.ID, a.ID) })
	return suggestNoise(m.focus, incs, m.noiseWin)
}

// handleNoiseKey handles the Noise screen: each row is a suggested skip,
// applied with s or enter after the same confirmation as anywhere else.
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
		return m.loadNoise()
	case key.Matches(msg, k.Refresh):
		return m.loadNoise()
	}
	r := m.noise.Selected()
	if r == nil {
		return nil
	}
	sg := r.item
	o := skipOffer{skip: sg.Skip, orig: sg.Skip, why: sg.Why, exact: sg.Skip.Kind == rules.SkipPath, to: m.targets(m.focus)}
	o.skip.Note = "added in the procwatch TUI (Noise screen)"
	o.orig = o.skip
	all := key.Matches(msg, k.SkipCmdAll, k.SkipPathAll)
	if all {
		if m.ruleType(sg.Skip.Rule) == rules.TypeRootEscalation {
			m.setMsg("a skip for every rule does not silence root escalations: s skips it for rule %s", event.DisplayString(sg.Skip.Rule))
			return nil
		}
		o.skip.Rule, o.orig.Rule = "", ""
		o.why = strings.Replace(o.why, "for rule "+sg.Skip.Rule, "for every rule", 1)
	}
	switch {
	case key.Matches(msg, k.Open, k.SkipCmd, k.SkipCmdAll):
		return previewSkip(m.ctx, o)
	case key.Matches(msg, k.SkipPath, k.SkipPathAll):
		if o.skip.Kind != rules.SkipPath {
			m.setMsg("this suggestion is not a path: s applies it")
			return nil
		}
		return m.editOffer(o)
	}
	return nil
}

// skipAdded says what a stored skip masked and keeps it for undo.
func (m *Model) skipAdded(msg skipAddedMsg) tea.Cmd {
	ok, bad := split(msg.results)
	if len(ok) == 0 {
		m.setErr(m.onHosts("add skip", bad), bad[0].err)
		return nil
	}
	m.undo = append(m.undo, ok)
	m.setMsg("Skipped %s%s: masked %d incident(s) · u undoes%s", describeSkip(ok[0].skip), m.onWhat(ok), total(ok), m.failures(bad))
	return m.reloadAfterSkip(ok)
}

// skipRemoved says what a removed (or undone) skip unmasked.
func (m *Model) skipRemoved(msg skipRemovedMsg) tea.Cmd {
	ok, bad := split(msg.results)
	if len(ok) == 0 {
		m.setErr(m.onHosts("remove skip", bad), bad[0].err)
		return nil
	}
	verb := "Removed"
	if msg.undo {
		verb = "Undid"
	}
	m.setMsg("%s skip %s%s: unmasked %d incident(s)%s", verb, describeSkip(ok[0].skip), m.onWhat(ok), total(ok), m.failures(bad))
	return m.reloadAfterSkip(ok)
}

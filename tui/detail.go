package tui

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/viewport"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// detailPane shows everything an incident or event holds in a scrollable
// viewport. Its text is built from escaped strings when it opens and
// again when what it shows changes; it is wrapped by words to the pane's
// width, continuation lines aligned under the value they continue.
type detailPane struct {
	open  bool
	title string
	raw   string // the text before wrapping
	width int
	vp    viewport.Model
	// inc is the incident shown (isInc), so that a change to it (a new
	// status, a repeat, its fate) redraws the pane at once.
	inc   incKey
	isInc bool
}

func newDetailPane() detailPane {
	return detailPane{vp: viewport.New()}
}

func (d *detailPane) SetSize(w, h int) {
	d.vp.SetWidth(w)
	d.vp.SetHeight(max(h-1, 1))
	if w != d.width {
		d.width = w
		d.setContent(true)
	}
}

// Show opens the pane on body, scrolled to the top.
func (d *detailPane) Show(title, body string) {
	d.open, d.title, d.raw, d.isInc = true, title, body, false
	d.setContent(false)
	d.vp.GotoTop()
}

// showIncident is Show for an incident, remembered by key.
func (d *detailPane) showIncident(k incKey, title, body string) {
	d.Show(title, body)
	d.inc, d.isInc = k, true
}

// update replaces the text of the open pane, keeping the scroll position.
func (d *detailPane) update(title, body string) {
	d.title, d.raw = title, body
	d.setContent(true)
}

func (d *detailPane) setContent(keepOffset bool) {
	off := d.vp.YOffset()
	d.vp.SetContent(wrapDetail(d.raw, max(d.width, 20)))
	if keepOffset {
		d.vp.SetYOffset(off)
	}
}

func (d *detailPane) Close() { d.open, d.isInc = false, false }

func (d *detailPane) View(th theme) string {
	head := th.title.Render(d.title)
	if !d.vp.AtTop() || !d.vp.AtBottom() {
		head += th.dim.Render(fmt.Sprintf("  %3.0f%% (↓ scrolls)", d.vp.ScrollPercent()*100))
	}
	return lipgloss.JoinVertical(lipgloss.Left, head, d.vp.View())
}

// detailLabel is the width of the label column; values start one cell
// after it.
const detailLabel = 11

// detailWriter collects "label  value" lines with aligned labels.
type detailWriter struct {
	b strings.Builder
}

func (w *detailWriter) line(label, value string) {
	fmt.Fprintf(&w.b, "%-*s %s\n", detailLabel, label, value)
}

func (w *detailWriter) text(s string) { w.b.WriteString(s) }

// wrapDetail wraps each line of a detail text by words to width. A
// continuation is indented to where the line's text begins: the value
// column for "label value" lines, the node for ancestry lines.
func wrapDetail(s string, width int) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if ansi.StringWidth(line) <= width {
			out = append(out, line)
			continue
		}
		off := continuationIndent(line) // in bytes
		head, rest := line[:off], line[off:]
		indent := ansi.StringWidth(head)
		if indent > width/2 {
			head, rest, indent = "", line, 4
		}
		for i, l := range wrapWords(rest, width-indent) {
			if i == 0 {
				out = append(out, head+l)
				continue
			}
			out = append(out, strings.Repeat(" ", indent)+l)
		}
	}
	return strings.Join(out, "\n")
}

// continuationIndent finds, as a byte offset, where a detail line's text
// begins: after the label column, after a tree branch, or after leading
// spaces.
func continuationIndent(line string) int {
	if i := strings.Index(line, "└─ "); i >= 0 {
		return i + len("└─ ")
	}
	if len(line) > detailLabel+1 && line[detailLabel] == ' ' && line[detailLabel+1] != ' ' && !strings.Contains(strings.TrimRight(line[:detailLabel], " "), "  ") {
		return detailLabel + 1
	}
	return len(line) - len(strings.TrimLeft(line, " "))
}

// incidentDetail describes an incident: the rule and why it matched, then
// the process.
func incidentDetail(in *rules.Incident, rule *rules.Rule, users *userCache, loc *time.Location) string {
	var w detailWriter
	w.line("Incident", in.ID.String()+"  "+strings.ToUpper(in.Severity.String())+"  "+statusWord(in.Status))
	w.line("Rule", event.DisplayString(in.Rule)+" ("+event.DisplayString(in.Type)+"), outcome "+event.DisplayString(string(in.Outcome)))
	if in.Summary != "" {
		w.line("Why", in.Summary.Display())
	}
	// The command, where it ran and from which terminal come first, so
	// they are on screen without scrolling even at 80×24.
	w.line("Command", commandLine(&in.Process))
	w.line("Where", "cwd "+cmp.Or(in.Process.Cwd.Display(), "(not recorded)")+"  tty "+cmp.Or(in.Process.TTY.Display(), "none"))
	if rule != nil {
		if rule.Description != "" {
			w.line("Rule says", event.DisplayString(rule.Description))
		}
		w.line("Matched", selectorText(rule.Match))
		w.line("Severity", fmt.Sprintf("%s on success, %s on failure", rule.Severity.Success, rule.Severity.Failure))
	}
	w.line("Seen", fmt.Sprintf("%s times, first %s, last %s", groupDigits(in.Count), stamp(in.FirstSeen, loc), stamp(in.LastSeen, loc)))
	writeFlood(&w, in)
	if f := in.Fate; f != nil {
		end := event.Event{ExitCode: f.ExitCode, Signal: f.Signal, CoreDumped: f.CoreDumped}
		w.line("Ended", exitWord(&end)+" at "+stamp(f.Time, loc)+", ran "+formatDuration(f.DurationNS))
	} else if in.Type == rules.TypeRootEscalation {
		w.line("Ended", "not yet seen (the process may still run)")
	}
	if in.Host != "" {
		w.line("Host", event.DisplayString(in.Host))
	}
	writeHistory(&w, in.History, loc)
	w.text("\n")
	writeAncestry(&w, &in.Process)
	writeEvent(&w, &in.Process, users, loc)
	return w.b.String()
}

// writeHistory lists who changed the incident's triage status and when,
// oldest first, with who as the kernel reported them.
func writeHistory(w *detailWriter, history []rules.Change, loc *time.Location) {
	if len(history) == 0 {
		w.line("History", "no triage yet (open since raised)")
		return
	}
	for i, c := range history {
		label := ""
		if i == 0 {
			label = "History"
		}
		w.line(label, fmt.Sprintf("%s  %s → %s by %s", stamp(c.Time, loc), statusWord(c.From), statusWord(c.To), actorText(c.By)))
	}
}

// actorText names who made a change, escaped: the user, uid and pid the
// kernel reported, the SSH login and address, and how they came in.
func actorText(a rules.Actor) string {
	s := event.DisplayString(a.String())
	if a.Via != "" {
		s += " via " + event.DisplayString(a.Via)
	}
	return s
}

// writeFlood describes a flood incident: how many binaries, where, and the
// sample of their names.
func writeFlood(w *detailWriter, in *rules.Incident) {
	if in.Distinct == 0 {
		return
	}
	w.line("Flood", fmt.Sprintf("%s different binaries, scope %s", groupDigits(in.Distinct), event.DisplayString(in.Scope)))
	for i, name := range in.Sample {
		w.line("", fmt.Sprintf("[%d] %s", i, name.Display()))
	}
}

// skipKindText names the kind of skip of a rules.SkipHit.
func skipKindText(by string) string {
	switch by {
	case rules.SkipByRule:
		return "a skip written on the rule"
	case rules.SkipByAdded:
		return "an added skip (skip list)"
	case rules.SkipByGlobal:
		return "a global skip of the rules file"
	}
	return "a skip"
}

// eventDetail describes a stream event and what the pipeline decided.
func eventDetail(it *streamItem, users *userCache, loc *time.Location) string {
	var w detailWriter
	switch {
	case it.skipped && it.skip.Rule != "":
		w.line("Verdict", fmt.Sprintf("matched rule %s but %s suppressed it", event.DisplayString(it.skip.Rule), skipKindText(it.skip.By)))
	case it.skipped:
		w.line("Verdict", "matched a rule but a skip suppressed it")
	case it.sev != rules.SeverityNone:
		w.line("Verdict", fmt.Sprintf("raised %s incident %s (rule %s)", it.sev, it.incident, event.DisplayString(it.rule)))
	default:
		w.line("Verdict", "no incident")
	}
	w.text("\n")
	writeAncestry(&w, &it.ev)
	writeEvent(&w, &it.ev, users, loc)
	return w.b.String()
}

func selectorText(s rules.Selectors) string {
	var parts []string
	add := func(name string, vals []string) {
		if len(vals) == 0 {
			return
		}
		esc := make([]string, len(vals))
		for i, v := range vals {
			esc[i] = event.DisplayString(v)
		}
		parts = append(parts, name+"="+strings.Join(esc, ","))
	}
	add("paths", s.Paths)
	add("filesystems", s.Filesystems)
	add("commands", s.Commands)
	add("args", s.Args)
	add("owners", s.Owners)
	add("users", s.Users)
	add("parents", s.ParentCommands)
	if s.Container != nil {
		parts = append(parts, "container="+strconv.FormatBool(*s.Container))
	}
	add("images", s.Images)
	if len(s.ExitCodes) > 0 {
		codes := make([]string, len(s.ExitCodes))
		for i, c := range s.ExitCodes {
			codes[i] = strconv.Itoa(c)
		}
		parts = append(parts, "exit_codes="+strings.Join(codes, ","))
	}
	add("signals", s.Signals)
	if len(parts) == 0 {
		return "every process"
	}
	return strings.Join(parts, " ")
}

func writeEvent(w *detailWriter, ev *event.Event, users *userCache, loc *time.Location) {
	w.line("Event", fmt.Sprintf("%s at %s, %s", event.DisplayString(string(ev.Type)), stamp(ev.Time, loc), outcomeWord(ev)))
	w.line("Process", fmt.Sprintf("pid %d  tid %d  ppid %d  comm %s", ev.PID, ev.TID, ev.PPID, ev.Comm.Display()))
	w.line("Users", fmt.Sprintf("uid %s  euid %s  auid %s", users.withNumber(ev.UID), users.withNumber(ev.EUID), users.withNumber(ev.AUID)))
	w.line("Groups", fmt.Sprintf("gid %d  egid %d", ev.GID, ev.EGID))
	if ev.Type == event.TypeEscalation {
		w.line("Escalation", fmt.Sprintf("%s: uid %s, euid %s", event.DisplayString(ev.Method), idChange(ev.OldUID, ev.NewUID), idChange(ev.OldEUID, ev.NewEUID)))
	}
	w.line("Exe", ev.Exe.Display())
	if ev.ExeSHA256 != "" {
		// Computed by the agent in the background: an incident raised at
		// a binary's first sighting gets it shortly after (the pane
		// follows the update).
		w.line("SHA-256", event.DisplayString(ev.ExeSHA256))
	}
	if ev.Script != "" {
		w.line("Script", ev.Script.Display())
	}
	if ev.ExeOrigin != "" && ev.ExeOrigin != ev.Exe {
		w.line("Origin", ev.ExeOrigin.Display()+" on "+event.DisplayString(ev.ExeFS)+" (the file's own path: not what the process saw)")
	}
	if ev.Filename != "" && ev.Filename != ev.Exe {
		w.line("Filename", ev.Filename.Display())
	}
	for i, a := range ev.Args {
		label := ""
		if i == 0 {
			label = "Args"
		}
		w.line(label, fmt.Sprintf("[%d] %s", i, a.Display()))
	}
	if len(ev.Args) == 0 {
		w.line("Args", "(none recorded)")
	}
	if ev.ArgsTruncated {
		w.line("", "(argument list truncated by the sensor)")
	}
	opt := func(label string, t event.Text) {
		if t != "" {
			w.line(label, t.Display())
		}
	}
	// Every incident shows where it ran and from which terminal, even
	// when the answer is "not known" or "none".
	w.line("Cwd", cmp.Or(ev.Cwd.Display(), "(not recorded)"))
	w.line("TTY", cmp.Or(ev.TTY.Display(), "none (no controlling terminal)"))
	if ev.ContainerID != "" {
		w.line("Container", event.DisplayString(ev.ContainerID))
		// Name and image are chosen by whoever started the container.
		opt("  name", ev.ContainerName)
		opt("  image", ev.ContainerImage)
		opt("  runtime", event.Text(ev.ContainerRuntime))
	}
	opt("Cgroup", ev.Cgroup)
	if ev.Errno != "" {
		w.line("Error", event.DisplayString(ev.Errno))
	}
	if ev.Type == event.TypeExit {
		w.line("Exit", exitWord(ev)+", ran "+formatDuration(ev.DurationNS))
	}
}

func writeAncestry(w *detailWriter, ev *event.Event) {
	w.text("Ancestry\n")
	w.text(ancestryTree(ev))
	w.text("\n")
}

// ancestryTree draws the parent chain from the oldest ancestor down to the
// process itself, e.g. systemd → sshd → bash → sudo, one level a line.
func ancestryTree(ev *event.Event) string {
	type node struct {
		pid uint32
		exe string
	}
	var chain []node
	for i := len(ev.Ancestors) - 1; i >= 0; i-- {
		a := ev.Ancestors[i]
		chain = append(chain, node{a.PID, a.Exe.Display()})
	}
	if len(chain) == 0 && (ev.PPID != 0 || ev.ParentExe != "") {
		chain = append(chain, node{ev.PPID, ev.ParentExe.Display()})
	}
	self := ev.Exe.Display()
	if self == "" {
		self = ev.Comm.Display()
	}
	chain = append(chain, node{ev.PID, self})
	var b strings.Builder
	for i, n := range chain {
		if i > 0 {
			b.WriteString(strings.Repeat("   ", i-1))
			b.WriteString("└─ ")
		}
		exe := n.exe
		if exe == "" {
			exe = "?"
		}
		fmt.Fprintf(&b, "%s (%d)", exe, n.pid)
		if i == len(chain)-1 {
			b.WriteString("  ◀ this process")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

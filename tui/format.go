package tui

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// This file turns incidents and events into rows and detail text. Every
// string that came from a process is escaped here, exactly once, with
// event.Text.Display or event.DisplayString; nothing downstream sees raw
// process bytes.

const unsetID = 4294967295

// userCache maps uids to user names. Lookups read /etc/passwd (or NSS), so
// they run in commands, never in Update; Update only reads the cache.
type userCache struct {
	mu     sync.RWMutex
	names  map[uint32]string
	lookup func(uid uint32) (string, bool)
}

func newUserCache(lookup func(uint32) (string, bool)) *userCache {
	if lookup == nil {
		// The names the rules matched, from the same cache.
		lookup = func(uid uint32) (string, bool) {
			name := rules.UserName(uid)
			return name, name != ""
		}
	}
	return &userCache{names: map[uint32]string{}, lookup: lookup}
}

// resolve looks up the uids not yet cached. It does I/O.
func (c *userCache) resolve(uids []uint32) {
	for _, uid := range uids {
		if uid == unsetID {
			continue
		}
		c.mu.RLock()
		_, ok := c.names[uid]
		c.mu.RUnlock()
		if ok {
			continue
		}
		name, _ := c.lookup(uid)
		c.mu.Lock()
		c.names[uid] = name // "" records a miss so it is not retried
		c.mu.Unlock()
	}
}

// name returns the escaped user name of uid, or the number when unknown.
func (c *userCache) name(uid uint32) string {
	if uid == unsetID {
		return "-"
	}
	c.mu.RLock()
	n := c.names[uid]
	c.mu.RUnlock()
	if n == "" {
		return strconv.FormatUint(uint64(uid), 10)
	}
	return event.DisplayString(n)
}

// withNumber returns "name(uid)" or just the number when no name is known.
func (c *userCache) withNumber(uid uint32) string {
	if uid == unsetID {
		return "unset"
	}
	n := c.name(uid)
	num := strconv.FormatUint(uint64(uid), 10)
	if n == num {
		return num
	}
	return n + "(" + num + ")"
}

// eventUIDs lists the uids of ev worth resolving.
func eventUIDs(ev *event.Event, dst []uint32) []uint32 {
	dst = append(dst, ev.UID, ev.EUID, ev.AUID)
	for _, p := range []*uint32{ev.OldUID, ev.OldEUID, ev.NewUID, ev.NewEUID} {
		if p != nil {
			dst = append(dst, *p)
		}
	}
	return dst
}

// commandLine renders the exe followed by argv[1:], escaped.
func commandLine(ev *event.Event) string {
	var b strings.Builder
	exe := ev.Exe
	if exe == "" {
		exe = ev.Filename
	}
	if exe == "" {
		exe = ev.Comm
	}
	b.WriteString(exe.Display())
	for i, a := range ev.Args {
		if i == 0 {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(a.Display())
	}
	if ev.ArgsTruncated {
		b.WriteString(" …")
	}
	return b.String()
}

// argsText is argv[1:] escaped and joined, "" without arguments.
func argsText(ev *event.Event) string {
	if len(ev.Args) < 2 {
		return ""
	}
	parts := make([]string, 0, len(ev.Args)-1)
	for _, a := range ev.Args[1:] {
		parts = append(parts, a.Display())
	}
	return strings.Join(parts, " ")
}

// commandName is the raw command name a command skip matches: the base name
// of the exe, or comm when the exe is unknown.
func commandName(ev *event.Event) string {
	if ev.Exe != "" {
		return path.Base(string(ev.Exe))
	}
	return string(ev.Comm)
}

func clock(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format("15:04:05")
}

func stamp(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format("2006-01-02 15:04:05.000 MST")
}

func statusWord(s rules.Status) string {
	switch s {
	case rules.StatusAcknowledged:
		return "ack"
	case rules.StatusMasked:
		return "mask"
	case rules.StatusOpen:
		return "open"
	}
	return event.DisplayString(string(s))
}

func outcomeWord(ev *event.Event) string {
	if ev.Outcome == event.Failure {
		if ev.Errno != "" {
			return event.DisplayString(ev.Errno)
		}
		return "failed"
	}
	return "ok"
}

func exitWord(ev *event.Event) string {
	var s string
	switch {
	case ev.Signal != "":
		s = event.DisplayString(ev.Signal)
	case ev.ExitCode != nil:
		s = "exit " + strconv.Itoa(*ev.ExitCode)
	default:
		s = "-"
	}
	if ev.CoreDumped {
		s += " core"
	}
	return s
}

func idChange(old, new *uint32) string {
	f := func(p *uint32) string {
		if p == nil {
			return "?"
		}
		return strconv.FormatUint(uint64(*p), 10)
	}
	return f(old) + "→" + f(new)
}

func formatDuration(ns int64) string {
	if ns <= 0 {
		return "-"
	}
	d := time.Duration(ns)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// groupDigits writes n with thousands separators: 1204 -> "1,204".
func groupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

func hay(cells ...string) string {
	return strings.ToLower(strings.Join(cells, "\x00"))
}

// lazyIncidentRow is incidentRow with what sorting needs only; the
// list's format (formatIncidentRow) makes the rest when it is drawn or
// filtered.
func lazyIncidentRow(in *rules.Incident, hostIdx int, name string) *row[*rules.Incident] {
	key := uint64(in.ID)
	if name != "" {
		key = keyOf(name, in.ID.String())
	}
	return &row[*rules.Incident]{key: key, sev: in.Severity, dim: in.Status == rules.StatusMasked, item: in, host: hostIdx, lazy: true}
}

// formatIncidentRow fills a lazy incident row as incidentRow does.
func formatIncidentRow(r *row[*rules.Incident], name string, users *userCache, loc *time.Location) {
	full := incidentRow(r.item, r.host, name, users, loc)
	r.cells, r.hay, r.tail = full.cells, full.hay, full.tail
}

// incidentRow formats an incident for the incident list. hostIdx is the
// index of the host it came from; name is that host's name when the UI
// shows several, "" otherwise.
func incidentRow(in *rules.Incident, hostIdx int, name string, users *userCache, loc *time.Location) *row[*rules.Incident] {
	summary := in.Summary.Display()
	if summary == "" {
		summary = commandLine(&in.Process)
	}
	cells := []string{
		clock(in.Time, loc),
		in.Severity.String(),
		statusWord(in.Status),
		event.DisplayString(in.Rule),
		users.name(in.Process.UID),
		groupDigits(in.Count),
		summary,
	}
	key := uint64(in.ID)
	if name != "" {
		cells = slices.Insert(cells, 1, event.DisplayString(name))
		// Two agents on one machine raise the same id for one event.
		key = keyOf(name, in.ID.String())
	}
	return &row[*rules.Incident]{
		key:   key,
		cells: cells,
		tail:  argsText(&in.Process),
		sev:   in.Severity,
		dim:   in.Status == rules.StatusMasked,
		hay:   hay(append(cells, commandLine(&in.Process), in.Type)...),
		item:  in,
		host:  hostIdx,
	}
}

// incidentColumns are the incident list's columns and the index of the
// severity column. With several hosts a HOST column follows the time.
func incidentColumns(several bool) ([]column, int) {
	cols := []column{
		{title: "TIME", min: 8, max: 8},
		{title: "SEV", min: 8, max: 8},
		{title: "STATE", min: 5, max: 5, drop: 2},
		{title: "RULE", min: 12, max: 24, drop: 1},
		{title: "USER", min: 8, max: 12, drop: 3},
		{title: "COUNT", min: 5, max: 7, drop: 4},
		// The summary says what happened: it keeps 32 cells before
		// COUNT and then USER give way.
		{title: "SUMMARY", min: 32, flex: true},
	}
	if several {
		return slices.Insert(cols, 1, hostColumn), 2
	}
	return cols, 1
}

// hostColumn names the host a row came from, when the UI shows several.
var hostColumn = column{title: "HOST", min: 8, max: 16}

// streamItem is one event in a stream with what the pipeline decided.
type streamItem struct {
	host     int // index of the host it came from
	gen      int // the host's subscription it came from
	ev       event.Event
	skipped  bool
	skip     rules.SkipHit // which rule and kind of skip, when skipped
	incident rules.ID
	sev      rules.Severity
	rule     string
}

func verdictWord(it *streamItem) string {
	switch {
	case it.skipped:
		return "skip"
	case it.sev != rules.SeverityNone:
		return it.sev.String()
	}
	return ""
}

// streamColumns are the columns of each stream screen; the verdict column
// (severity or "skip") is returned as the second value. With several hosts
// a HOST column follows the time.
func streamColumns(t event.EventType, several bool) ([]column, int) {
	cols, verdict := streamColumnsOne(t)
	if several {
		return slices.Insert(cols, 1, hostColumn), verdict + 1
	}
	return cols, verdict
}

func streamColumnsOne(t event.EventType) ([]column, int) {
	switch t {
	case event.TypeEscalation:
		return []column{
			{title: "TIME", min: 8, max: 8},
			{title: "PID", min: 7, max: 7, drop: 3},
			{title: "USER", min: 8, max: 12},
			{title: "METHOD", min: 9, max: 11, drop: 2},
			{title: "RESULT", min: 6, max: 8},
			{title: "UID", min: 11, max: 11, drop: 4},
			{title: "EUID", min: 11, max: 11, drop: 5},
			{title: "VERDICT", min: 8, max: 8, drop: 1},
			{title: "EXE", flex: true},
		}, 7
	case event.TypeExit:
		return []column{
			{title: "TIME", min: 8, max: 8},
			{title: "PID", min: 7, max: 7, drop: 3},
			{title: "USER", min: 8, max: 12, drop: 2},
			{title: "STATUS", min: 11, max: 14},
			{title: "RAN", min: 7, max: 7, drop: 4},
			{title: "VERDICT", min: 8, max: 8, drop: 1},
			{title: "COMMAND", flex: true},
		}, 5
	}
	return []column{
		{title: "TIME", min: 8, max: 8},
		{title: "PID", min: 7, max: 7, drop: 3},
		{title: "PPID", min: 7, max: 7, drop: 4},
		{title: "USER", min: 8, max: 12, drop: 2},
		{title: "RESULT", min: 6, max: 8},
		{title: "VERDICT", min: 8, max: 8, drop: 1},
		{title: "COMMAND", flex: true},
	}, 5
}

// streamRow formats an event for its stream screen; host is as for
// incidentRow.
func streamRow(seq uint64, it *streamItem, host string, users *userCache, loc *time.Location) *row[*streamItem] {
	ev := &it.ev
	pid := strconv.FormatUint(uint64(ev.PID), 10)
	var cells []string
	switch ev.Type {
	case event.TypeEscalation:
		cells = []string{clock(ev.Time, loc), pid, users.name(ev.UID), event.DisplayString(ev.Method),
			outcomeWord(ev), idChange(ev.OldUID, ev.NewUID), idChange(ev.OldEUID, ev.NewEUID),
			verdictWord(it), commandLine(ev)}
	case event.TypeExit:
		cells = []string{clock(ev.Time, loc), pid, users.name(ev.UID), exitWord(ev),
			formatDuration(ev.DurationNS), verdictWord(it), commandLine(ev)}
	default:
		cells = []string{clock(ev.Time, loc), pid, strconv.FormatUint(uint64(ev.PPID), 10),
			users.name(ev.UID), outcomeWord(ev), verdictWord(it), commandLine(ev)}
	}
	if host != "" {
		cells = slices.Insert(cells, 1, event.DisplayString(host))
	}
	return &row[*streamItem]{
		key:   seq,
		cells: cells,
		sev:   it.sev,
		dim:   it.skipped,
		hay:   hay(append(cells, ev.Cwd.Display(), ev.TTY.Display(), ev.ContainerID, ev.ContainerName.Display(), ev.ContainerImage.Display())...),
		item:  it,
		host:  it.host,
	}
}

// wrapWords breaks plain text into lines of at most width cells, between
// words; a word longer than a line is split. Runs of spaces inside a line
// are kept, so aligned text stays aligned.
func wrapWords(s string, width int) []string {
	width = max(width, 1)
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line, lineW := "", 0
		for i, word := range strings.Split(para, " ") {
			ww := ansi.StringWidth(word)
			switch {
			case i == 0:
			case lineW+1+ww <= width:
				line, lineW = line+" ", lineW+1
			default:
				out = append(out, line)
				line, lineW = "", 0
			}
			for lineW == 0 && ww > width {
				head := ansi.Truncate(word, width, "")
				out = append(out, head)
				word = word[len(head):]
				ww = ansi.StringWidth(word)
			}
			line, lineW = line+word, lineW+ww
		}
		out = append(out, line)
	}
	return out
}

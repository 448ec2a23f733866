package rules

import (
	"path"
	"strconv"
	"strings"
	"unsafe"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/procwatch/procwatch/event"
)

// commLen is the longest comm the kernel keeps (TASK_COMM_LEN - 1).
const commLen = 15

// isGlob reports whether a path pattern uses glob syntax. Anything else is
// a plain path, matched by prefix on directory boundaries.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[{\\") }

func validGlob(s string) bool { return doublestar.ValidatePattern(s) }

// glob is a compiled glob. prefix is the literal text before the first
// glob character: a path without it cannot match, which rejects most paths
// with one string comparison instead of a full match.
type glob struct {
	pattern string
	prefix  string
}

func compileGlob(s string) glob {
	i := strings.IndexAny(s, "*?[{\\")
	if i < 0 {
		i = len(s)
	}
	return glob{pattern: s, prefix: s[:i]}
}

func (g *glob) match(path string) bool {
	if !strings.HasPrefix(path, g.prefix) {
		return false
	}
	ok, _ := doublestar.Match(g.pattern, path)
	return ok
}

func compileGlobs(list []string) []glob {
	if len(list) == 0 {
		return nil
	}
	out := make([]glob, len(list))
	for i, s := range list {
		out[i] = compileGlob(s)
	}
	return out
}

// imageMatches is the images selector. A process outside any container
// has no image and never matches. A process in a container whose image is
// not known yet (the runtime lookup is asynchronous, or failed) is judged
// in scope: not knowing must not let an event out of a rule.
func imageMatches(images []glob, ev *event.Event) bool {
	if ev.ContainerID == "" {
		return false
	}
	if ev.ContainerImage == "" {
		return true
	}
	for i := range images {
		if images[i].match(string(ev.ContainerImage)) {
			return true
		}
	}
	return false
}

// pathSet matches a path against plain paths (by prefix on directory
// boundaries: /usr/bin covers /usr/bin and /usr/bin/x, never /usr/bin2/x)
// and globs. Plain paths live in a map and the lookup walks the path's own
// ancestors, so the cost depends on the path's depth, not on how many
// entries the set holds.
type pathSet struct {
	prefixes map[string]struct{}
	root     bool // "/" was given: every absolute path matches
	globs    []glob
}

func newPathSet(patterns []string) *pathSet {
	if len(patterns) == 0 {
		return nil
	}
	s := &pathSet{}
	s.add(patterns)
	return s
}

func (s *pathSet) add(patterns []string) {
	for _, p := range patterns {
		if isGlob(p) {
			s.globs = append(s.globs, compileGlob(p))
			continue
		}
		p = strings.TrimRight(p, "/")
		if p == "" {
			s.root = true
			continue
		}
		if s.prefixes == nil {
			s.prefixes = make(map[string]struct{})
		}
		s.prefixes[p] = struct{}{}
	}
}

func (s *pathSet) empty() bool {
	return s == nil || (len(s.prefixes) == 0 && !s.root && len(s.globs) == 0)
}

// match reports whether path is covered. Only absolute paths can be: a
// truncated path (see facts.truncated) never matches, so a skip cannot
// suppress an executable whose real location is unknown.
func (s *pathSet) match(path string) bool {
	_, ok := s.matchRoot(path)
	return ok
}

// matchRoot is match that also returns the root of the entry that matched:
// a plain entry itself, or a glob's literal text before its first glob
// character, without a trailing slash ("/tmp/**" gives "/tmp"). The root
// comes from the rules, never from the path, so a process cannot choose
// it: the engine aggregates a flood by it.
func (s *pathSet) matchRoot(path string) (string, bool) {
	if s == nil || path == "" || path[0] != '/' {
		return "", false
	}
	if s.root {
		return "/", true
	}
	if len(s.prefixes) > 0 {
		for i := len(path); i > 0; i = strings.LastIndexByte(path[:i], '/') {
			if _, ok := s.prefixes[path[:i]]; ok {
				return path[:i], true
			}
		}
	}
	for i := range s.globs {
		if s.globs[i].match(path) {
			return s.globs[i].root(), true
		}
	}
	return "", false
}

func (g *glob) root() string {
	if r := strings.TrimRight(g.prefix, "/"); r != "" {
		return r
	}
	return "/"
}

// argSet matches argv elements against globs (or exact strings). A
// relative element is also tried as a path below the process's working
// directory, and an absolute one after cleaning, so neither "./prog" in
// /tmp nor "/usr/../tmp/prog" hides a location.
type argSet struct {
	globs []glob
}

func newArgSet(patterns []string) *argSet {
	if len(patterns) == 0 {
		return nil
	}
	s := &argSet{}
	for _, p := range patterns {
		s.globs = append(s.globs, compileGlob(p))
	}
	return s
}

// match reports whether any element of args matches. buf is scratch
// space for joining a relative element to cwd; it is returned, grown, so
// the caller can keep it and later calls do not allocate.
func (s *argSet) match(args []event.Text, cwd string, buf []byte) (bool, []byte) {
	for _, a := range args {
		arg := string(a)
		if s.matchOne(arg) {
			return true, buf
		}
		switch {
		case strings.HasPrefix(arg, "/"):
			if c := path.Clean(arg); c != arg && s.matchOne(c) {
				return true, buf
			}
		case strings.HasPrefix(cwd, "/") && arg != "" && arg[0] != '-':
			// An option ("--list") names no file below cwd; a program
			// really named "-x" has to be given as "./-x", which is joined.
			buf = append(append(append(buf[:0], cwd...), '/'), arg...)
			joined := path.Clean(unsafe.String(unsafe.SliceData(buf), len(buf)))
			if s.matchOne(joined) {
				return true, buf
			}
		}
	}
	return false, buf
}

func (s *argSet) matchOne(arg string) bool {
	for i := range s.globs {
		if s.globs[i].match(arg) {
			return true
		}
	}
	return false
}

// commandSet matches a process's command: the base name of its executable
// or its comm. The kernel cuts comm to 15 bytes, so a name longer than that
// also matches a comm equal to its first 15 bytes.
type commandSet struct {
	names map[string]struct{} // full names: exe base name or comm
	cut   map[string]struct{} // first 15 bytes of longer names: comm only

	// A rule's selector usually names a handful of commands; comparing a
	// few strings beats hashing the same name once per rule. small holds
	// the names when there are at most smallSet of them, smallCut the cuts.
	small, smallCut []string
}

const smallSet = 8

func newCommandSet(names []string) *commandSet {
	if len(names) == 0 {
		return nil
	}
	s := &commandSet{}
	s.add(names)
	return s
}

func (s *commandSet) add(names []string) {
	for _, n := range names {
		if s.names == nil {
			s.names = make(map[string]struct{})
		}
		s.names[n] = struct{}{}
		if len(n) > commLen {
			if s.cut == nil {
				s.cut = make(map[string]struct{})
			}
			s.cut[n[:commLen]] = struct{}{}
		}
	}
	s.small, s.smallCut = nil, nil
	if len(s.names) <= smallSet {
		for n := range s.names {
			s.small = append(s.small, n)
		}
		for n := range s.cut {
			s.smallCut = append(s.smallCut, n)
		}
	}
}

// match reports whether base (the executable's base name) or comm names a
// command in the set.
func (s *commandSet) match(base, comm string) bool {
	if s == nil {
		return false
	}
	if s.small != nil {
		for _, n := range s.small {
			if n == base || n == comm {
				return n != ""
			}
		}
		if len(comm) == commLen {
			for _, n := range s.smallCut {
				if n == comm {
					return true
				}
			}
		}
		return false
	}
	if _, ok := s.names[base]; ok && base != "" {
		return true
	}
	if comm == "" {
		return false
	}
	if _, ok := s.names[comm]; ok {
		return true
	}
	if len(comm) == commLen {
		_, ok := s.cut[comm]
		return ok
	}
	return false
}

// matchName reports whether base alone names a command in the set, for
// selectors on another process (the parent) whose comm the event lacks.
func (s *commandSet) matchName(base string) bool {
	if s == nil || base == "" {
		return false
	}
	if s.small != nil {
		for _, n := range s.small {
			if n == base {
				return true
			}
		}
		return false
	}
	_, ok := s.names[base]
	return ok
}

// userSet matches a user by uid or by name. Entries that are all digits are
// uids; others are names, compared with the uid's name from the user
// database.
type userSet struct {
	uids  map[uint32]struct{}
	names map[string]struct{}
}

func newUserSet(users []string) *userSet {
	if len(users) == 0 {
		return nil
	}
	s := &userSet{}
	s.add(users)
	return s
}

func (s *userSet) add(users []string) {
	for _, u := range users {
		if id, err := strconv.ParseUint(u, 10, 32); err == nil && id <= maxUID {
			if s.uids == nil {
				s.uids = make(map[uint32]struct{})
			}
			s.uids[uint32(id)] = struct{}{}
			continue
		}
		if s.names == nil {
			s.names = make(map[string]struct{})
		}
		s.names[u] = struct{}{}
	}
}

func (s *userSet) match(f *facts) bool {
	if s == nil {
		return false
	}
	if _, ok := s.uids[f.uid]; ok {
		return true
	}
	if len(s.names) == 0 {
		return false
	}
	name := f.userName()
	if name == "" {
		return false
	}
	_, ok := s.names[name]
	return ok
}

// matchOwner reports whether the owner of the event's binary is in the
// set. The owner comes from the file's inode, which only root can change;
// it is unknown (and nothing matches) when the sensor did not report it
// and when a script ran, whose owner the event does not carry.
func (s *userSet) matchOwner(f *facts) bool {
	ev := f.ev
	if s == nil || ev.ExeOwner == nil || f.script != "" {
		return false
	}
	uid := *ev.ExeOwner
	if _, ok := s.uids[uid]; ok {
		return true
	}
	if len(s.names) == 0 {
		return false
	}
	name := UserName(uid)
	if name == "" {
		return false
	}
	_, ok := s.names[name]
	return ok
}

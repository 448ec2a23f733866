package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Keys accepted at each level of rules.yaml. Anything else is an error, so
// a misspelt selector cannot silently widen a rule.
var (
	topKeys      = []string{"version", "skip", "rules"}
	ruleKeys     = []string{"name", "type", "description", "match", "severity", "skip", "aggregate"}
	matchKeys    = []string{"paths", "filesystems", "commands", "args", "owners", "users", "parent_commands", "container", "images", "exit_codes", "signals"}
	severityKeys = []string{"success", "failure"}
	skipKeys     = []string{"commands", "paths", "users", "owners"}
	ruleTypes    = []string{TypeBinExecution, TypeRootEscalation, TypeTerminationFailure}
)

// parseState collects problems while walking one file's syntax tree.
type parseState struct {
	file string
	errs ParseErrors
}

func (p *parseState) errorf(n ast.Node, hint, format string, args ...any) {
	line, col := position(n)
	p.errs = append(p.errs, &ParseError{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func position(n ast.Node) (int, int) {
	if n == nil {
		return 1, 1
	}
	// A mapping's own token is a ':' inside it; its first key is where a
	// reader sees it start.
	switch m := n.(type) {
	case *ast.MappingNode:
		if len(m.Values) > 0 && m.Values[0].Key != nil && !m.IsFlowStyle {
			return position(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if m.Key != nil {
			return position(m.Key)
		}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 1, 1
	}
	return tk.Position.Line, tk.Position.Column
}

// Parse reads a rules file. name is used in error positions (usually the
// path). Every problem in the file is reported, as ParseErrors, each with
// file:line:col and a hint; on any problem no RuleSet is returned.
func Parse(name string, data []byte) (*RuleSet, error) {
	p := &parseState{file: name}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		p.syntaxError(err)
		return nil, p.errs
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		if len(f.Docs) > 1 {
			p.errorf(f.Docs[1].Body, "keep every rule in one document", "rules file holds %d YAML documents, want one", len(f.Docs))
		} else {
			p.errorf(nil, "start the file with: version: 1", "rules file is empty")
		}
		return nil, p.errs
	}
	set := p.top(f.Docs[0].Body)
	if len(p.errs) > 0 {
		// Report in file order, as an editor would walk them.
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i], p.errs[j]
			return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
		})
		return nil, p.errs
	}
	set.Name = name
	if err := set.compile(); err != nil {
		// Validation should have caught everything compile rejects; report
		// it positionless rather than lose it.
		return nil, ParseErrors{{File: name, Line: 1, Col: 1, Msg: err.Error()}}
	}
	return set, nil
}

// syntaxError turns a YAML syntax error into a positioned ParseError.
func (p *parseState) syntaxError(err error) {
	var ye yaml.Error
	line, col, msg := 1, 1, err.Error()
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line, col = tk.Position.Line, tk.Position.Column
		}
	}
	hint := "check indentation and quoting near this position"
	if strings.Contains(msg, "already defined") {
		hint = "keep one of the duplicate keys"
	}
	p.errs = append(p.errs, &ParseError{File: p.file, Line: line, Col: col, Msg: "YAML syntax: " + msg, Hint: hint})
}

// field is one key: value pair of a mapping.
type field struct {
	key   string
	keyN  ast.Node
	value ast.Node
}

// unwrap strips anchors and tags, which carry no meaning in a rules file.
func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
}

// mapping checks that n is a mapping with keys from allowed, reporting
// unknown and duplicate keys, and returns its fields in order.
func (p *parseState) mapping(n ast.Node, what string, allowed []string) ([]field, bool) {
	n = unwrap(n)
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		values = v.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{v}
	case *ast.NullNode:
		return nil, true
	case *ast.AliasNode:
		p.errorf(n, "write the value out instead of using an alias", "%s: YAML aliases are not supported", what)
		return nil, false
	default:
		p.errorf(n, "", "%s must be a mapping of keys to values, got %s", what, kindOf(n))
		return nil, false
	}
	seen := map[string]ast.Node{}
	out := make([]field, 0, len(values))
	for _, mv := range values {
		if mv.Key == nil {
			continue
		}
		key, ok := scalarText(mv.Key)
		if !ok || mv.Key.IsMergeKey() {
			p.errorf(mv.Key, "keys are plain words such as \"name\"", "%s: unsupported key %s", what, kindOf(mv.Key))
			continue
		}
		if !slices.Contains(allowed, key) {
			p.errorf(mv.Key, didYouMean(key, allowed), "unknown key %q in %s", key, what)
			continue
		}
		if prev, dup := seen[key]; dup {
			line, _ := position(prev)
			p.errorf(mv.Key, fmt.Sprintf("the first %q is on line %d; keep one", key, line), "duplicate key %q in %s", key, what)
			continue
		}
		seen[key] = mv.Key
		out = append(out, field{key: key, keyN: mv.Key, value: mv.Value})
	}
	return out, true
}

// kindOf names a node's YAML kind for error messages.
func kindOf(n ast.Node) string {
	switch unwrap(n).(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "a number"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a float"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode:
		return "nothing"
	case *ast.AliasNode:
		return "an alias"
	case nil:
		return "nothing"
	}
	return "a " + n.Type().String()
}

// scalarText returns the text of a scalar node. Numbers and booleans give
// their source text, so `commands: [7z]` or `users: [1000]` work unquoted.
func scalarText(n ast.Node) (string, bool) {
	switch v := unwrap(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return tokenValue(v.GetToken()), true
	}
	return "", false
}

func tokenValue(tk *token.Token) string {
	if tk == nil {
		return ""
	}
	return tk.Value
}

// str reads a string scalar.
func (p *parseState) str(n ast.Node, what string) (string, bool) {
	s, ok := scalarText(n)
	if !ok {
		p.errorf(n, "", "%s must be a string, got %s", what, kindOf(n))
	}
	return s, ok
}

// strList reads a list of non-empty string scalars.
func (p *parseState) strList(n ast.Node, what string) []string {
	n = unwrap(n)
	switch v := n.(type) {
	case *ast.NullNode:
		return nil
	case *ast.SequenceNode:
		out := make([]string, 0, len(v.Values))
		for _, item := range v.Values {
			s, ok := p.str(item, what+" entry")
			if !ok {
				continue
			}
			if s == "" {
				p.errorf(item, "remove the empty entry", "%s: empty entry", what)
				continue
			}
			out = append(out, s)
		}
		return out
	}
	if s, ok := scalarText(n); ok {
		p.errorf(n, fmt.Sprintf("write a list: [%s]", strconv.Quote(s)), "%s must be a list, got %s", what, kindOf(n))
		return nil
	}
	p.errorf(n, "", "%s must be a list of strings, got %s", what, kindOf(n))
	return nil
}

// top reads the whole document.
func (p *parseState) top(body ast.Node) *RuleSet {
	set := &RuleSet{}
	fields, ok := p.mapping(body, "the rules file", topKeys)
	if !ok {
		return set
	}
	sawVersion := false
	names := map[string]ast.Node{}
	for _, f := range fields {
		switch f.key {
		case "version":
			sawVersion = true
			v, ok := unwrap(f.value).(*ast.IntegerNode)
			if !ok || tokenValue(v.GetToken()) != "1" {
				p.errorf(f.value, "this procwatch reads version: 1", "unsupported rules file version %s", describe(f.value))
				continue
			}
			set.Version = 1
		case "skip":
			set.Skip = p.skipList(f.value, "skip")
		case "rules":
			seq, ok := unwrap(f.value).(*ast.SequenceNode)
			if !ok {
				if _, null := unwrap(f.value).(*ast.NullNode); !null {
					p.errorf(f.value, "write rules as a list of mappings, each starting with \"- name:\"", "rules must be a list, got %s", kindOf(f.value))
				}
				continue
			}
			for _, item := range seq.Values {
				r, nameNode, ok := p.rule(item)
				if r.Name != "" {
					if prev, dup := names[r.Name]; dup {
						line, _ := position(prev)
						p.errorf(nameNode, fmt.Sprintf("rule names must be unique; the first %q is on line %d", r.Name, line), "duplicate rule name %q", r.Name)
						continue
					}
					names[r.Name] = nameNode
				}
				if ok {
					set.Rules = append(set.Rules, r)
				}
			}
		}
	}
	if !sawVersion {
		p.errorf(nil, "add \"version: 1\" at the top of the file", "missing version")
	}
	return set
}

// describe quotes a scalar's text for messages, or names the node's kind.
func describe(n ast.Node) string {
	if s, ok := scalarText(n); ok {
		return strconv.Quote(s)
	}
	return kindOf(n)
}

// rule reads one entry of the rules list.
func (p *parseState) rule(n ast.Node) (Rule, ast.Node, bool) {
	var r Rule
	fields, ok := p.mapping(n, "a rule", ruleKeys)
	if !ok {
		return r, nil, false
	}
	if _, null := unwrap(n).(*ast.NullNode); null {
		p.errorf(n, "each rule needs at least name, type and severity", "empty rule")
		return r, nil, false
	}
	before := len(p.errs)
	var nameNode, matchNode, typeNode, aggNode ast.Node
	sawSeverity := false
	for _, f := range fields {
		switch f.key {
		case "name":
			nameNode = f.value
			r.Name, _ = p.str(f.value, "name")
			if r.Name != "" && !validRuleName(r.Name) {
				p.errorf(f.value, "use letters, digits, '-', '_' and '.', as in exec-from-tmp", "rule name %q has unsupported characters", r.Name)
			}
		case "type":
			typeNode = f.value
			r.Type, _ = p.str(f.value, "type")
			if r.Type != "" && !slices.Contains(ruleTypes, r.Type) {
				p.errorf(f.value, didYouMean(r.Type, ruleTypes), "unknown rule type %q", r.Type)
			}
		case "description":
			r.Description, _ = p.str(f.value, "description")
		case "match":
			matchNode = f.value
		case "severity":
			sawSeverity = true
			r.Severity = p.severity(f.value)
		case "skip":
			r.Skip = p.skipList(f.value, "skip")
		case "aggregate":
			aggNode = f.value
			b, ok := unwrap(f.value).(*ast.BoolNode)
			if !ok {
				p.errorf(f.value, "write aggregate: true or aggregate: false", "aggregate must be true or false, got %s", describe(f.value))
				continue
			}
			r.Aggregate = b.Value
		}
	}
	if nameNode == nil || r.Name == "" {
		at := nameNode
		if at == nil {
			at = n
		}
		p.errorf(at, "add a unique name, such as name: exec-from-tmp", "rule has no name")
	}
	if typeNode == nil || r.Type == "" {
		at := typeNode
		if at == nil {
			at = n
		}
		p.errorf(at, "add type: "+strings.Join(ruleTypes, " | "), "rule %q has no type", r.Name)
	}
	if !sawSeverity {
		p.errorf(n, "add severity: {success: high, failure: medium}; use none for an outcome that should raise nothing", "rule %q has no severity", r.Name)
	}
	if matchNode != nil {
		r.Match = p.selectors(matchNode, r.Type)
	}
	if r.Aggregate && (r.Type != TypeBinExecution || len(r.Match.Paths)+len(r.Match.Filesystems) == 0) {
		p.errorf(aggNode, "aggregate gathers execs by where they ran: use it on a bin-execution rule with match.paths or match.filesystems",
			"rule %q: aggregate needs a bin-execution rule that selects by paths or filesystems", r.Name)
	}
	return r, nameNode, len(p.errs) == before
}

func validRuleName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// severity reads a rule's severity mapping; a missing outcome means none.
func (p *parseState) severity(n ast.Node) OutcomeSeverity {
	var out OutcomeSeverity
	fields, ok := p.mapping(n, "severity", severityKeys)
	if !ok {
		return out
	}
	for _, f := range fields {
		s, ok := p.str(f.value, "severity."+f.key)
		if !ok {
			continue
		}
		sev, err := ParseSeverity(s)
		if err != nil {
			p.errorf(f.value, didYouMean(s, severityNames[:]), "unknown severity %q for %s", s, f.key)
			continue
		}
		if f.key == "success" {
			out.Success = sev
		} else {
			out.Failure = sev
		}
	}
	return out
}

// skipList reads a skip mapping, validating each entry.
func (p *parseState) skipList(n ast.Node, what string) SkipList {
	var out SkipList
	fields, ok := p.mapping(n, what, skipKeys)
	if !ok {
		return out
	}
	var ownersNode ast.Node
	for _, f := range fields {
		list := p.strList(f.value, what+"."+f.key)
		switch f.key {
		case "commands":
			out.Commands = list
		case "paths":
			p.checkPaths(f.value, list, what+".paths")
			out.Paths = list
		case "users":
			out.Users = list
		case "owners":
			ownersNode = f.keyN
			out.Owners = list
		}
	}
	if len(out.Owners) > 0 && len(out.Commands)+len(out.Paths)+len(out.Users) == 0 {
		p.errorf(ownersNode, "add the paths (or commands, users) that owners narrows, such as paths: [/opt/tool]",
			"%s.owners narrows the other skips of the list and is not a skip by itself", what)
	}
	return out
}

// checkPaths validates path patterns, pointing at the offending entry.
func (p *parseState) checkPaths(n ast.Node, list []string, what string) {
	seq, _ := unwrap(n).(*ast.SequenceNode)
	for i, s := range list {
		if err := checkPathPattern(s); err != nil {
			at := n
			if seq != nil && i < len(seq.Values) {
				at = entryNode(seq, s, i)
			}
			p.errorf(at, err.hint, "%s: %v", what, err.msg)
		}
	}
}

// entryNode finds the list item holding s; empty entries were dropped from
// the parsed list, so the index alone may be off.
func entryNode(seq *ast.SequenceNode, s string, i int) ast.Node {
	for _, v := range seq.Values {
		if t, ok := scalarText(v); ok && t == s {
			return v
		}
	}
	return seq.Values[i]
}

// selectors reads a rule's match mapping; exit_codes and signals belong to
// termination-failure rules only.
func (p *parseState) selectors(n ast.Node, ruleType string) Selectors {
	var out Selectors
	fields, ok := p.mapping(n, "match", matchKeys)
	if !ok {
		return out
	}
	for _, f := range fields {
		switch f.key {
		case "paths":
			out.Paths = p.strList(f.value, "match.paths")
			p.checkPaths(f.value, out.Paths, "match.paths")
		case "filesystems":
			out.Filesystems = p.strList(f.value, "match.filesystems")
		case "commands":
			out.Commands = p.strList(f.value, "match.commands")
		case "args":
			out.Args = p.strList(f.value, "match.args")
			p.checkArgs(f.value, out.Args)
		case "owners":
			out.Owners = p.strList(f.value, "match.owners")
		case "users":
			out.Users = p.strList(f.value, "match.users")
		case "parent_commands":
			out.ParentCommands = p.strList(f.value, "match.parent_commands")
		case "container":
			b, ok := unwrap(f.value).(*ast.BoolNode)
			if !ok {
				p.errorf(f.value, "write container: true or container: false", "match.container must be true or false, got %s", describe(f.value))
				continue
			}
			v := b.Value
			out.Container = &v
		case "images":
			out.Images = p.strList(f.value, "match.images")
			p.checkImages(f.value, out.Images)
		case "exit_codes", "signals":
			if ruleType != "" && ruleType != TypeTerminationFailure {
				p.errorf(f.keyN, "exit_codes and signals select how a process ended; use them on a termination-failure rule", "match.%s does not apply to a %s rule", f.key, ruleType)
				continue
			}
			if f.key == "exit_codes" {
				out.ExitCodes = p.exitCodes(f.value)
			} else {
				out.Signals = p.signals(f.value)
			}
		}
	}
	return out
}

// checkImages validates the image globs, pointing at the offending entry.
func (p *parseState) checkImages(n ast.Node, list []string) {
	seq, _ := unwrap(n).(*ast.SequenceNode)
	for i, s := range list {
		if !validGlob(s) {
			p.errorf(entryNode(seq, s, i), "fix the glob syntax (unbalanced [ or {?)", "match.images: bad glob %q", s)
		}
	}
}

func (p *parseState) exitCodes(n ast.Node) []int {
	seq, ok := unwrap(n).(*ast.SequenceNode)
	if !ok {
		p.errorf(n, "write a list such as exit_codes: [1, 2]", "match.exit_codes must be a list of numbers, got %s", kindOf(n))
		return nil
	}
	var out []int
	for _, item := range seq.Values {
		iv, ok := unwrap(item).(*ast.IntegerNode)
		if !ok {
			p.errorf(item, "exit codes are numbers from 0 to 255", "match.exit_codes entry must be a number, got %s", describe(item))
			continue
		}
		code, err := strconv.ParseInt(tokenValue(iv.GetToken()), 0, 64)
		if err != nil || code < 0 || code > 255 {
			p.errorf(item, "exit codes are numbers from 0 to 255", "exit code %s out of range", tokenValue(iv.GetToken()))
			continue
		}
		out = append(out, int(code))
	}
	return out
}

func (p *parseState) signals(n ast.Node) []string {
	list := p.strList(n, "match.signals")
	seq, _ := unwrap(n).(*ast.SequenceNode)
	var out []string
	for i, s := range list {
		if _, ok := signalNumbers[s]; ok {
			out = append(out, s)
			continue
		}
		hint := "write signal names such as SIGSEGV or SIGABRT"
		up := strings.ToUpper(s)
		if !strings.HasPrefix(up, "SIG") {
			up = "SIG" + up
		}
		if _, ok := signalNumbers[up]; ok {
			hint = fmt.Sprintf("write %s", up)
		}
		at := n
		if seq != nil && i < len(seq.Values) {
			at = entryNode(seq, s, i)
		}
		p.errorf(at, hint, "unknown signal %q", s)
	}
	return out
}

// signalNumbers lists the Linux signal names the sensor reports.
var signalNumbers = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
	"SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
	"SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17,
	"SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22,
	"SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27,
	"SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31,
}

// checkArgs validates argument globs, pointing at the offending entry.
func (p *parseState) checkArgs(n ast.Node, list []string) {
	seq, _ := unwrap(n).(*ast.SequenceNode)
	for i, s := range list {
		if isGlob(s) && !validGlob(s) {
			at := n
			if seq != nil && i < len(seq.Values) {
				at = entryNode(seq, s, i)
			}
			p.errorf(at, "check brackets and braces; * matches within a directory, ** across directories", "match.args: bad glob %q", s)
		}
	}
}

// pathProblem is a rejected path pattern with its fix.
type pathProblem struct {
	msg  string
	hint string
}

// Error returns the problem without its hint.
func (e *pathProblem) Error() string { return e.msg }

// checkPathPattern validates one path selector or skip path: absolute, and
// a well-formed glob if it has glob characters.
func checkPathPattern(s string) *pathProblem {
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "**") {
		return &pathProblem{fmt.Sprintf("path %q is not absolute", s), "paths match the resolved executable, which always starts with /"}
	}
	if isGlob(s) && !validGlob(s) {
		return &pathProblem{fmt.Sprintf("bad glob %q", s), "check brackets and braces; * matches within a directory, ** across directories"}
	}
	return nil
}

// maxUID bounds numeric user entries to the uid_t range.
const maxUID = math.MaxUint32

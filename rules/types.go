package rules

import "time"

// Rule types, as written in rules.yaml.
const (
	TypeBinExecution       = "bin-execution"       // matches exec events
	TypeRootEscalation     = "root-escalation"     // matches escalation events
	TypeTerminationFailure = "termination-failure" // matches exit events
)

// Rule is one entry of rules.yaml after validation. It is plain data so that
// the TUI and the agent protocol can show it.
type Rule struct {
	Name        string          `json:"name"`
	Type        string          `json:"type"`
	Description string          `json:"description,omitempty"`
	Match       Selectors       `json:"match"`
	Severity    OutcomeSeverity `json:"severity"`
	Skip        SkipList        `json:"skip"`
	// Aggregate (bin-execution rules that select by paths or filesystems
	// only): past 16 incidents from one user under the same root of the
	// rule's paths within the dedup window, the rest make one flood
	// incident counting the distinct binaries, not one each.
	Aggregate bool `json:"aggregate,omitempty"`
}

// OutcomeSeverity gives a rule's severity for each outcome of the action.
type OutcomeSeverity struct {
	Success Severity `json:"success"`
	Failure Severity `json:"failure"`
}

// Selectors say which processes a rule covers; every selector given must
// match. An empty selector matches everything.
type Selectors struct {
	// Paths and Filesystems both say where the binary lives; given
	// together, either one matching is enough.
	Paths          []string `json:"paths,omitempty"`           // globs on the exe, the script and the exe's origin
	Filesystems    []string `json:"filesystems,omitempty"`     // type of the exe's filesystem, e.g. tmpfs
	Commands       []string `json:"commands,omitempty"`        // exe or script base name; comm when no exe is known
	Args           []string `json:"args,omitempty"`            // globs, any argv element matching
	Owners         []string `json:"owners,omitempty"`          // user name or uid owning the exe file
	Users          []string `json:"users,omitempty"`           // user name or uid
	ParentCommands []string `json:"parent_commands,omitempty"` // parent's command
	Container      *bool    `json:"container,omitempty"`       // in a container or not
	Images         []string `json:"images,omitempty"`          // globs on the container's image
	ExitCodes      []int    `json:"exit_codes,omitempty"`      // termination-failure only
	Signals        []string `json:"signals,omitempty"`         // termination-failure only, e.g. SIGSEGV
}

// SkipList holds the skips written in rules.yaml, globally or on one rule.
type SkipList struct {
	Commands []string `json:"commands,omitempty"`
	Paths    []string `json:"paths,omitempty"`
	Users    []string `json:"users,omitempty"`
	// Owners narrows every skip of the list: it applies only to binaries
	// whose file one of these users owns, so that a skip for root's files
	// in a shared directory cannot be met by a file another user planted.
	Owners []string `json:"owners,omitempty"`
}

// Skip kinds.
const (
	SkipCommand = "command"
	SkipPath    = "path"
	SkipUser    = "user"
)

// Skip sources: where a skip was defined.
const (
	SourceRulesFile = "rules.yaml" // written in the rules file
	SourceAdded     = "added"      // added at run time, stored in the database
)

// Skip is one skip entry with its provenance. Skips from rules.yaml and
// skips added at run time (TUI, `procwatch skip add`) share this type so
// that every consumer can list them together and say where each came from.
type Skip struct {
	ID     string `json:"id,omitempty"` // set by the store for added skips
	Kind   string `json:"kind"`         // command | path | user
	Value  string `json:"value"`
	Rule   string `json:"rule,omitempty"` // empty: applies to every rule
	Source string `json:"source"`
	// Owners, when set, narrows the skip to binaries owned by these users
	// (from the owners key of a rules.yaml skip list).
	Owners  []string  `json:"owners,omitempty"`
	Note    string    `json:"note,omitempty"`
	AddedAt time.Time `json:"added_at,omitzero"`
	AddedBy string    `json:"added_by,omitempty"`

	// Pin, on a path skip, is the hex SHA-256 of the one file the skip is
	// for: it matches only when the event's exe is exactly Value and its
	// content hash (event.Event.ExeSHA256) is Pin, so a different file
	// later put at the same path is not silenced. An event whose hash is
	// not known is not silenced either (fail closed).
	Pin string `json:"pin,omitempty"`
}

package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// TestSkipSuggestCommandsWork: the suggestions' commands, run as printed,
// add the narrowest skips and mask exactly the incidents they stand for.
func TestSkipSuggestCommandsWork(t *testing.T) {
	e := newTestEnv(t)
	storeIncidents(t, e, "/tmp/build/conftest", 3) // no hash known: unpinned, warned
	st, err := store.Open(e.db, store.Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("5e", 32)
	at := time.Now().Add(-30 * time.Minute)
	pinned := rules.Incident{
		ID: rules.NewID(at), Time: at, FirstSeen: at, LastSeen: at, Count: 2, Host: "h",
		Rule: "tmp-exec", Type: rules.TypeBinExecution, Outcome: event.Success, Severity: rules.SeverityHigh,
		Status: rules.StatusOpen, Summary: "tool",
		Process: event.Event{Type: event.TypeExec, Exe: "/tmp/it's a tool", Comm: "tool", Outcome: event.Success, ExeSHA256: sum},
	}
	st.Put(pinned)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	var sgs []struct {
		Skip     rules.Skip `json:"skip"`
		Count    int        `json:"count"`
		Command  string     `json:"command"`
		Warnings []struct{ Code string }
	}
	if err := json.Unmarshal([]byte(mustRun(t, e, "skip", "suggest", "--json")), &sgs); err != nil {
		t.Fatal(err)
	}
	if len(sgs) != 2 || sgs[0].Count != 3 || sgs[0].Skip.Value != "/tmp/build/conftest" || sgs[0].Skip.Pin != "" ||
		len(sgs[0].Warnings) != 1 || sgs[0].Warnings[0].Code != "unpinned" ||
		sgs[1].Skip.Pin != sum || sgs[1].Skip.Rule != "tmp-exec" {
		t.Fatalf("suggestions %+v", sgs)
	}
	human := mustRun(t, e, "skip", "suggest", pinned.ID.String())
	if !strings.Contains(human, "$ procwatch skip add --rule tmp-exec --sha256 "+sum+" path '/tmp/it'\\''s a tool'") {
		t.Fatalf("suggest ID:\n%s", human)
	}
	for _, sg := range sgs {
		words, _ := shellWords(sg.Command)
		out := mustRun(t, e, words[1:]...)
		if !strings.Contains(out, "masked") {
			t.Errorf("%s: %q", sg.Command, out)
		}
	}
	if got := parseNDJSON(t, mustRun(t, e, "incidents", "--json", "--status", "open")); len(got) != 0 {
		t.Errorf("%d incidents still open after the suggestions", len(got))
	}
	added := listSkips(t, e)
	if len(added) != 2 || added[1].Pin != sum || added[1].Value != "/tmp/it's a tool" {
		t.Errorf("skips %+v", added)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/make":        "/usr/bin/make",
		"/tmp/a b":             "'/tmp/a b'",
		"/tmp/it's":            `'/tmp/it'\''s'`,
		"/tmp/\x1b[2Jx":        `$'/tmp/\x1b[2Jx'`,
		"/tmp/\xff'\\":         `$'/tmp/\xff\x27\x5c'`,
		"/tmp/\u202egnp.sh":    `$'/tmp/\xe2\x80\xaegnp.sh'`,
		"/tmp/caf\u00e9 crème": "'/tmp/caf\u00e9 crème'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// deepfenceEntry is one entry of a Deepfence process tracer configuration's
// monitoredprocessevents list.
type deepfenceEntry struct {
	Event           string   `json:"event"`
	SuccessSeverity string   `json:"success_severity"`
	FailureSeverity string   `json:"failure_severity"`
	SkipCommList    []string `json:"skip_comm_list"`
	SkipPathList    []string `json:"skip_path_list"`
	SkipUserList    []string `json:"skip_user_list"`
}

// ImportDeepfence converts a Deepfence process-monitoring configuration
// into a rules.yaml. It accepts the configuration object (with its
// "monitoredprocessevents" list) or the bare list. Each entry becomes one
// rule of the same type, with no selectors (Deepfence watches every process
// for that event) and the entry's skip lists as the rule's skips. The
// output is checked with Parse before it is returned, so it always loads.
func ImportDeepfence(data []byte) ([]byte, error) {
	entries, err := decodeDeepfence(data)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("deepfence config: no monitoredprocessevents entries")
	}
	var problems []string
	var b bytes.Buffer
	b.WriteString("# Converted from a Deepfence process-monitoring configuration by\n")
	b.WriteString("# `procwatch rules import-deepfence`. Deepfence watches every process for\n")
	b.WriteString("# each event type, so these rules have no match selectors; add some to\n")
	b.WriteString("# narrow them. Check the file with `procwatch rules check`.\n")
	b.WriteString("version: 1\nskip:\n  commands: []\n  paths: []\n  users: []\nrules:\n")
	used := map[string]int{}
	for i, en := range entries {
		at := fmt.Sprintf("entry %d", i+1)
		if !slices.Contains(ruleTypes, en.Event) {
			problems = append(problems, fmt.Sprintf("%s: unknown event %q (%s)", at, en.Event, didYouMean(en.Event, ruleTypes)))
			continue
		}
		success, err := deepfenceSeverity(en.SuccessSeverity)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: success_severity: %v", at, err))
		}
		failure, err := deepfenceSeverity(en.FailureSeverity)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: failure_severity: %v", at, err))
		}
		for _, p := range en.SkipPathList {
			if pp := checkPathPattern(p); pp != nil {
				problems = append(problems, fmt.Sprintf("%s: skip_path_list: %s (%s)", at, pp.msg, pp.hint))
			}
		}
		for _, lists := range [][]string{en.SkipCommList, en.SkipPathList, en.SkipUserList} {
			if slices.Contains(lists, "") {
				problems = append(problems, fmt.Sprintf("%s: empty skip entry", at))
				break
			}
		}
		name := en.Event
		if used[name]++; used[name] > 1 {
			name = fmt.Sprintf("%s-%d", en.Event, used[en.Event])
		}
		fmt.Fprintf(&b, "  - name: %s\n    type: %s\n", name, en.Event)
		fmt.Fprintf(&b, "    description: Imported from Deepfence (%s)\n", en.Event)
		fmt.Fprintf(&b, "    severity:\n      success: %s\n      failure: %s\n", success, failure)
		b.WriteString("    skip:\n")
		writeYAMLList(&b, "commands", en.SkipCommList)
		writeYAMLList(&b, "paths", en.SkipPathList)
		writeYAMLList(&b, "users", en.SkipUserList)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("deepfence config: %s", strings.Join(problems, "; "))
	}
	if _, err := Parse("imported rules", b.Bytes()); err != nil {
		return nil, fmt.Errorf("deepfence config: converted rules do not load: %w", err)
	}
	return b.Bytes(), nil
}

func decodeDeepfence(data []byte) ([]deepfenceEntry, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var entries []deepfenceEntry
		if err := json.Unmarshal(trimmed, &entries); err != nil {
			return nil, fmt.Errorf("deepfence config: %w", err)
		}
		return entries, nil
	}
	var cfg struct {
		Events *[]deepfenceEntry `json:"monitoredprocessevents"`
	}
	if err := json.Unmarshal(trimmed, &cfg); err != nil {
		return nil, fmt.Errorf("deepfence config: %w", err)
	}
	if cfg.Events == nil {
		return nil, errors.New(`deepfence config: no "monitoredprocessevents" list (is this a process tracer configuration?)`)
	}
	return *cfg.Events, nil
}

// deepfenceSeverity maps a Deepfence severity name; empty means none.
func deepfenceSeverity(s string) (Severity, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return SeverityNone, nil
	}
	return ParseSeverity(s)
}

// writeYAMLList writes a flow list of quoted strings. A JSON string is a
// valid YAML double-quoted scalar, so encoding/json does the escaping.
func writeYAMLList(b *bytes.Buffer, key string, items []string) {
	fmt.Fprintf(b, "      %s: [", key)
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		q, _ := json.Marshal(it)
		b.Write(q)
	}
	b.WriteString("]\n")
}

package tui

import (
	"errors"
	"fmt"
	"os"
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/rules"
)

// noService is a api.Service whose embedded interface is nil: any
// method called on it panics. A model built on it, driven by calling
// Update directly and dropping the commands it returns, proves that
// Update itself never calls the service.
type noService struct{ api.Service }

// TestUpdateDoesNoIO drives Update with one host and with several through
// every screen, every screen's keys, their confirmations and the results
// of service calls, without ever running a returned command: no service
// call (it would panic), no user lookup and no export file may happen.
func TestUpdateDoesNoIO(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d hosts", n), func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions()
			opts.ExportDir = dir
			opts.LookupUser = func(uid uint32) (string, bool) {
				t.Errorf("user %d looked up inside Update", uid)
				return "", false
			}
			list := make([]Host, n)
			for i := range list {
				list[i] = Host{Name: fmt.Sprintf("web-%02d", i+1), Service: noService{}}
			}
			m := NewHosts(t.Context(), list, opts)
			_ = m.Init()
			feed := func(msg tea.Msg) {
				t.Helper()
				m.Update(msg) // the command is dropped: it is where I/O belongs
				_ = m.View()
			}
			feed(tea.WindowSizeMsg{Width: 120, Height: 40})
			for i, h := range list {
				feed(subscribedMsg{host: i, gen: m.hosts[i].gen})
				feed(incidentsMsg{host: i, list: servicetest.SampleIncidents(h.Name, t0)})
				feed(statusMsg{host: i, st: api.Status{Host: h.Name, Time: t0, Monitoring: true}})
				feed(rulesMsg{host: i, list: servicetest.SampleRules()})
				feed(skipsMsg{host: i, list: []rules.Skip{{Kind: rules.SkipCommand, Value: "sudo", Source: rules.SourceAdded, ID: "s1"}}})
			}
			all := make([]hostResult, n)
			for i := range all {
				all[i] = hostResult{host: i, ids: []rules.ID{1}, skip: rules.Skip{Kind: rules.SkipCommand, Value: "bash", ID: "s2"}, n: 1}
			}
			results := []tea.Msg{
				monitoringMsg{on: false, results: all}, monitoringMsg{on: true, results: all},
				statusSetMsg{status: rules.StatusAcknowledged, results: all},
				skipAddedMsg{results: all}, skipRemovedMsg{results: all, undo: true},
				exportedMsg{path: "x.json", count: 1}, exportedMsg{err: errors.New("disk full")},
				statusMsg{host: 0, err: errors.New("connection refused")},
				subscribedMsg{host: 0, gen: m.hosts[0].gen, err: errors.New("gone")},
				statusPollMsg{}, resubscribeMsg{host: 0},
			}
			for _, r := range results {
				feed(r)
			}
			enter, esc := tea.KeyPressMsg{Code: tea.KeyEnter}, tea.KeyPressMsg{Code: tea.KeyEscape}
			press := func(r rune) { feed(tea.KeyPressMsg{Code: r, Text: string(r)}) }
			for s := '1'; s <= '8'; s++ {
				press(s)
				for _, k := range "jjkGg axRAXoesSpPutrdmHF *ric" {
					press(k)
					press('y') // confirm whatever was asked
					feed(enter)
					feed(esc)
					feed(esc)
				}
				press('/')
				press('b')
				feed(esc)
				press('?')
				press('j')
				press('q')
			}
			if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
				t.Errorf("Update wrote to the export directory: %v %v", entries, err)
			}
		})
	}
}

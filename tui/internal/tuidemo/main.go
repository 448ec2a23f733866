// Command tuidemo runs the procwatch TUI on an in-memory fake service with
// generated load, to try the UI by hand (for example in tmux) without BPF
// or root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/api/servicetest"
	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/tui"
)

func main() {
	rate := flag.Int("rate", 200, "events per second to generate")
	hostile := flag.Bool("hostile", false, "add incidents with hostile process names")
	rows := flag.Int("rows", 10_000, "rows kept per stream")
	nHosts := flag.Int("hosts", 0, "show this many fake hosts (the multi-host UI) instead of one")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *nHosts > 0 {
		runHosts(ctx, *nHosts, *rate, *rows)
		return
	}
	host, _ := os.Hostname()
	f := servicetest.New(host, nil)
	f.SetRules(servicetest.SampleRules())
	t0 := time.Now().Add(-10 * time.Minute)
	f.Raise(servicetest.SampleIncidents(host, t0)...)
	if *hostile {
		f.Raise(servicetest.HostileIncidents(host, t0.Add(6*time.Minute))...)
	}
	f.AddRulesFileSkip(rules.Skip{Kind: rules.SkipCommand, Value: "sudo", Rule: "root-escalation"})
	go generate(ctx, f, host, *rate)
	if err := tui.Run(ctx, f, tui.Options{Rows: *rows}); err != nil {
		fmt.Fprintln(os.Stderr, "tuidemo:", err)
		os.Exit(1)
	}
}

// runHosts shows n fake hosts, each with the sample incidents and its
// share of the load.
func runHosts(ctx context.Context, n, rate, rows int) {
	list := make([]tui.Host, n)
	for i := range list {
		name := fmt.Sprintf("demo-%02d", i+1)
		f := servicetest.New(name, nil)
		f.SetRules(servicetest.SampleRules())
		f.Raise(servicetest.SampleIncidents(name, time.Now().Add(-time.Duration(10+i)*time.Minute))...)
		go generate(ctx, f, name, rate/n)
		list[i] = tui.Host{Name: name, Service: f}
	}
	if err := tui.RunHosts(ctx, list, tui.Options{Rows: rows}); err != nil {
		fmt.Fprintln(os.Stderr, "tuidemo:", err)
		os.Exit(1)
	}
}

// generate publishes rate events a second in batches of 20 ms, an incident
// every few seconds, and a status snapshot every second.
func generate(ctx context.Context, f *servicetest.Fake, host string, rate int) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var stats event.Stats
	pid := uint32(10000)
	lastStatus := time.Now()
	carry := 0.0
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			carry += float64(rate) / 50
			k := int(carry)
			carry -= float64(k)
			u := servicetest.LoadBatch(now, pid, k)
			pid += uint32(k)
			for _, ev := range u.Events {
				switch ev.Type {
				case event.TypeExec:
					stats.Exec++
				case event.TypeExit:
					stats.Exit++
				case event.TypeEscalation:
					stats.Escalation++
				}
			}
			n++
			if n%150 == 0 {
				ev := servicetest.EscalationEvent(now, pid, 65534, "/opt/tools/suidtest")
				pid++
				u.Events = append(u.Events, api.Envelope{Event: ev})
				u.Incidents = append(u.Incidents, servicetest.IncidentFor(rules.NewID(now), host, "root-escalation",
					rules.TypeRootEscalation, rules.SeverityHigh, ev, "uid 65534 became root through set-user-ID /opt/tools/suidtest"))
			}
			if now.Sub(lastStatus) >= time.Second {
				lastStatus = now
				f.SetStats(stats, now)
				st, _ := f.Status(ctx)
				u.Status = &st
			}
			f.Publish(api.Update(u))
		}
	}
}

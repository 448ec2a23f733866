package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/pipeline"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// filledStore opens a store in a temp dir holding n incidents of about
// 600 bytes each, raised over the last n seconds.
func filledStore(t *testing.T, n int) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "big.db"), store.Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := time.Now().Add(-time.Duration(n) * time.Second)
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second)
		exe := event.Text(fmt.Sprintf("/tmp/build-%06d/configure", i))
		st.Put(rules.Incident{
			ID: rules.NewID(at), Time: at, FirstSeen: at, LastSeen: at, Count: 1, Host: "h",
			Rule: "exec-from-writable-dir", Type: rules.TypeBinExecution, Severity: rules.SeverityHigh,
			Status: rules.StatusOpen, Outcome: event.Success, Summary: exe + " executed by uid 1000",
			Process: event.Event{Type: event.TypeExec, Time: at, PID: uint32(i), UID: 1000, Exe: exe, Comm: "configure",
				Args: []event.Text{exe, "--prefix=/usr/local", "--enable-shared", "--with-pic", "CFLAGS=-O2 -g -pipe -fstack-protector-strong"},
				Cwd:  "/tmp/build", ParentExe: "/usr/bin/make"},
		})
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	return st
}

// heapPeak samples the heap in use until stop is closed and returns the
// largest value seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out
}

// TestIncidentsAnswerInBoundedMemory asks a server over a 100,000-incident
// database for every incident, four times at once on one connection, and
// reads the answers as fast as it can. The answers are streamed, so the
// heap grows by a few batches, not by the database: before the fix one
// such request added about 210 MB.
func TestIncidentsAnswerInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a 100,000-incident database")
	}
	const n, pipelined = 100_000, 4
	const bound = 64 << 20
	st := filledStore(t, n)
	set, err := rules.LoadFile("../rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	local, err := pipeline.New(pipeline.Config{Host: "h", Store: st, Rules: rules.NewEngine(set, rules.EngineOptions{Host: "h"})})
	if err != nil {
		t.Fatal(err)
	}
	path := startServer(t, &Server{Service: local})

	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, `{"type":"hello","version":%d,"software":"test","role":"client"}`+"\n", Version)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := make(chan struct{})
	peak := heapPeak(stop)
	for i := 1; i <= pipelined; i++ {
		fmt.Fprintf(conn, `{"type":"request","id":%d,"method":"incidents","params":{"query":{"limit":0}}}`+"\n", i)
	}
	var mu sync.Mutex
	counts := map[uint64]int{}
	var sent atomic.Int64
	fr := newFrameReader(bufio.NewReader(conn), MaxFrame, 64<<10)
	for done := 0; done < pipelined; {
		frame, err := fr.next()
		if err != nil {
			t.Fatalf("after %d answers: %v", done, err)
		}
		if bytes.HasPrefix(frame, []byte(`{"type":"incidents"`)) {
			sent.Add(int64(bytes.Count(frame, []byte(`"rule":`)))) // not decoded: the reader keeps up
			continue
		}
		var m message
		if err := json.Unmarshal(frame, &m); err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case typeResponse:
			if m.Error != nil {
				t.Fatalf("request %d: %v", m.ID, m.Error)
			}
			var res countResult
			json.Unmarshal(m.Result, &res)
			mu.Lock()
			counts[m.ID] = res.Count
			mu.Unlock()
			done++
		}
	}
	close(stop)
	growth := int64(<-peak) - int64(base)
	t.Logf("%d requests for all of %d incidents: heap in use %d MiB before, peak growth %d MiB, %d incidents sent",
		pipelined, n, base>>20, growth>>20, sent.Load())
	for id, c := range counts {
		if c != n {
			t.Errorf("request %d answered %d incidents, want %d", id, c, n)
		}
	}
	if growth > bound {
		t.Errorf("heap grew by %d MiB, want under %d MiB", growth>>20, bound>>20)
	}
}

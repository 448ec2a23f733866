package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/protocol"
	"github.com/procwatch/procwatch/rules"
	"github.com/procwatch/procwatch/store"
)

// memoryBench is what `procwatch bench memory` measures.
type memoryBench struct {
	incidents, idle, pipelined int
	out                        io.Writer
}

func newBenchMemoryCmd() *cobra.Command {
	b := memoryBench{}
	cmd := &cobra.Command{
		Use:   "memory",
		Short: "RSS of a real agent under thousands of idle connections and under a client asking for everything",
		Long: `Fills a database in a temporary directory with --incidents incidents, starts
a real "procwatch agent" on it (this binary, with the sensor: needs root),
and reads the agent's resident memory (VmRSS, RssAnon and RssFile in /proc)
at rest, with --idle connections open and idle after their hello, and at
its peak while one client pipelines --pipelined requests for every incident
(limit 0) and an export of everything. Prints the figures and whether the
agent's resident memory (VmRSS) stays under 128 MiB; exits 1 when it does
not. The file-backed part includes the pages of the memory-mapped
database the agent has read and not yet handed back to the kernel (the
store releases them after its start-up check and every few MiB a read
goes through).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b.out = cmd.OutOrStdout()
			return b.run(cmd.Context())
		},
	}
	cmd.Flags().IntVar(&b.incidents, "incidents", 100_000, "incidents in the database")
	cmd.Flags().IntVar(&b.idle, "idle", 4000, "idle connections to hold open")
	cmd.Flags().IntVar(&b.pipelined, "pipelined", 16, "requests for every incident sent at once on one connection")
	return cmd
}

const memoryBudget = 128 << 20

func (b *memoryBench) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "procwatch-bench-memory-")
	if err != nil {
		return fmt.Errorf("bench memory: %w", err)
	}
	defer os.RemoveAll(dir)
	db, sock := filepath.Join(dir, "procwatch.db"), filepath.Join(dir, "run", "procwatch.sock")
	start := time.Now()
	if err := fillDatabase(db, b.incidents); err != nil {
		return err
	}
	size := int64(0)
	if fi, err := os.Stat(db); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(b.out, "database: %d incidents, %.1f MiB, written in %v\n", b.incidents, float64(size)/(1<<20), time.Since(start).Round(time.Millisecond))
	pid, stop, err := startBenchAgent(ctx, db, sock, b.idle+64)
	if err != nil {
		return err
	}
	defer stop()
	time.Sleep(time.Second)
	rest := readRSS(pid)
	idle, err := holdIdle(sock, b.idle)
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	idleRSS := readRSS(pid)
	for _, c := range idle {
		c.Close()
	}
	peak, err := askEverything(sock, pid, b.pipelined)
	if err != nil {
		return err
	}
	rows := []struct {
		what string
		rss  rss
	}{
		{"at rest", rest},
		{fmt.Sprintf("%d idle connections", len(idle)), idleRSS},
		{fmt.Sprintf("peak, %d x incidents limit 0 + export", b.pipelined), peak},
	}
	over := false
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Fprintf(b.out, "%-52s %9s %9s %9s\n", "agent", "VmRSS", "anon", "file")
	for _, r := range rows {
		verdict := "ok"
		if r.rss.total > memoryBudget {
			verdict, over = "OVER 128 MiB", true
		}
		fmt.Fprintf(b.out, "%-52s %5.1f MiB %5.1f MiB %5.1f MiB  %s\n", r.what, mib(r.rss.total), mib(r.rss.anon), mib(r.rss.file), verdict)
	}
	fmt.Fprintln(b.out, "(VmRSS is held to 128 MiB; anon: the agent's own memory; file: pages of the binary, the BPF maps and of the")
	fmt.Fprintln(b.out, " memory-mapped database read since the store last handed them back to the kernel)")
	if over {
		return fmt.Errorf("bench memory: the agent went over 128 MiB")
	}
	return nil
}

// fillDatabase writes n incidents of about 600 bytes, raised over the last
// n seconds.
func fillDatabase(path string, n int) error {
	st, err := store.Open(path, store.Options{RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		return err
	}
	from := time.Now().Add(-time.Duration(n) * time.Second)
	for i := range n {
		at := from.Add(time.Duration(i) * time.Second)
		exe := event.Text(fmt.Sprintf("/tmp/build-%06d/configure", i))
		st.Put(rules.Incident{
			ID: rules.NewID(at), Time: at, FirstSeen: at, LastSeen: at, Count: 1, Host: "bench",
			Rule: "exec-from-writable-dir", Type: rules.TypeBinExecution, Severity: rules.SeverityHigh,
			Status: rules.StatusOpen, Outcome: event.Success, Summary: exe + " executed by uid 1000",
			Process: event.Event{Type: event.TypeExec, Time: at, PID: uint32(i), UID: 1000, Exe: exe, Comm: "configure",
				Args: []event.Text{exe, "--prefix=/usr/local", "--enable-shared", "CFLAGS=-O2 -g -pipe"}, Cwd: "/tmp/build"},
		})
	}
	return st.Close()
}

// startBenchAgent runs this binary as `procwatch agent` and waits for its
// socket.
func startBenchAgent(ctx context.Context, db, sock string, maxConns int) (int, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := exec.CommandContext(ctx, self, "--db", db, "--socket", sock, "agent", "--max-connections", strconv.Itoa(maxConns))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start agent: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return 0, nil, fmt.Errorf("the agent exited at start: %s", strings.TrimSpace(stderr.String()))
		default:
		}
		if c, err := protocol.Dial(sock); err == nil {
			c.Close()
			return cmd.Process.Pid, stop, nil
		}
	}
	stop()
	return 0, nil, fmt.Errorf("the agent never answered on %s", sock)
}

// holdIdle opens n connections and completes the hello on each.
func holdIdle(sock string, n int) ([]net.Conn, error) {
	hello := fmt.Sprintf(`{"type":"hello","version":%d,"software":"bench","role":"client"}`+"\n", protocol.Version)
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return conns, fmt.Errorf("idle connection %d: %w", len(conns)+1, err)
		}
		if _, err := io.WriteString(c, hello); err != nil {
			return conns, err
		}
		line, err := bufio.NewReaderSize(c, 256).ReadString('\n')
		if err != nil || !strings.Contains(line, `"hello"`) {
			c.Close()
			return conns, fmt.Errorf("idle connection %d: no hello: %v %s", len(conns)+1, err, line)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// askEverything pipelines requests for every incident and an export on
// one connection, reads and discards the answers, and returns the agent's
// peak RSS meanwhile.
func askEverything(sock string, pid, pipelined int) (rss, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return rss{}, err
	}
	defer c.Close()
	fmt.Fprintf(c, `{"type":"hello","version":%d,"software":"bench","role":"client"}`+"\n", protocol.Version)
	for i := 1; i <= pipelined; i++ {
		fmt.Fprintf(c, `{"type":"request","id":%d,"method":"incidents","params":{"query":{"limit":0}}}`+"\n", i)
	}
	exportID := pipelined + 1
	fmt.Fprintf(c, `{"type":"request","id":%d,"method":"export","params":{"query":{},"format":"ndjson"}}`+"\n", exportID)
	var peak rss
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if r := readRSS(pid); r.total > peak.total {
				peak = r
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	err = drainAnswers(c, pipelined+1, exportID)
	close(stop)
	wg.Wait()
	return peak, err
}

// drainAnswers reads frames until want final responses have come,
// acknowledging export chunks and skipping their bytes.
func drainAnswers(c net.Conn, want, exportID int) error {
	br := bufio.NewReaderSize(c, 1<<20)
	ack := fmt.Sprintf(`{"type":"ack","id":%d}`+"\n", exportID)
	for done := 0; done < want; {
		line, err := br.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			_, err = br.ReadSlice('\n')
		}
		if err != nil {
			return fmt.Errorf("read answers: %w", err)
		}
		switch {
		case strings.HasPrefix(string(line[:min(len(line), 20)]), `{"type":"chunk"`):
			var size int
			if i := strings.Index(string(line), `"size":`); i >= 0 {
				fmt.Sscanf(string(line[i+7:]), "%d", &size)
			}
			if _, err := br.Discard(size); err != nil {
				return err
			}
			io.WriteString(c, ack)
		case strings.HasPrefix(string(line[:min(len(line), 20)]), `{"type":"response"`):
			if strings.Contains(string(line), `"error"`) {
				return fmt.Errorf("agent answered: %s", line)
			}
			done++
		}
	}
	return nil
}

// rss is a process's resident set size and its anonymous and file-backed
// parts, in bytes.
type rss struct{ total, anon, file int64 }

// readRSS reads VmRSS, RssAnon and RssFile from /proc/PID/status.
func readRSS(pid int) rss {
	var r rss
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return r
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		switch name {
		case "VmRSS":
			r.total = kb << 10
		case "RssAnon":
			r.anon = kb << 10
		case "RssFile":
			r.file = kb << 10
		}
	}
	return r
}

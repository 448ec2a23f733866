package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// The crash and lock tests run this test binary again as a child process
// with helperEnv naming what the child does.
const (
	helperEnv      = "PROCWATCH_STORE_HELPER"
	helperDBEnv    = "PROCWATCH_STORE_DB"
	helperStartEnv = "PROCWATCH_STORE_START"

	helperWriter = "writer" // write a storm of incidents until killed
	helperHolder = "holder" // hold the database until stdin closes
)

func runHelper(name string) int {
	path := os.Getenv(helperDBEnv)
	switch name {
	case helperWriter:
		start, _ := strconv.ParseUint(os.Getenv(helperStartEnv), 10, 64)
		return writeStorm(path, start)
	case helperHolder:
		s, err := Open(path, Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
	return 2
}

// writeStorm puts incidents numbered start, start+1, ... (the number is in
// Count) in bursts of a thousand every 10ms, a storm of up to 100,000 a
// second that keeps the test's database small. It prints "put N" after
// each burst and "committed N" each time the store reports more committed:
// incidents up to number N are then on disk. It runs until killed.
func writeStorm(path string, start uint64) int {
	s, err := Open(path, Options{BatchInterval: 20 * time.Millisecond, RetentionAge: -1, RetentionCount: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := &lockedWriter{w: bufio.NewWriter(os.Stdout)}
	go func() {
		var last uint64
		for {
			if c := s.Stats().Committed; c != last {
				last = c
				fmt.Fprintf(out, "committed %d\n", start+c-1)
				out.Flush()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for seq := start; ; seq++ {
		inc := fixture(time.Now(), int(seq))
		inc.Count = seq
		s.Put(inc)
		if seq%1000 == 0 {
			fmt.Fprintf(out, "put %d\n", seq)
			out.Flush()
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// lockedWriter lets two goroutines print whole lines.
type lockedWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
}

var benchCleanup func()

func cleanupBenchDB() {
	if benchCleanup != nil {
		benchCleanup()
	}
}

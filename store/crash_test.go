package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/procwatch/procwatch/rules"
)

// helperCmd prepares this test binary as a helper child process.
func helperCmd(t *testing.T, helper, path string, extraEnv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+helper, helperDBEnv+"="+path)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestCrashMidStorm kills a writer with SIGKILL while it commits a storm,
// three times over the same file, and checks after each kill that the
// database opens cleanly, passes bbolt's consistency check, holds exactly
// the incidents 1..M with no gap, and that M reaches at least the last
// number the writer reported as committed: only incidents queued after the
// last commit (one batch) are lost.
func TestCrashMidStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts writer processes")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	next := uint64(1)
	for round := 1; round <= 3; round++ {
		reported, put := killWriterMidStorm(t, path, next)
		s, err := Open(path, Options{RetentionAge: -1, RetentionCount: -1})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		var seqs []uint64
		err = s.After(0, func(inc *rules.Incident) error {
			seqs = append(seqs, inc.Count)
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: read back: %v", round, err)
		}
		for i, seq := range seqs {
			if seq != uint64(i)+1 {
				t.Fatalf("round %d: incident #%d has number %d: a committed batch is missing or torn", round, i+1, seq)
			}
		}
		m := uint64(len(seqs))
		if m < reported {
			t.Fatalf("round %d: %d incidents stored, but the writer reported %d committed", round, m, reported)
		}
		t.Logf("round %d: writer put at least %d, reported %d committed, %d stored", round, put, reported, m)
		checkCounters(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		next = m + 1
	}
}

// killWriterMidStorm runs a writer from number start and kills it once it
// has reported a few commits, returning the last numbers it reported
// committed and put.
func killWriterMidStorm(t *testing.T, path string, start uint64) (committed, put uint64) {
	t.Helper()
	cmd := helperCmd(t, helperWriter, path, helperStartEnv+"="+strconv.FormatUint(start, 10))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var reported uint64
	commits := 0
	sc := bufio.NewScanner(stdout)
	read := func() bool {
		what, num, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseUint(num, 10, 64)
		switch {
		case err != nil:
			t.Fatalf("writer said %q", sc.Text())
		case what == "put":
			put = n
		case what == "committed":
			reported = n
			return true
		default:
			t.Fatalf("writer said %q", sc.Text())
		}
		return false
	}
	for sc.Scan() {
		if read() {
			commits++
			if commits >= 5 && reported-start >= 20000 {
				break
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Lines the writer printed before it died still count: they were
	// printed after their commit returned.
	for sc.Scan() {
		read()
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("writer did not die by SIGKILL: %v", err)
	}
	if reported < start {
		t.Fatal("writer reported no commit")
	}
	return reported, put
}

func TestLockedByAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a holder process")
	}
	path := filepath.Join(t.TempDir(), "locked.db")
	cmd := helperCmd(t, helperHolder, path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("holder: %q, %v", line, err)
	}
	for _, readOnly := range []bool{false, true} {
		start := time.Now()
		_, err := Open(path, Options{ReadOnly: readOnly})
		took := time.Since(start)
		le, ok := err.(*LockedError)
		if !ok {
			t.Fatalf("read-only %v: Open = %v, want *LockedError", readOnly, err)
		}
		want := fmt.Sprintf("procwatch is already running (pid %d) with %s", cmd.Process.Pid, path)
		if le.PID != cmd.Process.Pid || err.Error() != want {
			t.Errorf("read-only %v: %q, want %q", readOnly, err, want)
		}
		// About a second by design; the bound only proves it is no hang.
		if took > 10*time.Second {
			t.Errorf("read-only %v: Open took %v", readOnly, took)
		}
		t.Logf("read-only %v: refused after %v", readOnly, took.Round(time.Millisecond))
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after the holder exited: %v", err)
	}
	s.Close()
}

func TestLockedErrorWithoutPID(t *testing.T) {
	err := &LockedError{Path: "/x/p.db"}
	if got := err.Error(); got != "procwatch is already running with /x/p.db" {
		t.Errorf("Error() = %q", got)
	}
}

func TestFindLockHolder(t *testing.T) {
	locks := `1: POSIX  ADVISORY  WRITE 111 fe:00:42 0 EOF
2: FLOCK  ADVISORY  WRITE 222 fe:00:9977989 0 EOF
2: -> FLOCK  ADVISORY  WRITE 333 fe:00:9977989 0 EOF
3: OFDLCK ADVISORY  READ -1 00:05:1 0 EOF
4: FLOCK  ADVISORY  READ 444 00:2a:555 0 EOF
`
	cases := []struct {
		name         string
		major, minor uint32
		ino          uint64
		want         int
	}{
		{"exact", 254, 0, 9977989, 222},
		{"other inode", 254, 0, 7, 0},
		{"device differs, inode unique", 0, 0x30, 555, 444},
		{"posix lock too", 254, 0, 42, 111},
		{"negative pid ignored", 0, 5, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := findLockHolder(strings.NewReader(locks), c.major, c.minor, c.ino); got != c.want {
				t.Errorf("findLockHolder = %d, want %d", got, c.want)
			}
		})
	}
}

// checkIntegrity runs bbolt's page consistency check.
func checkIntegrity(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error { return <-tx.Check() }); err != nil {
		t.Errorf("bbolt check: %v", err)
	}
}

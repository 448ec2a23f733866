package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dialer opens a byte stream to one host's agent. CommandDialer is the
// real one; tests pass in-memory pipes.
type Dialer func(ctx context.Context) (io.ReadWriteCloser, error)

// closeGrace is how long a transport gets to exit on its own once its
// stdin is closed, before its process group is terminated.
const closeGrace = 2 * time.Second

// CommandDialer runs command with `sh -c` for each connection and speaks
// over its stdin and stdout. The command runs in a session of its own,
// without a controlling terminal, so ssh or sudo cannot prompt on the
// terminal the UI draws on: they fail with their own message instead,
// which becomes the host's "unreachable" reason. Closing the stream closes
// the command's stdin, waits up to two seconds, then terminates its whole
// process group.
func CommandDialer(command string) Dialer {
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		return startCommand(command)
	}
}

// cmdConn is a running transport command seen as one stream.
type cmdConn struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File
	stderr *tail

	exited  chan struct{}
	waitErr error

	closeOnce sync.Once
}

func startCommand(command string) (*cmdConn, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("transport pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("transport pipe: %w", err)
	}
	c := &cmdConn{stdin: inW, stdout: outR, stderr: &tail{max: 4096}, exited: make(chan struct{})}
	c.cmd = exec.Command("/bin/sh", "-c", command)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = inR, outW, c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = c.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start transport %q: %w", command, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *cmdConn) Read(p []byte) (int, error)  { return c.stdout.Read(p) }
func (c *cmdConn) Write(p []byte) (int, error) { return c.stdin.Write(p) }

// Close ends the transport: stdin first, so a well-behaved `serve --stdio`
// finishes cleanly, then signals to the process group if it lingers.
func (c *cmdConn) Close() error {
	c.closeOnce.Do(func() {
		c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(closeGrace):
			c.signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(time.Second):
				c.signal(syscall.SIGKILL)
				<-c.exited
			}
		}
		c.stdout.Close()
	})
	return nil
}

func (c *cmdConn) signal(sig syscall.Signal) {
	if p := c.cmd.Process; p != nil {
		syscall.Kill(-p.Pid, sig) // the session leader's group: sh and what it started
	}
}

// explain says why the transport ended, in one line: its exit status and
// the last line it wrote on stderr (ssh's "Connection refused", sudo's "a
// terminal is required"). It waits briefly for the process to exit and
// reports whether it did: then its own words are the whole story.
func (c *cmdConn) explain() (string, bool) {
	select {
	case <-c.exited:
	case <-time.After(500 * time.Millisecond):
		return lastLine(c.stderr.String()), false
	}
	status := "transport exited"
	var ee *exec.ExitError
	switch {
	case errors.As(c.waitErr, &ee):
		status = "transport " + ee.ProcessState.String()
	case c.waitErr != nil:
		status = "transport: " + c.waitErr.Error()
	}
	if l := lastLine(c.stderr.String()); l != "" {
		return status + ": " + l, true
	}
	return status, true
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\r\n\t "), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// tail keeps the last max bytes written to it: the end of the transport's
// stderr, where the reason it failed is.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

//go:build linux

package sensor_test

// Integration tests for what a process cannot fake about the binary it
// runs (issue 9): memory-backed binaries, scripts, the file's identity
// behind bind mounts and chroots, deleted binaries, fd-relative execs, and
// the context every event of a known process carries.

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/sensor"
)

// waiting is a process that runs until the test closes its stdin.
type waiting struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startWaiting(t *testing.T, cmd *exec.Cmd) *waiting {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	w := &waiting{cmd: cmd, stdin: in}
	t.Cleanup(w.stop)
	return w
}

func (w *waiting) pid() int { return w.cmd.Process.Pid }

// procExe is what /proc/PID/exe shows for the process.
func (w *waiting) procExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Readlink("/proc/" + itoa(w.pid()) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func (w *waiting) stop() {
	if w.stdin != nil {
		w.stdin.Close()
		w.stdin = nil
		w.cmd.Wait()
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// statOf returns a file's device, inode and owner.
func statOf(t *testing.T, path string) (dev, ino uint64, uid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev, st.Ino, st.Uid
}

func mntNS(t *testing.T, pid int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+itoa(pid)+"/ns/mnt", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestFilelessExec: a program run from a memfd is named the way /proc names
// it, "/memfd:NAME (deleted)", whichever way it was executed, both by the
// sensor and for a process seeded from /proc at start.
func TestFilelessExec(t *testing.T) {
	h := helper(t)
	early := startWaiting(t, exec.Command(h, "memfd-execveat", "early"))
	for i := 0; early.procExe(t) != "/memfd:early (deleted)"; i++ {
		if i > 3000 {
			t.Fatalf("the early process never ran from its memfd: %q", early.procExe(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, c := startSensor(t, sensor.Config{})
	for _, mode := range []string{"memfd-execveat", "memfd-fexecve", "memfd-proc"} {
		t.Run(mode, func(t *testing.T) {
			name := "pw-" + mode
			w := startWaiting(t, exec.Command(h, mode, name))
			ev := c.waitFor(t, "exec from memfd", func(ev *event.Event) bool {
				return ev.PID == uint32(w.pid()) && ev.Type == event.TypeExec && len(ev.Args) == 2 && ev.Args[1] == "wait"
			})
			want := "/memfd:" + name + " (deleted)"
			if got := w.procExe(t); got != want {
				t.Fatalf("/proc shows %q, want %q", got, want)
			}
			if string(ev.Exe) != want {
				t.Errorf("exe = %q, want %q", ev.Exe, want)
			}
			dev, ino, _ := statOf(t, "/proc/"+itoa(w.pid())+"/exe")
			if ev.ExeDev != dev || ev.ExeIno != ino || ev.ExeFS != "tmpfs" || string(ev.ExeOrigin) != "/memfd:"+name {
				t.Errorf("identity dev %d ino %d fs %q origin %q, want %d %d tmpfs /memfd:%s", ev.ExeDev, ev.ExeIno, ev.ExeFS, ev.ExeOrigin, dev, ino, name)
			}
			w.stop()
			exit := c.waitFor(t, "exit", pidIs(w.pid(), event.TypeExit))
			if string(exit.Exe) != want {
				t.Errorf("exit exe = %q, want %q", exit.Exe, want)
			}
		})
	}
	t.Run("seeded", func(t *testing.T) {
		early.stop()
		exit := c.waitFor(t, "exit", pidIs(early.pid(), event.TypeExit))
		if string(exit.Exe) != "/memfd:early (deleted)" || exit.ExeFS != "tmpfs" || exit.ExeOrigin != "/memfd:early" {
			t.Errorf("seeded process: exe %q fs %q origin %q", exit.Exe, exit.ExeFS, exit.ExeOrigin)
		}
		if !slices.Equal(exit.Args, texts("memfd-child", "wait")) {
			t.Errorf("seeded process: args %q", exit.Args)
		}
	})
}

// TestScript: a "#!" script executed directly names the script; an
// interpreter given the script as an argument does not.
func TestScript(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	dir := publicDir(t)
	script := filepath.Join(dir, "x.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	shell, _ := filepath.EvalSymlinks("/bin/sh")

	relative := exec.Command("./x.sh", "a")
	relative.Dir = dir
	for _, tt := range []struct {
		name   string
		cmd    *exec.Cmd
		script string
	}{
		{"direct", exec.Command(script, "a"), script},
		{"relative", relative, script},
		{"execveat dirfd", exec.Command(h, "execveat-dir", dir, "x.sh"), script},
		{"as an argument", exec.Command("/bin/sh", script, "a"), ""},
		{"memfd by /proc/self/fd", exec.Command(h, "memfd-script-proc", "pw-script"), "/memfd:pw-script (deleted)"},
		{"memfd by execveat", exec.Command(h, "memfd-script-fd", "pw-script2"), "/memfd:pw-script2 (deleted)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pid := run(t, tt.cmd)
			ev := c.waitFor(t, "exec of the shell", func(ev *event.Event) bool {
				return ev.PID == uint32(pid) && ev.Type == event.TypeExec && string(ev.Exe) == shell
			})
			if string(ev.Script) != tt.script {
				t.Errorf("script = %q, want %q (filename %q)", ev.Script, tt.script, ev.Filename)
			}
			exit := c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
			if string(exit.Script) != tt.script {
				t.Errorf("exit script = %q, want %q", exit.Script, tt.script)
			}
		})
	}
}

// TestExeIdentityBehindABindMount: in a private mount namespace a copy of a
// binary bind-mounted over /usr/bin/true runs as "/usr/bin/true"; its
// identity still shows the copy: device, inode, owner and origin.
func TestExeIdentityBehindABindMount(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is needed")
	}
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	dir := publicDir(t)
	fake := filepath.Join(dir, "fake-true")
	copyFile(t, h, fake, 0o755)
	if err := os.Chown(fake, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	dev, ino, _ := statOf(t, fake)
	origin, fstype := originOf(t, fake)

	cmd := exec.Command("unshare", "-m", "sh", "-c", "mount --bind "+fake+" /usr/bin/true && exec /usr/bin/true exit3")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("run the bind-mounted copy: %v: %s", err, out)
	}
	ev := c.waitFor(t, "exec of the fake true", func(ev *event.Event) bool {
		return ev.Type == event.TypeExec && ev.Exe == "/usr/bin/true" && len(ev.Args) == 2 && ev.Args[1] == "exit3"
	})
	if ev.ExeDev != dev || ev.ExeIno != ino || ev.ExeOwner == nil || *ev.ExeOwner != nobody {
		t.Errorf("identity dev %d ino %d owner %v, want %d %d %d", ev.ExeDev, ev.ExeIno, ev.ExeOwner, dev, ino, nobody)
	}
	if string(ev.ExeOrigin) != origin || ev.ExeFS != fstype {
		t.Errorf("origin %q on %q, want %q on %q", ev.ExeOrigin, ev.ExeFS, origin, fstype)
	}
	if ev.MntNS == 0 || ev.MntNS == mntNS(t, os.Getpid()) {
		t.Errorf("mnt_ns = %d, want the private namespace's, not ours (%d)", ev.MntNS, mntNS(t, os.Getpid()))
	}
	exit := c.waitFor(t, "exit", pidIs(int(ev.PID), event.TypeExit))
	if exit.Exe != "/usr/bin/true" || exit.ExeIno != ino || string(exit.ExeOrigin) != origin {
		t.Errorf("exit: exe %q ino %d origin %q", exit.Exe, exit.ExeIno, exit.ExeOrigin)
	}

	// The same as an unprivileged user, in a user and mount namespace of
	// its own: the identity is the file's, whatever the namespace shows.
	cmd = asNobody(exec.Command("unshare", "-Urm", "sh", "-c", "mount --bind "+fake+" /usr/bin/true && exec /usr/bin/true exit3 unprivileged"))
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("run the bind-mounted copy as nobody: %v: %s", err, out)
	}
	ev = c.waitFor(t, "unprivileged exec of the fake true", func(ev *event.Event) bool {
		return ev.Type == event.TypeExec && ev.Exe == "/usr/bin/true" && len(ev.Args) == 3 && ev.Args[2] == "unprivileged"
	})
	if ev.UID != nobody || ev.ExeIno != ino || ev.ExeDev != dev || ev.ExeOwner == nil || *ev.ExeOwner != nobody ||
		string(ev.ExeOrigin) != origin || ev.MntNS == mntNS(t, os.Getpid()) {
		t.Errorf("unprivileged: uid %d ino %d dev %d owner %v origin %q ns %d", ev.UID, ev.ExeIno, ev.ExeDev, ev.ExeOwner, ev.ExeOrigin, ev.MntNS)
	}

	// The real /usr/bin/true, run here, has its own identity.
	pid := run(t, exec.Command("/usr/bin/true"))
	real := c.waitFor(t, "exec of true", pidIs(pid, event.TypeExec))
	rdev, rino, rowner := statOf(t, "/usr/bin/true")
	if real.ExeDev != rdev || real.ExeIno != rino || real.ExeOwner == nil || *real.ExeOwner != rowner || real.MntNS != mntNS(t, os.Getpid()) {
		t.Errorf("real true: dev %d ino %d owner %v ns %d", real.ExeDev, real.ExeIno, real.ExeOwner, real.MntNS)
	}
}

// originOf returns where a file lives within its filesystem, and that
// filesystem's type, from our mount table: the longest mount point above it.
func originOf(t *testing.T, path string) (string, string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var best, root, fstype string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		mp := f[4]
		if (mp == "/" || path == mp || strings.HasPrefix(path, mp+"/")) && len(mp) >= len(best) {
			best, root = mp, f[3]
			fstype = f[slices.Index(f, "-")+1]
		}
	}
	rest := strings.TrimPrefix(path, best)
	if best == "/" {
		rest = path
	}
	return filepath.Join(root, rest), fstype
}

// TestChroot: a binary run in a chroot is named by its real path, not the
// path inside the chroot.
func TestChroot(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	root := publicDir(t)
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "prog")
	copyFile(t, h, bin, 0o755)
	cmd := exec.Command("/bin/prog", "exit3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	pid := run(t, cmd)
	ev := c.waitFor(t, "exec in the chroot", pidIs(pid, event.TypeExec))
	origin, fstype := originOf(t, bin)
	_, ino, _ := statOf(t, bin)
	if string(ev.Exe) != bin || string(ev.ExeOrigin) != origin || ev.ExeFS != fstype || ev.ExeIno != ino {
		t.Errorf("exe %q origin %q fs %q ino %d, want %q %q %q %d", ev.Exe, ev.ExeOrigin, ev.ExeFS, ev.ExeIno, bin, origin, fstype, ino)
	}
	if ev.Filename != "/bin/prog" {
		t.Errorf("filename = %q, want what the caller asked for", ev.Filename)
	}

	// A script the chrooted process runs by its absolute name inside the
	// chroot is named by its real path, and so is a failed exec.
	script := filepath.Join(root, "bin", "s.sh")
	if err := os.WriteFile(script, []byte("#!/bin/prog\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path string
		outcome    event.Outcome
	}{{"script", "/bin/s.sh", event.Success}, {"failed exec", "/bin/../../missing", event.Failure}} {
		cmd := exec.Command(tt.path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		pid := 0
		if err := cmd.Start(); err == nil {
			pid = cmd.Process.Pid
			cmd.Wait()
		}
		ev := c.waitFor(t, tt.name+" in the chroot", func(ev *event.Event) bool {
			return ev.Type == event.TypeExec && ev.Outcome == tt.outcome && string(ev.Filename) == tt.path &&
				(pid == 0 || ev.PID == uint32(pid))
		})
		got, want := ev.Script, event.Text(script)
		if tt.outcome == event.Failure {
			got, want = ev.Exe, event.Text(filepath.Join(root, "missing"))
		}
		if got != want {
			t.Errorf("%s: %q, want %q", tt.name, got, want)
		}
	}
}

// TestDeletedExe: a binary deleted while it runs is marked " (deleted)" in
// the events reported after, by the sensor and for a seeded process.
func TestDeletedExe(t *testing.T) {
	h := helper(t)
	dir := publicDir(t)
	early := filepath.Join(dir, "early")
	copyFile(t, h, early, 0o755)
	ew := startWaiting(t, exec.Command(early, "wait"))
	if err := os.Remove(early); err != nil {
		t.Fatal(err)
	}
	_, c := startSensor(t, sensor.Config{})

	bin := filepath.Join(dir, "doomed")
	copyFile(t, h, bin, 0o755)
	w := startWaiting(t, exec.Command(bin, "wait"))
	ev := c.waitFor(t, "exec", pidIs(w.pid(), event.TypeExec))
	if string(ev.Exe) != bin {
		t.Errorf("exe before deletion = %q", ev.Exe)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	// A harmless file now takes the path.
	copyFile(t, "/bin/true", bin, 0o755)
	if got := w.procExe(t); got != bin+" (deleted)" {
		t.Fatalf("/proc shows %q", got)
	}
	w.stop()
	exit := c.waitFor(t, "exit", pidIs(w.pid(), event.TypeExit))
	if string(exit.Exe) != bin+" (deleted)" {
		t.Errorf("exit exe = %q, want %q", exit.Exe, bin+" (deleted)")
	}

	ew.stop()
	exit = c.waitFor(t, "exit", pidIs(ew.pid(), event.TypeExit))
	if string(exit.Exe) != early+" (deleted)" {
		t.Errorf("seeded exit exe = %q, want %q", exit.Exe, early+" (deleted)")
	}
}

// TestExecveatDirfd: execveat relative to a directory fd names the file by
// its absolute path, whether the exec fails or succeeds.
func TestExecveatDirfd(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	dir := publicDir(t)
	copyFile(t, h, filepath.Join(dir, "prog"), 0o755)

	pid := run(t, exec.Command(h, "execveat-dir", dir, "missing"))
	ev := c.waitFor(t, "failed execveat", func(ev *event.Event) bool {
		return ev.PID == uint32(pid) && ev.Type == event.TypeExec && ev.Outcome == event.Failure
	})
	if want := filepath.Join(dir, "missing"); string(ev.Exe) != want || ev.Errno != "ENOENT" {
		t.Errorf("failed execveat: exe %q errno %s, want %q ENOENT", ev.Exe, ev.Errno, want)
	}

	pid = run(t, exec.Command(h, "execveat-dir", dir, "prog"))
	ev = c.waitFor(t, "execveat", func(ev *event.Event) bool {
		return ev.PID == uint32(pid) && ev.Type == event.TypeExec && ev.Outcome == event.Success && len(ev.Args) == 2 && ev.Args[1] == "noop"
	})
	if want := filepath.Join(dir, "prog"); string(ev.Exe) != want {
		t.Errorf("execveat: exe %q, want %q", ev.Exe, want)
	}
}

// TestContextOnEveryEvent: the exit and escalation of a known process carry
// the argv, cwd and tty of its exec.
func TestContextOnEveryEvent(t *testing.T) {
	_, c := startSensor(t, sensor.Config{})
	h := helper(t)
	dir := publicDir(t)

	tty, ttyName := openPTY(t)
	cmd := exec.Command(h, "exit3", "context")
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	pid := run(t, cmd)
	exit := c.waitFor(t, "exit", pidIs(pid, event.TypeExit))
	if !slices.Equal(exit.Args, texts(h, "exit3", "context")) || string(exit.Cwd) != dir || string(exit.TTY) != ttyName {
		t.Errorf("exit: args %q cwd %q tty %q, want %q %q %q", exit.Args, exit.Cwd, exit.TTY, []string{h, "exit3", "context"}, dir, ttyName)
	}

	suid := filepath.Join(dir, "suid-helper")
	copyFile(t, h, suid, 0o755)
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain-helper")
	copyFile(t, h, plain, 0o755)
	for _, tt := range []struct {
		name string
		cmd  *exec.Cmd
		args []string
	}{
		{"suid-exec", asNobody(exec.Command(suid, "id", "x")), []string{suid, "id", "x"}},
		{"setuid", asNobody(exec.Command(plain, "setuid0", "y")), []string{plain, "setuid0", "y"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cmd.Dir = dir
			pid := run(t, tt.cmd)
			ev := c.waitFor(t, "escalation", pidIs(pid, event.TypeEscalation))
			if !slices.Equal(ev.Args, texts(tt.args...)) || string(ev.Cwd) != dir {
				t.Errorf("escalation: args %q cwd %q", ev.Args, ev.Cwd)
			}
			if ev.ExeIno == 0 || ev.ExeOrigin == "" {
				t.Errorf("escalation: no exe identity: ino %d origin %q", ev.ExeIno, ev.ExeOrigin)
			}
		})
	}
}

// openPTY opens a pseudo-terminal and returns its child side and its name
// as the sensor reports it ("pts/N").
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	go io.Copy(io.Discard, ptmx)
	return pts, "pts/" + itoa(n)
}

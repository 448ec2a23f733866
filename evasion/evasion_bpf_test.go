package evasion_test

// One test per class of issue 9 (docs/evasions.md), each with real
// processes run as uid 65534 (the attacker) or root, judged by the default
// rules under the real sensor.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/procwatch/procwatch/event"
	"github.com/procwatch/procwatch/rules"
)

// Class 1: a program run from an anonymous memory file is named as /proc
// names it and raises exec-from-writable-dir; no skip silences it.
func TestFilelessExec(t *testing.T) {
	o := watch(t, defaultRules(t, `commands: [memfd-child, evader]
paths: ["/memfd:*", /var/lib]`))
	pid := run(t, asNobody(exec.Command(evader(t), "memfd", "payload")))
	in := o.waitIncident(t, "exec from a memfd", incidentOf("exec-from-writable-dir", pid))
	if in.Process.Exe != "/memfd:payload (deleted)" || in.Severity != rules.SeverityMedium || in.Process.UID != nobody {
		t.Errorf("incident: exe %q severity %v uid %d", in.Process.Exe, in.Severity, in.Process.UID)
	}
}

// Class 2: a script run directly from /tmp raises an incident naming the
// script; an interpreter given the script as an argument raises none.
func TestScriptFromTmp(t *testing.T) {
	o := watch(t, defaultRules(t, "commands: [dash, sh, x.sh]"))
	dir := writableDir(t, "/tmp")
	script := filepath.Join(dir, "x.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(script, nobody, nobody)
	pid := run(t, asNobody(exec.Command(script)))
	in := o.waitIncident(t, "a script run from /tmp", incidentOf("exec-from-writable-dir", pid))
	shell, _ := filepath.EvalSymlinks("/bin/sh")
	if string(in.Process.Script) != script || string(in.Process.Exe) != shell || in.Severity != rules.SeverityMedium {
		t.Errorf("incident: script %q exe %q severity %v", in.Process.Script, in.Process.Exe, in.Severity)
	}
	pid = run(t, asNobody(exec.Command("/bin/sh", script)))
	o.noIncident(t, "sh /tmp/x.sh", pid)
}

// Class 3: the dynamic loader running a program from /var/tmp raises
// exec-via-dynamic-loader (high); the loader listing a system binary, as
// ldd does, raises nothing.
func TestDynamicLoader(t *testing.T) {
	o := watch(t, defaultRules(t, ""))
	loader := "/lib64/ld-linux-x86-64.so.2"
	if _, err := os.Stat(loader); err != nil {
		t.Fatalf("this test needs the x86-64 glibc loader: %v", err)
	}
	prog := place(t, "/usr/bin/true", filepath.Join(writableDir(t, "/var/tmp"), "prog"), 0o755, nobody)
	pid := run(t, asNobody(exec.Command(loader, prog)))
	in := o.waitIncident(t, "the loader running /var/tmp/prog", incidentOf("exec-via-dynamic-loader", pid))
	if in.Severity != rules.SeverityHigh || !slices.Contains(in.Process.Args, event.Text(prog)) || !strings.Contains(string(in.Summary), prog) {
		t.Errorf("incident: severity %v args %q summary %q", in.Severity, in.Process.Args, in.Summary)
	}

	rel := asNobody(exec.Command(loader, "./prog"))
	rel.Dir = filepath.Dir(prog)
	pid = run(t, rel)
	o.waitIncident(t, "the loader running ./prog in /var/tmp", incidentOf("exec-via-dynamic-loader", pid))

	pid = run(t, asNobody(exec.Command(loader, "--list", "/usr/bin/true")))
	o.noIncident(t, "ld.so --list /usr/bin/true", pid)
}

// Class 4: a copy from /tmp bind-mounted over /usr/bin/true in a user's
// private mount namespace raises exec-from-writable-dir by its origin; a
// copy from anywhere bind-mounted there never meets a path skip for
// /usr/bin/true, which the real one does meet.
func TestBindMountOverASystemBinary(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is needed")
	}
	o := watch(t, defaultRules(t, "commands: [true]\npaths: [/usr/bin/true]")+`
  - name: usr-bin
    type: bin-execution
    match: {paths: [/usr/bin]}
    severity: {success: low}
    skip: {paths: [/usr/bin/true], commands: [true]}
`)
	fake := place(t, evader(t), filepath.Join(writableDir(t, "/tmp"), "fake-true"), 0o755, nobody)
	bind := func(src, code string) {
		cmd := asNobody(exec.Command("unshare", "-Urm", "sh", "-c", "mount --bind "+src+" /usr/bin/true && exec /usr/bin/true exit "+code))
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(err.Error(), "exit status "+code) {
			t.Fatalf("run the bind-mounted copy of %s: %v: %s", src, err, out)
		}
	}
	isFake := func(rule, code string) func(*rules.Incident) bool {
		return func(in *rules.Incident) bool {
			return in.Rule == rule && in.Process.Exe == "/usr/bin/true" && slices.Equal(args(&in.Process), []string{"/usr/bin/true", "exit", code})
		}
	}
	bind(fake, "3")
	in := o.waitIncident(t, "the /tmp copy run as /usr/bin/true", isFake("exec-from-writable-dir", "3"))
	if string(in.Process.ExeOrigin) != fake || in.Process.UID != nobody || in.Severity != rules.SeverityMedium {
		t.Errorf("incident: origin %q uid %d severity %v", in.Process.ExeOrigin, in.Process.UID, in.Severity)
	}
	o.waitIncident(t, "the /tmp copy under the usr-bin rule despite its skips", isFake("usr-bin", "3"))

	other := place(t, evader(t), filepath.Join(safeDir(t), "not-true"), 0o755, nobody)
	bind(other, "4")
	o.waitIncident(t, "a copy from /var/lib run as /usr/bin/true, despite the path skip", isFake("usr-bin", "4"))

	pid := run(t, asNobody(exec.Command("/usr/bin/true")))
	if n := o.noIncident(t, "the real /usr/bin/true", pid); n == 0 {
		t.Error("the real /usr/bin/true was not skipped: the skip itself does not work")
	}
}

// Class 4, chroots: a binary run in a chroot is judged by where it really
// lives, so a path skip for the name it has inside does not apply.
func TestChroot(t *testing.T) {
	o := watch(t, defaultRules(t, "")+`
  - name: var-lib
    type: bin-execution
    match: {paths: [/var/lib, /bin]}
    severity: {success: low}
    skip: {paths: [/bin/prog]}
`)
	root := safeDir(t)
	prog := place(t, evader(t), filepath.Join(root, "bin", "prog"), 0o755, nobody)
	pid := run(t, asNobody(exec.Command("unshare", "-Ur", "chroot", root, "/bin/prog", "exit", "0")))
	_ = pid
	in := o.waitIncident(t, "the chrooted program", func(in *rules.Incident) bool {
		return in.Rule == "var-lib" && string(in.Process.Exe) == prog
	})
	if in.Process.UID != nobody {
		t.Errorf("incident uid %d", in.Process.UID)
	}
}

// Class 5: a binary deleted while it runs is reported " (deleted)" and a
// skip for its path (where a harmless file now lies) does not cover it.
func TestDeletedBinary(t *testing.T) {
	dir := safeDir(t)
	doomed := place(t, evader(t), filepath.Join(dir, "doomed"), 0o755, nobody)
	kept := place(t, evader(t), filepath.Join(dir, "kept"), 0o755, nobody)
	o := watch(t, defaultRules(t, fmt.Sprintf("paths: [%s, %s]", doomed, kept)))
	pid := crash(t, o, asNobody(exec.Command(doomed, "wait")), syscall.SIGSEGV, func() {
		if err := os.Remove(doomed); err != nil {
			t.Fatal(err)
		}
		place(t, "/usr/bin/true", doomed, 0o755, 0)
	})
	in := o.waitIncident(t, "the crash of the deleted binary", incidentOf("abnormal-termination", pid))
	if string(in.Process.Exe) != doomed+" (deleted)" || in.Process.Signal != "SIGSEGV" || in.Severity != rules.SeverityMedium {
		t.Errorf("incident: exe %q signal %q severity %v", in.Process.Exe, in.Process.Signal, in.Severity)
	}
	pid = crash(t, o, asNobody(exec.Command(kept, "wait")), syscall.SIGSEGV, nil)
	if n := o.noIncident(t, "the crash of a skipped binary still on disk", pid); n == 0 {
		t.Error("the kept binary's crash was not skipped: the skip itself does not work")
	}
}

// Class 6: names a process chooses never meet a command skip: a /tmp
// binary named like a skipped command, a symlink with that name, a comm
// set with prctl; and a refused exec is judged by the file it asked for.
func TestChosenNames(t *testing.T) {
	o := watch(t, defaultRules(t, "commands: [nice, evader, procwatch-evasion]"))
	tmp := writableDir(t, "/tmp")
	nice := place(t, evader(t), filepath.Join(tmp, "nice"), 0o755, nobody)
	pid := run(t, asNobody(exec.Command(nice)))
	o.waitIncident(t, "/tmp/.../nice despite the skip of nice", incidentOf("exec-from-writable-dir", pid))

	real := place(t, evader(t), filepath.Join(tmp, "real"), 0o755, nobody)
	link := filepath.Join(safeDir(t), "nice")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	pid = run(t, asNobody(exec.Command(link)))
	in := o.waitIncident(t, "a symlink named nice to a /tmp binary", incidentOf("exec-from-writable-dir", pid))
	if string(in.Process.Exe) != real {
		t.Errorf("exe %q, want the resolved %q", in.Process.Exe, real)
	}

	renamer := place(t, evader(t), filepath.Join(safeDir(t), "renamer"), 0o755, nobody)
	pid = run(t, asNobody(exec.Command(renamer, "rename", "nice")))
	in = o.waitIncident(t, "a crash of a process renamed nice", incidentOf("abnormal-termination", pid))
	if in.Process.Comm != "nice" {
		t.Errorf("comm %q, want nice (the test must rename)", in.Process.Comm)
	}
	// The real name does meet the skip.
	o2 := watch(t, defaultRules(t, "commands: [renamer]"))
	pid = run(t, asNobody(exec.Command(renamer, "rename", "nice")))
	if n := o2.noIncident(t, "a crash of renamer under a skip of renamer", pid); n == 0 {
		t.Error("renamer's crash was not skipped: the skip itself does not work")
	}

	noexec := place(t, evader(t), filepath.Join(tmp, "noexec"), 0o644, nobody)
	pid = run(t, asNobody(exec.Command(evader(t), "execveat", tmp, "noexec")))
	in = o.waitIncident(t, "a refused exec of a /tmp file", incidentOf("exec-from-writable-dir", pid))
	if string(in.Process.Exe) != noexec || in.Outcome != event.Failure || in.Severity != rules.SeverityLow {
		t.Errorf("incident: exe %q outcome %s severity %v", in.Process.Exe, in.Outcome, in.Severity)
	}
}

// Class 7: the default go-build skip covers only binaries root owns: one
// planted by another user under a go-build directory raises an incident.
func TestGoBuildSkipNeedsRoot(t *testing.T) {
	o := watch(t, defaultRules(t, ""))
	planted := place(t, evader(t), filepath.Join(writableDir(t, "/tmp"), "b001", "exe", "prog"), 0o755, nobody)
	if !strings.HasPrefix(planted, "/tmp/procwatch-evasion-") {
		t.Fatal(planted)
	}
	goBuild := func(owner int) string {
		dir, err := os.MkdirTemp("/tmp", "go-build")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		return place(t, evader(t), filepath.Join(dir, "b001", "exe", "prog"), 0o755, owner)
	}
	mine := goBuild(nobody)
	pid := run(t, asNobody(exec.Command(mine)))
	in := o.waitIncident(t, "a go-build binary owned by uid 65534", incidentOf("exec-from-writable-dir", pid))
	if in.Severity != rules.SeverityMedium {
		t.Errorf("severity %v", in.Severity)
	}
	roots := goBuild(0)
	pid = run(t, exec.Command(roots))
	if n := o.noIncident(t, "root's own go-build binary", pid); n == 0 {
		t.Error("root's go-build binary was not skipped")
	}
}

// Class 8: a refused execveat relative to a directory fd is judged by the
// absolute path of its target.
func TestExecveatDirfd(t *testing.T) {
	o := watch(t, defaultRules(t, ""))
	tmp := writableDir(t, "/tmp")
	pid := run(t, asNobody(exec.Command(evader(t), "execveat", tmp, "missing")))
	in := o.waitIncident(t, "a refused execveat in /tmp", incidentOf("exec-from-writable-dir", pid))
	if string(in.Process.Exe) != filepath.Join(tmp, "missing") || in.Process.Errno != "ENOENT" || in.Severity != rules.SeverityLow {
		t.Errorf("incident: exe %q errno %s severity %v", in.Process.Exe, in.Process.Errno, in.Severity)
	}
}

// Class 9: an escalation incident carries its command line, says only what
// happened, and learns how its process ended; different runs, crashes and
// exit codes stay different incidents.
func TestIncidentContext(t *testing.T) {
	o := watch(t, defaultRules(t, "")+`
  - name: codes
    type: termination-failure
    match: {exit_codes: [3, 4], paths: [/var/lib]}
    severity: {failure: low}
`)
	dir := safeDir(t)
	suid := place(t, evader(t), filepath.Join(dir, "suid"), 0o755|os.ModeSetuid, 0)
	pid := run(t, asNobody(exec.Command(suid, "exit", "3")))
	in := o.waitIncident(t, "the set-uid run with its fate", func(in *rules.Incident) bool {
		return incidentOf("root-escalation", pid)(in) && in.Fate != nil
	})
	want := "uid 65534 (nobody) ran set-uid " + suid + ", gaining euid 0: " + suid + " exit 3; the process exited with code 3 after "
	if in.Severity != rules.SeverityHigh || !strings.HasPrefix(string(in.Summary), want) || in.Fate.ExitCode == nil ||
		*in.Fate.ExitCode != 3 || in.Fate.DurationNS <= 0 || in.Process.Method != event.MethodSuidExec {
		t.Errorf("incident: severity %v summary %q fate %+v", in.Severity, in.Summary, in.Fate)
	}
	pid2 := run(t, asNobody(exec.Command(suid, "exit", "4")))
	in2 := o.waitIncident(t, "a second set-uid run", incidentOf("root-escalation", pid2))
	if in2.ID == in.ID {
		t.Error("two set-uid runs with different arguments folded into one incident")
	}

	plain := place(t, evader(t), filepath.Join(dir, "plain"), 0o755, nobody)
	pid = run(t, asNobody(exec.Command(plain, "setuid0")))
	in = o.waitIncident(t, "a refused setuid(0)", incidentOf("root-escalation", pid))
	if in.Severity != rules.SeverityCritical || in.Outcome != event.Failure || !strings.Contains(string(in.Summary), "was refused root via setuid (EPERM)") {
		t.Errorf("refused: severity %v summary %q", in.Severity, in.Summary)
	}

	var ids []rules.ID
	for _, sig := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGABRT} {
		pid := crash(t, o, asNobody(exec.Command(plain, "wait")), sig, nil)
		ids = append(ids, o.waitIncident(t, "a crash", incidentOf("abnormal-termination", pid)).ID)
	}
	for _, code := range []byte{3, 4} {
		cmd := asNobody(exec.Command(plain, "code"))
		cmd.Stdin = strings.NewReader(string([]byte{code}))
		pid := run(t, cmd)
		ids = append(ids, o.waitIncident(t, "an exit code", incidentOf("codes", pid)).ID)
	}
	if ids[0] == ids[1] || ids[2] == ids[3] {
		t.Errorf("SIGSEGV and SIGABRT, or codes 3 and 4, folded together: %v", ids)
	}
}

// Class 10: a flood of distinct /tmp binaries from one user, each in a
// directory of its own, makes at most 16 incidents and one flood incident
// whose count and distinct figure hold the rest; an escalation in the
// middle of it ranks above.
func TestFloodAggregates(t *testing.T) {
	o := watch(t, defaultRules(t, ""))
	tmp := writableDir(t, "/tmp")
	first := place(t, evader(t), filepath.Join(tmp, "d0", "x0"), 0o755, nobody)
	const n = 150
	paths := []string{first}
	for i := 1; i < n; i++ {
		p := filepath.Join(tmp, fmt.Sprintf("d%d", i), fmt.Sprintf("x%d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Link(first, p); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	suid := place(t, evader(t), filepath.Join(safeDir(t), "suid"), 0o755|os.ModeSetuid, 0)
	var last, esc int
	for i, p := range paths {
		last = run(t, asNobody(exec.Command(p)))
		if i == n/2 {
			esc = run(t, asNobody(exec.Command(suid, "exit", "0")))
		}
	}
	o.judgedAll(t, last)
	// Other tests on the host may run binaries from /tmp as uid 65534 too:
	// they count toward the same threshold and may even start the flood,
	// so the flood incident is found by user and scope, and every exec of
	// this test that did not get an incident of its own must be in it.
	mine := o.latest(func(in *rules.Incident) bool {
		return in.Rule == "exec-from-writable-dir" && in.Distinct == 0 && strings.HasPrefix(string(in.Process.Exe), tmp+"/")
	})
	floods := o.latest(func(in *rules.Incident) bool {
		return in.Rule == "exec-from-writable-dir" && in.Distinct > 0 && in.Process.UID == nobody && in.Scope == "/tmp"
	})
	if len(mine) > 16 || len(floods) != 1 {
		t.Fatalf("%d execs made %d incidents of their own and %d flood incidents, want at most 16 and one", n, len(mine), len(floods))
	}
	flood := floods[0]
	if flood.Count < uint64(n-len(mine)) || flood.Distinct < uint64(n-len(mine)) || len(flood.Sample) != 10 ||
		flood.Severity != rules.SeverityMedium || !strings.HasPrefix(string(flood.Summary), "flood: uid 65534 (nobody) executed ") {
		t.Errorf("flood incident: count %d distinct %d sample %d severity %v summary %q; %d execs had their own",
			flood.Count, flood.Distinct, len(flood.Sample), flood.Severity, flood.Summary, len(mine))
	}
	e := o.waitIncident(t, "the escalation during the flood", incidentOf("root-escalation", esc))
	if e.Severity <= flood.Severity {
		t.Errorf("escalation %v does not rank above the flood's %v", e.Severity, flood.Severity)
	}
}

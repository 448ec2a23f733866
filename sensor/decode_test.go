//go:build linux

package sensor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/procwatch/procwatch/event"
)

// record builds a ring buffer record the way the BPF side does: a header and
// the sections, paths leaf first.
func record(h rawHeader, exe, filename, args, cwd, tty, cgroup []byte) []byte {
	h.ExeLen, h.FilenameLen, h.ArgsLen = uint16(len(exe)), uint16(len(filename)), uint16(len(args))
	h.CwdLen, h.TtyLen, h.CgroupLen = uint16(len(cwd)), uint16(len(tty)), uint16(len(cgroup))
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&h)), headerSize)
	return slices.Concat(raw, exe, filename, args, cwd, tty, cgroup)
}

// identityRecord builds an exec record with every section, identity included.
func identityRecord(h rawHeader, exe, origin, fs, filename, args, cwd, dir []byte) []byte {
	h.ExeLen, h.OriginLen, h.FsLen, h.FilenameLen = uint16(len(exe)), uint16(len(origin)), uint16(len(fs)), uint16(len(filename))
	h.ArgsLen, h.CwdLen, h.DirLen = uint16(len(args)), uint16(len(cwd)), uint16(len(dir))
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&h)), headerSize)
	return slices.Concat(raw, exe, origin, fs, filename, args, cwd, dir)
}

func execRecord() []byte {
	h := rawHeader{Type: rawExec, Pid: 4242, Tid: 4242, Ppid: 1, Uid: 1000, Euid: 1000, TsBootNs: 1e9}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&h.Comm[0])), 16), "curl")
	return record(h,
		[]byte("curl\x00bin\x00usr\x00"),
		[]byte("/usr/bin/curl\x00"),
		[]byte("curl\x00-s\x00https://example.com/\x00"),
		[]byte("alice\x00home\x00"),
		[]byte("pts3\x00"),
		[]byte("docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\x00system.slice\x00"))
}

// decodeRaw decodes one record as the reader does and returns its events.
func decodeRaw(s *Sensor, raw []byte) []event.Event {
	var h rawHeader
	if decodeHeader(raw, &h) != nil {
		return nil
	}
	return s.decode(&h, raw[headerSize:], clock{}, nil)
}

// decodeOne decodes a record that must make exactly one event.
func decodeOne(t *testing.T, s *Sensor, raw []byte) event.Event {
	t.Helper()
	evs := decodeRaw(s, raw)
	if len(evs) != 1 {
		t.Fatalf("record made %d events, want 1: %+v", len(evs), evs)
	}
	return evs[0]
}

func newTestSensor() *Sensor {
	s := &Sensor{table: newProcTable("/nonexistent")}
	s.table.procs[1] = procInfo{ppid: 0, exe: "/sbin/init"}
	return s
}

func TestBuildExec(t *testing.T) {
	s := newTestSensor()
	ev := decodeOne(t, s, execRecord())
	want := event.Event{
		Type: event.TypeExec, PID: 4242, TID: 4242, PPID: 1, UID: 1000, EUID: 1000, Comm: "curl",
		Exe: "/usr/bin/curl", Filename: "/usr/bin/curl", Args: []event.Text{"curl", "-s", "https://example.com/"},
		Cwd: "/home/alice", TTY: "pts/3",
		Cgroup:      "/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
		ContainerID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		ParentExe:   "/sbin/init", Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init"}}, Outcome: event.Success,
	}
	ev.Time = want.Time
	if !eventsEqual(ev, want) {
		t.Fatalf("got  %+v\nwant %+v", ev, want)
	}
	if info := s.table.procs[4242]; info.exe != "/usr/bin/curl" || info.ppid != 1 {
		t.Errorf("process table = %+v", info)
	}
}

func eventsEqual(a, b event.Event) bool {
	return a.Type == b.Type && a.PID == b.PID && a.PPID == b.PPID && a.Comm == b.Comm && a.Exe == b.Exe &&
		a.Filename == b.Filename && slices.Equal(a.Args, b.Args) && a.Cwd == b.Cwd && a.TTY == b.TTY &&
		a.Cgroup == b.Cgroup && a.ContainerID == b.ContainerID && a.ParentExe == b.ParentExe &&
		slices.Equal(a.Ancestors, b.Ancestors) && a.Outcome == b.Outcome
}

func TestMalformedRecords(t *testing.T) {
	good := execRecord()
	tests := []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"short header", good[:headerSize-1]},
		{"sections past the end", good[:headerSize+10]},
		{"unknown type", func() []byte {
			b := bytes.Clone(good)
			b[unsafe.Offsetof(rawHeader{}.Type)] = 99
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSensor()
			if evs := decodeRaw(s, tt.raw); len(evs) != 0 {
				t.Fatalf("malformed record delivered: %+v", evs)
			}
		})
	}
}

func FuzzBuild(f *testing.F) {
	f.Add(execRecord())
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := newTestSensor()
		decodeRaw(s, raw)
	})
}

func TestJoinPathAndArgs(t *testing.T) {
	if got := joinPath([]byte("c\x00b\x00a\x00")); got != "/a/b/c" {
		t.Errorf("joinPath = %q", got)
	}
	if got := joinPath(nil); got != "" {
		t.Errorf("joinPath(nil) = %q", got)
	}
	if got := splitArgs([]byte("a\x00\x00b")); !slices.Equal(got, []event.Text{"a", "", "b"}) {
		t.Errorf("splitArgs = %q", got)
	}
	if got := containerID("/kubepods/besteffort/pod1/cri-containerd-" + event.Text(bytes.Repeat([]byte("a"), 64)) + ".scope"); len(got) != 64 {
		t.Errorf("containerID = %q", got)
	}
	if got := containerID("/user.slice/user-1000.slice/session-2.scope"); got != "" {
		t.Errorf("containerID of a session = %q", got)
	}
}

func BenchmarkBuildExec(b *testing.B) {
	s := newTestSensor()
	rh := rawHeader{Type: rawExec, Pid: 4242, Tid: 4242, Ppid: 1, Uid: 1000, Euid: 1000, TsBootNs: 1e9,
		Flags: flagExeID, ExeDev: 254 << 20, ExeIno: 1234, MntNs: 4026531841}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rh.Comm[0])), 16), "curl")
	raw := identityRecord(rh, []byte("curl\x00bin\x00usr\x00"), []byte("curl\x00bin\x00usr\x00"), []byte("ext4\x00"),
		[]byte("/usr/bin/curl\x00"), []byte("curl\x00-s\x00https://example.com/\x00"), []byte("alice\x00home\x00"), nil)
	var h rawHeader
	var out []event.Event
	b.ReportAllocs()
	for b.Loop() {
		decodeHeader(raw, &h)
		out = s.decode(&h, raw[headerSize:], clock{}, out[:0])
	}
}

// TestUnexplainedEscalation feeds the decoder what a credential-swapping
// exploit looks like: a process known as uid 1000 that execs with root ids
// it never got through a suid exec or a set*uid call.
func TestUnexplainedEscalation(t *testing.T) {
	s := newTestSensor()
	var delivered []event.Event
	feed := func(h rawHeader, exe string) {
		raw := record(h, []byte(exe), nil, nil, nil, nil, nil)
		delivered = append(delivered, decodeRaw(s, raw)...)
	}
	// Fork and exec as uid 1000: explained, nothing raised.
	feed(rawHeader{Type: rawFork, Pid: 50, Ppid: 1, Uid: 1000, Euid: 1000}, "")
	feed(rawHeader{Type: rawExec, Pid: 50, Ppid: 1, Uid: 1000, Euid: 1000, OldUid: 1000, OldEuid: 1000, Flags: flagOldCreds}, "exploit\x00tmp\x00")
	// Then it execs a shell already holding root: unexplained.
	feed(rawHeader{Type: rawExec, Pid: 50, Ppid: 1, Uid: 0, Euid: 0, OldUid: 0, OldEuid: 0, Flags: flagOldCreds}, "sh\x00bin\x00")
	var esc []event.Event
	for _, ev := range delivered {
		if ev.Type == event.TypeEscalation {
			esc = append(esc, ev)
		}
	}
	if len(esc) != 1 || esc[0].Method != event.MethodUnexplained || *esc[0].OldUID != 1000 || *esc[0].NewEUID != 0 || esc[0].Exe != "/tmp/exploit" {
		t.Fatalf("escalations = %+v", esc)
	}
	// A later exit with root ids is now explained by what was reported.
	feed(rawHeader{Type: rawExit, Pid: 50, Ppid: 1, Uid: 0, Euid: 0}, "")
	if n := len(delivered); delivered[n-1].Type != event.TypeExit {
		t.Fatalf("exit raised another escalation: %+v", delivered[n-1])
	}

	// A granted setuid escalation explains later root ids.
	feed(rawHeader{Type: rawFork, Pid: 60, Ppid: 1, Uid: 1000, Euid: 1000}, "")
	feed(rawHeader{Type: rawEscalation, Pid: 60, Ppid: 1, Uid: 0, Euid: 0, Method: 2, OldUid: 1000, OldEuid: 1000}, "")
	before := len(delivered)
	feed(rawHeader{Type: rawExit, Pid: 60, Ppid: 1, Uid: 0, Euid: 0}, "")
	if len(delivered) != before+1 {
		t.Fatalf("explained escalation flagged: %+v", delivered[before:])
	}
}

func TestBuildIdentityAndScript(t *testing.T) {
	tests := []struct {
		name                  string
		h                     rawHeader
		exe, origin, filename string
		cwd, dir              string
		wantExe, wantOrigin   event.Text
		wantScript            event.Text
	}{
		{"bind mount", rawHeader{Flags: flagExeID}, "true\x00bin\x00usr\x00", "fake\x00tmp\x00", "/usr/bin/true\x00", "", "",
			"/usr/bin/true", "/tmp/fake", ""},
		{"origin same as exe", rawHeader{Flags: flagExeID | flagOriginSame | flagExeDeleted}, "x\x00tmp\x00", "", "/tmp/x\x00", "", "",
			"/tmp/x (deleted)", "/tmp/x", ""},
		{"memfd", rawHeader{Flags: flagExeID | flagExeDeleted}, "memfd:x\x00", "memfd:x\x00", "\x00", "", "",
			"/memfd:x (deleted)", "/memfd:x", ""},
		{"script", rawHeader{Flags: flagExeID | flagScript, Dirfd: -100}, "dash\x00bin\x00usr\x00", "dash\x00bin\x00usr\x00", "./x.sh\x00", "tmp\x00", "",
			"/usr/bin/dash", "/usr/bin/dash", "/tmp/x.sh"},
		{"script by dirfd", rawHeader{Flags: flagExeID | flagScript, Dirfd: 3}, "dash\x00bin\x00usr\x00", "dash\x00bin\x00usr\x00", "/dev/fd/3/x.sh\x00", "", "d\x00tmp\x00",
			"/usr/bin/dash", "/usr/bin/dash", "/tmp/d/x.sh"},
		{"script by fd", rawHeader{Flags: flagExeID | flagScript, Dirfd: 3}, "dash\x00bin\x00usr\x00", "dash\x00bin\x00usr\x00", "/dev/fd/3\x00", "", "x.sh\x00tmp\x00",
			"/usr/bin/dash", "/usr/bin/dash", "/tmp/x.sh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSensor()
			h := tt.h
			h.Type, h.Pid, h.Ppid, h.ExeDev, h.ExeIno, h.ExeOwner, h.MntNs = rawExec, 77, 1, 254<<20|3, 99, 1000, 4026531841
			raw := identityRecord(h, []byte(tt.exe), []byte(tt.origin), []byte("ext4\x00"), []byte(tt.filename), nil, []byte(tt.cwd), []byte(tt.dir))
			ev := decodeOne(t, s, raw)
			if ev.Exe != tt.wantExe || ev.ExeOrigin != tt.wantOrigin || ev.Script != tt.wantScript {
				t.Errorf("exe %q origin %q script %q, want %q %q %q", ev.Exe, ev.ExeOrigin, ev.Script, tt.wantExe, tt.wantOrigin, tt.wantScript)
			}
			if ev.ExeDev != unix.Mkdev(254, 3) || ev.ExeIno != 99 || ev.ExeOwner == nil || *ev.ExeOwner != 1000 || ev.ExeFS != "ext4" || ev.MntNS != 4026531841 {
				t.Errorf("identity dev %d ino %d owner %v fs %q ns %d", ev.ExeDev, ev.ExeIno, ev.ExeOwner, ev.ExeFS, ev.MntNS)
			}
			// The exit carries what the exec said.
			raw = record(rawHeader{Type: rawExit, Pid: 77, Ppid: 1}, nil, nil, nil, nil, nil, nil)
			exit := decodeOne(t, s, raw)
			if exit.Exe != tt.wantExe || exit.ExeOrigin != tt.wantOrigin || exit.Script != tt.wantScript || exit.ExeIno != 99 {
				t.Errorf("exit: exe %q origin %q script %q ino %d", exit.Exe, exit.ExeOrigin, exit.Script, exit.ExeIno)
			}
		})
	}
}

// fakeProc writes a /proc entry with the fields the table reads.
func fakeProc(t *testing.T, dir string, pid, ppid int, start uint64, exe string) {
	t.Helper()
	p := filepath.Join(dir, strconv.Itoa(pid))
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (x) S %d %d %d 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, ppid, pid, pid, start)
	if err := os.WriteFile(filepath.Join(p, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(p, "exe")); err != nil {
		t.Fatal(err)
	}
}

// TestPidReuse: an event of a process that has gone, whose pid now belongs
// to another, neither removes the new process nor lends it its ancestry.
func TestPidReuse(t *testing.T) {
	dir := t.TempDir()
	fakeProc(t, dir, 1, 0, 1, "/sbin/init")
	fakeProc(t, dir, 100, 1, 500, "/usr/bin/newcomer")
	s := &Sensor{table: newProcTable(dir)}
	s.table.seed()
	feed := func(h rawHeader) event.Event {
		raw := record(h, []byte("prog\x00bin\x00"), nil, nil, nil, nil, nil)
		return decodeOne(t, s, raw)
	}
	const tick = 1e9 / userHZ
	// The exit of the pid's previous owner (started at tick 400) arrives late.
	feed(rawHeader{Type: rawExit, Pid: 100, Ppid: 1, StartNs: 400 * tick})
	if info, ok := s.table.procs[100]; !ok || info.exe != "/usr/bin/newcomer" {
		t.Fatalf("the exit of an older process removed the new one: %+v %v", info, ok)
	}
	// A child of the previous owner gets no ancestry from the newcomer.
	ev := feed(rawHeader{Type: rawExec, Pid: 300, Ppid: 100, StartNs: 450 * tick, PstartNs: 400 * tick})
	if len(ev.Ancestors) != 0 || ev.ParentExe != "" {
		t.Errorf("orphan's ancestry grafted onto the newcomer: %+v", ev.Ancestors)
	}
	// A child of the newcomer gets it.
	ev = feed(rawHeader{Type: rawExec, Pid: 301, Ppid: 100, StartNs: 600 * tick, PstartNs: 500 * tick})
	if len(ev.Ancestors) != 2 || ev.Ancestors[0].Exe != "/usr/bin/newcomer" || ev.Ancestors[1].PID != 1 {
		t.Errorf("ancestors = %+v", ev.Ancestors)
	}
	// The newcomer's own exit removes it.
	feed(rawHeader{Type: rawExit, Pid: 100, Ppid: 1, StartNs: 500 * tick})
	if _, ok := s.table.procs[100]; ok {
		t.Error("the newcomer's exit did not remove it")
	}
}

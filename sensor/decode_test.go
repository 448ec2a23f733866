package sensor

import (
	"bytes"
	"slices"
	"testing"
	"unsafe"

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

func newTestSensor() *Sensor {
	s := &Sensor{table: newProcTable("/nonexistent")}
	s.table.procs[1] = procInfo{ppid: 0, exe: "/sbin/init"}
	return s
}

func TestBuildExec(t *testing.T) {
	s := newTestSensor()
	raw := execRecord()
	var h rawHeader
	if err := decodeHeader(raw, &h); err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	if !s.build(&h, raw[headerSize:], &ev, clock{}) {
		t.Fatal("exec record not delivered")
	}
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
			var h rawHeader
			var ev event.Event
			if decodeHeader(tt.raw, &h) == nil && s.build(&h, tt.raw[headerSize:], &ev, clock{}) {
				t.Fatal("malformed record delivered")
			}
		})
	}
}

func FuzzBuild(f *testing.F) {
	f.Add(execRecord())
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := newTestSensor()
		var h rawHeader
		var ev event.Event
		if decodeHeader(raw, &h) == nil {
			s.build(&h, raw[headerSize:], &ev, clock{})
		}
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
	raw := execRecord()
	var h rawHeader
	var ev event.Event
	b.ReportAllocs()
	for b.Loop() {
		decodeHeader(raw, &h)
		s.build(&h, raw[headerSize:], &ev, clock{})
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
		var hh rawHeader
		var ev event.Event
		decodeHeader(raw, &hh)
		if s.build(&hh, raw[headerSize:], &ev, clock{}) {
			delivered = append(delivered, ev)
		}
		if s.haveExtra {
			s.haveExtra = false
			delivered = append(delivered, s.extra)
		}
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

package event

import (
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestEventJSONContract pins the JSON field names of every event type:
// outside tools parse them, so a change here must be deliberate.
func TestEventJSONContract(t *testing.T) {
	at := time.Date(2026, 11, 29, 5, 0, 0, 123456789, time.UTC)
	events := []Event{
		{
			Type: TypeExec, Time: at, PID: 100, TID: 100, PPID: 1, UID: 1000, EUID: 1000, GID: 1000, EGID: 1000, AUID: 1000,
			Comm: "bash", Exe: "/usr/bin/bash", Filename: "/bin/bash", Args: []Text{"bash", "-c", "echo \xff"},
			ArgsTruncated: true, Cwd: "/home/alice", TTY: "pts/0", Cgroup: "/system.slice/docker-abc.scope",
			ContainerID: "abc", ContainerName: "web-1", ContainerImage: "docker.io/library/nginx:1.27", ContainerRuntime: "docker",
			ParentExe: "/usr/sbin/sshd", Ancestors: []Ancestor{{PID: 1, Exe: "/sbin/init"}},
			Outcome: Success, ExeDev: 2049, ExeIno: 1234, ExeOwner: Uint32(0), ExeOrigin: "/usr/bin/bash", ExeFS: "ext4",
			MntNS: 4026531841, ExeSHA256: "b1946ac92492d2347c6235b4d2611184" + "4d8b4e6c1b1b9fd2d1b4a0f5c3d2e1f0",
		},
		{
			Type: TypeExec, Time: at, PID: 104, Comm: "x.sh", Exe: "/usr/bin/dash", Filename: "/tmp/x.sh",
			Args: []Text{"/bin/sh", "/tmp/x.sh"}, Script: "/tmp/x.sh", Outcome: Success,
		},
		{Type: TypeExec, Time: at, PID: 101, Comm: "bash", Exe: "/tmp/x", Filename: "x", Outcome: Failure, Errno: "ENOENT"},
		{
			Type: TypeEscalation, Time: at, PID: 102, UID: 1000, EUID: 0, Comm: "sudo", Exe: "/usr/bin/sudo",
			Outcome: Success, Method: MethodSuidExec, OldUID: Uint32(1000), OldEUID: Uint32(1000), NewUID: Uint32(1000), NewEUID: Uint32(0),
		},
		{
			Type: TypeExit, Time: at, PID: 103, Comm: "crash", Exe: "/opt/crash", Outcome: Failure,
			ExitCode: Int(0), Signal: "SIGSEGV", CoreDumped: true, DurationNS: 1500,
		},
	}
	var got []byte
	for _, ev := range events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got = append(append(got, b...), '\n')
	}
	const golden = "testdata/events.golden.ndjson"
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./event -run JSONContract -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("event JSON changed:\n got: %s\nwant: %s", got, want)
	}
	// And it reads back to the same events, bytes included.
	for i, ev := range events {
		b, _ := json.Marshal(ev)
		var back Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(back)
		if string(b) != string(b2) {
			t.Errorf("event %d does not round-trip:\n%s\n%s", i, b, b2)
		}
	}
}

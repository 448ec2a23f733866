package rules

import (
	"fmt"
	"strings"
	"testing"
)

func TestPathSet(t *testing.T) {
	set := newPathSet([]string{"/usr/bin", "/opt/app/", "/srv/*/bin/*", "/data/**/run", "/exact/file"})
	tests := []struct {
		path string
		want bool
	}{
		{"/usr/bin", true},
		{"/usr/bin/x", true},
		{"/usr/bin/sub/x", true},
		{"/usr/bin2/x", false},
		{"/usr/bi", false},
		{"/usr", false},
		{"/opt/app/x", true},
		{"/opt/apps/x", false},
		{"/srv/a/bin/x", true},
		{"/srv/a/b/bin/x", false},
		{"/data/run", true},
		{"/data/a/b/run", true},
		{"/data/a/b/run2", false},
		{"/exact/file", true},
		{"/exact/file2", false},
		{"/exact/file/x", true},
		{"", false},
		{"relative/usr/bin/x", false},
		{"…/data/a/run", false},
	}
	for _, tc := range tests {
		if got := set.match(tc.path); got != tc.want {
			t.Errorf("match(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	root := newPathSet([]string{"/"})
	if !root.match("/anything") || root.match("") {
		t.Error("/ must cover every absolute path")
	}
	var none *pathSet
	if none.match("/x") || !none.empty() {
		t.Error("nil set must match nothing")
	}
}

// TestCommandSet runs the same cases against a small set (compared
// linearly) and a large one (looked up in maps).
func TestCommandSet(t *testing.T) {
	names := []string{"nice", "unattended-upgrade-helper", "exactly15bytes_"}
	var filler []string
	for i := range 20 {
		filler = append(filler, fmt.Sprintf("filler%d", i))
	}
	tests := []struct {
		base, comm string
		want       bool
	}{
		{"nice", "nice", true},
		{"other", "nice", true},
		{"nice", "other", true},
		{"nicer", "nicer", false},
		{"nic", "nic", false},
		{"x", "unattended-upgr", true},           // comm cut to 15 bytes
		{"unattended-upgr", "x", false},          // the cut never matches an exe name
		{"x", "unattended-upg", false},           // 14 bytes is not a cut
		{"unattended-upgrade-helper", "x", true}, // exe base name in full
		{"x", "unattended-upgrade-helpe", false}, // a comm that long is not a cut either
		{"x", "exactly15bytes_", true},
		{"", "", false},
	}
	for _, size := range []struct {
		name  string
		names []string
	}{{"small", names}, {"large", append(append([]string{}, filler...), names...)}} {
		set := newCommandSet(size.names)
		if (set.small != nil) != (size.name == "small") {
			t.Fatalf("%s set: small = %v", size.name, set.small)
		}
		for _, tc := range tests {
			if got := set.match(tc.base, tc.comm); got != tc.want {
				t.Errorf("%s set: match(%q, %q) = %v, want %v", size.name, tc.base, tc.comm, got, tc.want)
			}
		}
		if !set.matchName("nice") || set.matchName("unattended-upgr") || set.matchName("") {
			t.Errorf("%s set: matchName", size.name)
		}
	}
}

func TestUserSet(t *testing.T) {
	testUsers(t)
	set := newUserSet([]string{"alice", "34", "4294967295"})
	for uid, want := range map[uint32]bool{1000: true, 34: true, 4294967295: true, 1001: false, 0: false} {
		f := facts{uid: uid}
		if got := set.match(&f); got != want {
			t.Errorf("uid %d: %v, want %v", uid, got, want)
		}
	}
}

func TestUserNameCache(t *testing.T) {
	testUsers(t)
	calls := 0
	lookupUser = func(uid uint32) string { calls++; return map[uint32]string{7: "seven"}[uid] }
	for range 3 {
		if UserName(7) != "seven" || UserName(8) != "" {
			t.Fatal("wrong names")
		}
	}
	if calls != 2 {
		t.Errorf("%d lookups for two uids, want 2 (cached, including misses)", calls)
	}
}

func TestUsePasswd(t *testing.T) {
	testUsers(t)
	n, err := UsePasswd(strings.NewReader("# comment\nroot:x:0:0:root:/root:/bin/bash\n\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken line\nbad:x:notanumber:0::/:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n"))
	if err != nil || n != 2 {
		t.Fatalf("UsePasswd = %d, %v; want 2 users", n, err)
	}
	for uid, want := range map[uint32]string{0: "root", 1000: "alice", 34: ""} {
		if got := UserName(uid); got != want {
			t.Errorf("UserName(%d) = %q, want %q", uid, got, want)
		}
	}
}

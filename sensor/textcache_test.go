//go:build linux

package sensor

import (
	"bytes"
	"fmt"
	"testing"
)

// TestTextCaches checks the caches of decoded sections: a cached text is
// the one a fresh decode gives, a flood of distinct names keeps a cache
// within its bound, long sections are not kept, and the cgroup cache
// gives the container id of the cgroup.
func TestTextCaches(t *testing.T) {
	var paths textCache
	raw := []byte("ls\x00bin\x00usr\x00")
	for range 3 {
		if got := paths.get(raw, joinPath); got != "/usr/bin/ls" {
			t.Fatalf("cached path %q, want /usr/bin/ls", got)
		}
	}
	if len(paths) != 1 {
		t.Errorf("%d entries for one path, want 1", len(paths))
	}
	long := bytes.Repeat([]byte("a\x00"), maxCachedText)
	if got, want := paths.get(long, joinPath), joinPath(long); got != want {
		t.Errorf("long section decoded %q, want %q", got, want)
	}
	if _, kept := paths[string(long)]; kept {
		t.Error("a section longer than maxCachedText was cached")
	}
	for i := range 3 * maxTexts {
		name := []byte(fmt.Sprintf("f%d\x00tmp\x00", i))
		if got, want := paths.get(name, joinPath), joinPath(name); got != want {
			t.Fatalf("entry %d: %q, want %q", i, got, want)
		}
		if len(paths) > maxTexts {
			t.Fatalf("cache grew to %d entries, bound %d", len(paths), maxTexts)
		}
	}
	var cgroups cgroupCache
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cgRaw := []byte("docker-" + id + ".scope\x00system.slice\x00")
	for range 2 {
		cg := cgroups.get(cgRaw)
		if string(cg.path) != "/system.slice/docker-"+id+".scope" || cg.containerID != id {
			t.Errorf("cgroup %q id %q", cg.path, cg.containerID)
		}
	}
}

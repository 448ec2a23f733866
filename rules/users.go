package rules

import (
	"bufio"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"strings"
	"sync"
)

// userNames caches uid → name lookups. Rules ask for the same few uids on
// every event, and the user database is a file read (or an NSS call), so
// each uid is resolved once per process, including uids with no name.
var userNames = struct {
	sync.RWMutex
	m map[uint32]string
}{m: make(map[uint32]string)}

// lookupUser returns the name of uid from the user database, or "" when it
// has none. Replays on another host resolve against this host's database.
var lookupUser = func(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

// UserName returns the cached name for uid, or "" when the user database
// has none. Summaries and user selectors use it; it is exported so that
// front ends show the same names the rules matched.
func UserName(uid uint32) string {
	userNames.RLock()
	name, ok := userNames.m[uid]
	lookup := lookupUser
	userNames.RUnlock()
	if ok {
		return name
	}
	name = lookup(uid)
	userNames.Lock()
	if len(userNames.m) > 1<<16 {
		// A hostile workload could walk through uids; keep memory bounded.
		clear(userNames.m)
	}
	userNames.m[uid] = name
	userNames.Unlock()
	return name
}

// UsePasswd makes user names come from a passwd-format file (name:x:uid:...)
// instead of this host's user database, for replaying a capture recorded
// on another host: its uids mean that host's users. Lines that are not
// passwd entries are ignored, as the C library does. It returns how many
// users it read.
func UsePasswd(r io.Reader) (int, error) {
	names := map[uint32]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) < 3 || fields[0] == "" {
			continue
		}
		uid, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(uid)]; !dup {
			names[uint32(uid)] = fields[0]
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read passwd file: %w", err)
	}
	userNames.Lock()
	lookupUser = func(uid uint32) string { return names[uid] }
	clear(userNames.m)
	userNames.Unlock()
	return len(names), nil
}

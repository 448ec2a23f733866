package rules

import (
	"os/user"
	"strconv"
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
	userNames.RUnlock()
	if ok {
		return name
	}
	name = lookupUser(uid)
	userNames.Lock()
	if len(userNames.m) > 1<<16 {
		// A hostile workload could walk through uids; keep memory bounded.
		clear(userNames.m)
	}
	userNames.m[uid] = name
	userNames.Unlock()
	return name
}

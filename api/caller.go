package api

import (
	"context"
	"os"
	"os/user"
	"strconv"

	"github.com/procwatch/procwatch/rules"
)

type callerKey struct{}

// WithCaller returns a context that names who asks for what follows. The
// agent's server sets it from the kernel's view of the peer (SO_PEERCRED),
// so a pipeline records changes (status history, a skip's added_by) as
// that caller and never as what the client claims. The Service interface
// has no caller parameter; a context value carries it, like export
// progress.
func WithCaller(ctx context.Context, a rules.Actor) context.Context {
	return context.WithValue(ctx, callerKey{}, a)
}

// Caller returns the actor stored by WithCaller, or, when there is none
// (a front end running its own pipeline), this process itself.
func Caller(ctx context.Context) rules.Actor {
	if a, ok := ctx.Value(callerKey{}).(rules.Actor); ok {
		return a
	}
	return Self("local")
}

// Self describes the current process as an actor: its real uid, its pid
// and the uid's name.
func Self(via string) rules.Actor {
	uid := uint32(os.Getuid())
	return rules.Actor{UID: uid, PID: uint32(os.Getpid()), User: UserName(uid), Via: via}
}

// UserName looks up the name of uid, or returns "" when it has none.
func UserName(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/procwatch/procwatch/api"
	"github.com/procwatch/procwatch/rules"
)

// FleetSkip is the value of one key of PROCWATCH_SKIPS. Keys are
// fleet.<id> (every host) or host.<host>.<id> (one host). Removing a skip
// first writes its value again with Removed set, then deletes the key, so
// the bucket's history says who removed it and when.
type FleetSkip struct {
	Skip      rules.Skip `json:"skip"`
	Removed   bool       `json:"removed,omitempty"`
	RemovedBy string     `json:"removed_by,omitempty"`
	RemovedAt time.Time  `json:"removed_at,omitzero"`
}

// SkipKey returns a new key for a skip on host, or on every host when
// host is empty.
func SkipKey(host string) string {
	id := strings.ToLower(nuid.Next())
	if host == "" {
		return "fleet." + id
	}
	return "host." + host + "." + id
}

// notePrefix marks a local skip that mirrors a fleet key, so an agent
// restarted while a key was removed finds and removes its copy.
const notePrefix = "fleet-skip "

func localNote(key, note string) string {
	if note == "" {
		return notePrefix + key
	}
	return notePrefix + key + ": " + note
}

// keyOfNote returns the fleet key a local skip mirrors, if it does.
func keyOfNote(note string) (string, bool) {
	rest, ok := strings.CutPrefix(note, notePrefix)
	if !ok {
		return "", false
	}
	key, _, _ := strings.Cut(rest, ":")
	return key, key != ""
}

// SkipsState reports the fleet skips an agent applies.
type SkipsState struct {
	Watching bool   `json:"watching"`
	Applied  int    `json:"applied"`
	Error    string `json:"error,omitempty"` // the last skip that could not be applied, or why the bucket is not watched
}

// skipWatcher applies the bucket's skips for this host to the local
// pipeline, where they mask what they cover exactly as a local skip does.
type skipWatcher struct {
	host string
	svc  api.Service
	js   jetstream.JetStream
	log  *slog.Logger

	mu  sync.Mutex
	st  SkipsState
	ids map[string]string // fleet key -> local skip id
}

func (w *skipWatcher) state() SkipsState {
	if w == nil {
		return SkipsState{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	s.Applied = len(w.ids)
	return s
}

func (w *skipWatcher) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.st.Error = ""
		return
	}
	w.st.Error = err.Error()
}

// run watches the bucket until ctx ends, starting again after a failure.
func (w *skipWatcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := w.watch(ctx)
		w.mu.Lock()
		w.st.Watching = false
		w.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		w.setErr(fmt.Errorf("watch %s: %w", SkipsBucket, err))
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
	}
}

func (w *skipWatcher) watch(ctx context.Context) error {
	kv, err := w.js.KeyValue(ctx, SkipsBucket)
	if err != nil {
		return err
	}
	// One watch of the whole bucket, filtered here: two filter subjects
	// need nats-server 2.10, and Debian ships 2.9.
	kw, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer kw.Stop()
	w.mu.Lock()
	w.st.Watching = true
	w.st.Error = ""
	w.mu.Unlock()
	initial := map[string]rules.Skip{}
	loaded := false
	for {
		select {
		case e, ok := <-kw.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil { // the initial values are in: reconcile
				loaded = true
				w.reconcile(ctx, initial)
				continue
			}
			if !w.mine(e.Key()) {
				continue
			}
			sk, live := w.parse(e)
			if !loaded {
				if live {
					initial[e.Key()] = sk
				} else {
					delete(initial, e.Key())
				}
				continue
			}
			w.remove(ctx, e.Key())
			if live {
				w.add(ctx, e.Key(), sk)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// mine reports whether key is a skip for this host: the fleet's, or its own.
func (w *skipWatcher) mine(key string) bool {
	return strings.HasPrefix(key, "fleet.") || strings.HasPrefix(key, "host."+w.host+".")
}

// parse reads an entry: live is false for a deletion or a removal record.
func (w *skipWatcher) parse(e jetstream.KeyValueEntry) (rules.Skip, bool) {
	if e.Operation() != jetstream.KeyValuePut {
		return rules.Skip{}, false
	}
	var fs FleetSkip
	if err := json.Unmarshal(e.Value(), &fs); err != nil {
		w.setErr(fmt.Errorf("skip %s: %w", e.Key(), err))
		return rules.Skip{}, false
	}
	return fs.Skip, !fs.Removed
}

// reconcile makes the local copies match want: removes copies of keys that
// are gone (removed while this agent was away), adds what is missing.
func (w *skipWatcher) reconcile(ctx context.Context, want map[string]rules.Skip) {
	local, err := w.svc.Skips(ctx)
	if err != nil {
		w.setErr(err)
		return
	}
	have := map[string]bool{}
	for _, s := range local {
		key, ok := keyOfNote(s.Note)
		if !ok || s.Source != rules.SourceAdded {
			continue
		}
		if _, keep := want[key]; keep && !have[key] {
			have[key] = true
			w.mu.Lock()
			if w.ids == nil {
				w.ids = map[string]string{}
			}
			w.ids[key] = s.ID
			w.mu.Unlock()
			continue
		}
		if _, err := w.svc.RemoveSkip(ctx, s.ID); err != nil {
			w.setErr(err)
		}
	}
	for key, sk := range want {
		if !have[key] {
			w.add(ctx, key, sk)
		}
	}
}

func (w *skipWatcher) add(ctx context.Context, key string, sk rules.Skip) {
	sk.ID = ""
	sk.Note = localNote(key, sk.Note)
	actor := rules.Actor{UID: math.MaxUint32, User: "fleet-skip:" + sk.AddedBy, Via: "nats-kv"}
	added, masked, err := w.svc.AddSkip(api.WithCaller(ctx, actor), sk)
	if err != nil {
		w.setErr(fmt.Errorf("fleet skip %s: %w", key, err))
		w.log.Warn("fleet skip not applied", "key", key, "err", err)
		return
	}
	w.mu.Lock()
	if w.ids == nil {
		w.ids = map[string]string{}
	}
	w.ids[key] = added.ID
	w.mu.Unlock()
	w.log.Info("fleet skip applied", "key", key, "kind", sk.Kind, "value", sk.Value, "by", sk.AddedBy, "masked", masked)
}

func (w *skipWatcher) remove(ctx context.Context, key string) {
	w.mu.Lock()
	id, ok := w.ids[key]
	delete(w.ids, key)
	w.mu.Unlock()
	if !ok {
		return
	}
	n, err := w.svc.RemoveSkip(ctx, id)
	if err != nil {
		w.setErr(fmt.Errorf("remove fleet skip %s: %w", key, err))
		return
	}
	w.log.Info("fleet skip removed", "key", key, "unmasked", n)
}

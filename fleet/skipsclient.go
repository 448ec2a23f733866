package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/procwatch/procwatch/rules"
)

// FleetSkipEntry is one key of the skips bucket with its scope.
type FleetSkipEntry struct {
	Key      string    `json:"key"`
	Host     string    `json:"host,omitempty"` // empty: every host
	Skip     FleetSkip `json:"value"`
	Revision uint64    `json:"revision"`
	Time     time.Time `json:"time"`
	Deleted  bool      `json:"deleted,omitempty"`
}

func (c *Client) skipsKV(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := c.js.KeyValue(ctx, SkipsBucket)
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w (run `procwatch fleet setup` once)", SkipsBucket, err)
	}
	return kv, nil
}

// AddFleetSkip stores s for host, or for every host when host is empty;
// each agent concerned applies it within a second. s.AddedBy and AddedAt
// are set from the client. It returns the key.
func (c *Client) AddFleetSkip(ctx context.Context, host string, s rules.Skip) (string, error) {
	if host != "" {
		if err := CheckHost(host); err != nil {
			return "", err
		}
	}
	if err := rules.ValidateSkip(s); err != nil {
		return "", err
	}
	kv, err := c.skipsKV(ctx)
	if err != nil {
		return "", err
	}
	s.ID, s.Source = "", rules.SourceAdded
	s.AddedBy, s.AddedAt = c.opts.Caller, time.Now().UTC()
	b, err := json.Marshal(FleetSkip{Skip: s})
	if err != nil {
		return "", err
	}
	key := SkipKey(host)
	if _, err := kv.Create(ctx, key, b); err != nil {
		return "", fmt.Errorf("add fleet skip: %w", err)
	}
	return key, nil
}

// RemoveFleetSkip records who removed key, then deletes it.
func (c *Client) RemoveFleetSkip(ctx context.Context, key string) error {
	kv, err := c.skipsKV(ctx)
	if err != nil {
		return err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("no fleet skip %q (see procwatch skip list --nats URL)", key)
	}
	if err != nil {
		return fmt.Errorf("remove fleet skip %s: %w", key, err)
	}
	var fs FleetSkip
	if err := json.Unmarshal(e.Value(), &fs); err != nil {
		return fmt.Errorf("remove fleet skip %s: %w", key, err)
	}
	fs.Removed, fs.RemovedBy, fs.RemovedAt = true, c.opts.Caller, time.Now().UTC()
	b, _ := json.Marshal(fs)
	if _, err := kv.Update(ctx, key, b, e.Revision()); err != nil {
		return fmt.Errorf("remove fleet skip %s: %w", key, err)
	}
	if err := kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("remove fleet skip %s: %w", key, err)
	}
	return nil
}

// FleetSkips lists the skips in force; with history, every revision of
// every key (the audit trail), oldest first.
func (c *Client) FleetSkips(ctx context.Context, history bool) ([]FleetSkipEntry, error) {
	kv, err := c.skipsKV(ctx)
	if err != nil {
		return nil, err
	}
	var opts []jetstream.WatchOpt
	if history {
		opts = append(opts, jetstream.IncludeHistory())
	}
	w, err := kv.WatchAll(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("list fleet skips: %w", err)
	}
	defer w.Stop()
	var out []FleetSkipEntry
	for e := range w.Updates() {
		if e == nil {
			break
		}
		fe := FleetSkipEntry{Key: e.Key(), Revision: e.Revision(), Time: e.Created(), Deleted: e.Operation() != jetstream.KeyValuePut}
		if rest, ok := strings.CutPrefix(e.Key(), "host."); ok {
			fe.Host, _, _ = strings.Cut(rest, ".")
		}
		if !fe.Deleted {
			json.Unmarshal(e.Value(), &fe.Skip)
		}
		if !history && (fe.Deleted || fe.Skip.Removed) {
			continue
		}
		out = append(out, fe)
	}
	slices.SortFunc(out, func(a, b FleetSkipEntry) int { return cmp.Compare(a.Revision, b.Revision) })
	return out, nil
}

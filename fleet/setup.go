package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions size the incidents stream and the skips bucket.
type StreamOptions struct {
	Replicas int           // copies kept by the cluster; default 3 (1 on a single server)
	MaxAge   time.Duration // incidents older than this leave the stream; default 30 days
	MaxBytes int64         // the stream never grows past this, oldest first out; default 8 GiB
	// Duplicates is the window in which a republished message id is
	// dropped; default 10 minutes.
	Duplicates time.Duration
	// SkipsHistory is how many revisions of each skip key the bucket keeps
	// (the audit trail); default 64, the most JetStream allows.
	SkipsHistory uint8
}

// Defaults documented in docs/fleet.md.
const (
	DefaultReplicas   = 3
	DefaultMaxAge     = 30 * 24 * time.Hour
	DefaultMaxBytes   = 8 << 30
	DefaultDuplicates = 10 * time.Minute
)

func (o *StreamOptions) defaults() {
	if o.Replicas <= 0 {
		o.Replicas = DefaultReplicas
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Duplicates <= 0 {
		o.Duplicates = DefaultDuplicates
	}
	if o.SkipsHistory == 0 {
		o.SkipsHistory = jetstream.KeyValueMaxHistory
	}
}

// StreamConfig is the configuration of PROCWATCH_INCIDENTS.
func StreamConfig(o StreamOptions) jetstream.StreamConfig {
	o.defaults()
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "procwatch incidents of every host, new and updated",
		Subjects:    []string{IncidentsWildcard},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.Duplicates,
	}
}

// Setup creates or updates the incidents stream and the skips bucket. An
// administrator runs it once (procwatch fleet setup); agents and viewers
// only use them, so their users need no right to create streams.
func Setup(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	o.defaults()
	if _, err := js.CreateOrUpdateStream(ctx, StreamConfig(o)); err != nil {
		return fmt.Errorf("create stream %s (%d replicas): %w", StreamName, o.Replicas, err)
	}
	kvc := jetstream.KeyValueConfig{
		Bucket:      SkipsBucket,
		Description: "procwatch skips: fleet.<id> for every host, host.<host>.<id> for one",
		History:     o.SkipsHistory,
		Replicas:    o.Replicas,
		Storage:     jetstream.FileStorage,
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, kvc); err != nil {
		return fmt.Errorf("create key-value bucket %s: %w", SkipsBucket, err)
	}
	return nil
}

// errNoStream says what to do when the stream is missing.
var errNoStream = errors.New("stream " + StreamName + " does not exist; run `procwatch fleet setup --nats URL` once")

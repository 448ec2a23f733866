package fleet

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConnOptions say how to reach the NATS servers. They are the --nats,
// --nats-creds, --nats-ca, --nats-cert and --nats-key flags.
type ConnOptions struct {
	URLs  string // comma-separated server URLs
	Creds string // NATS credentials file (user JWT and seed)
	CA    string // CA certificate to verify the servers
	Cert  string // client certificate for mutual TLS
	Key   string // its key
	Name  string // connection name shown by the server
	// Logger hears about disconnects and reconnects; nil is slog.Default.
	Logger *slog.Logger
	// InboxPrefix replaces _INBOX for reply subjects, so that permissions
	// can give each user only its own replies: agents use _INBOX.<host>,
	// front ends _INBOX.<user> (docs/fleet.md). Empty keeps _INBOX.
	InboxPrefix string
	// FailFast makes Connect fail when no server answers now (front ends);
	// an agent instead keeps trying in the background.
	FailFast bool
	// OnlyListed keeps to the URLs given, ignoring the servers the cluster
	// announces (tests cut one agent off behind a proxy with it).
	OnlyListed bool
}

// Connect dials the servers and keeps reconnecting forever: an agent
// outlives any outage and its outbox holds what it could not send.
func Connect(o ConnOptions) (*nats.Conn, error) {
	if strings.TrimSpace(o.URLs) == "" {
		return nil, errors.New("no NATS server given (--nats URL[,URL...])")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(!o.FailFast),
		nats.ReconnectBufSize(-1), // never buffer while down: the outbox does
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("NATS", "err", err, "subject", subj)
		}),
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	if o.OnlyListed {
		opts = append(opts, nats.IgnoreDiscoveredServers())
	}
	if o.Creds != "" {
		if _, err := os.Stat(o.Creds); err != nil {
			return nil, fmt.Errorf("--nats-creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.CA != "" {
		opts = append(opts, nats.RootCAs(o.CA))
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, errors.New("--nats-cert and --nats-key go together: give both or neither")
	}
	if o.Cert != "" {
		opts = append(opts, nats.ClientCert(o.Cert, o.Key))
	}
	nc, err := nats.Connect(o.URLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", RedactURLs(o.URLs), err)
	}
	return nc, nil
}

// InboxFor is the reply-subject prefix of a connection used by name (a
// host or a user), matching the permissions of docs/fleet.md.
func InboxFor(name string) string { return "_INBOX." + callerToken(name) }

// Identity names the user a connection authenticates as: the user of the
// URL, or the name (else the public key) in the credentials' JWT. Callers
// put it in control subjects, where the account layout of docs/fleet.md
// makes the server refuse any other name.
func Identity(o ConnOptions) string {
	for _, u := range strings.Split(o.URLs, ",") {
		if pu, err := url.Parse(strings.TrimSpace(u)); err == nil && pu.User != nil && pu.User.Username() != "" {
			return pu.User.Username()
		}
	}
	if o.Creds != "" {
		if id := credsIdentity(o.Creds); id != "" {
			return id
		}
	}
	return "anonymous"
}

// credsIdentity reads the user JWT of a creds file without verifying it
// (the server does that): its name, else its subject (the public key).
func credsIdentity(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	jwt, err := nkeys.ParseDecoratedJWT(b)
	if err != nil {
		return ""
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Name string `json:"name"`
		Sub  string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	if claims.Name != "" {
		return claims.Name
	}
	return claims.Sub
}

// RedactURLs hides passwords in URLs for error messages.
func RedactURLs(urls string) string {
	var out []string
	for _, u := range strings.Split(urls, ",") {
		if pu, err := url.Parse(strings.TrimSpace(u)); err == nil {
			out = append(out, pu.Redacted())
		} else {
			out = append(out, "(unparsable URL)")
		}
	}
	return strings.Join(out, ",")
}

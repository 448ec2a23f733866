// Package fleet joins procwatch agents to a NATS JetStream fleet and lets a
// front end watch the whole fleet through it.
//
// An agent (Agent) keeps its local database as the host's source of truth
// and also publishes: every new or updated incident to the JetStream stream
// PROCWATCH_INCIDENTS on procwatch.v1.<host>.incidents (from a persistent
// outbox, with publish acknowledgements and a Nats-Msg-Id so a republish is
// deduplicated), its status once a second on procwatch.v1.<host>.status
// (core NATS), and live events only while a viewer holds a lease. It serves
// a NATS micro service named procwatch (one instance per host) for control,
// and applies the fleet-wide skips of the key-value bucket PROCWATCH_SKIPS.
//
// A front end (Client) reads the stream and the status subject and offers
// one api.Service per host, so the TUI and the CLI drive fleet hosts
// exactly as they drive SSH hosts. docs/fleet.md describes the subjects,
// the account layout and the deployment.
package fleet

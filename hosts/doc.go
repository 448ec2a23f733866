// Package hosts connects one front end to the agents of several hosts. Each
// host is reached by running a transport command (`ssh web1 sudo procwatch
// serve --stdio`, or a local `procwatch serve --stdio`) and speaking the
// agent protocol over its stdin and stdout. A Host keeps that connection up
// on its own: it reports whether it is connected, connecting or unreachable
// (with the reason, usually the transport's last line of stderr), and
// reconnects with exponential backoff when the transport ends. Host
// implements api.Service, so the TUI talks to a remote host exactly as
// it talks to a local pipeline; a front end that resubscribes with the last
// incident id it holds misses no incident across a reconnect.
package hosts

// Package packaging holds what installs procwatch on a host as a service
// (procwatch.service, a systemd unit). It has no code of its own: its
// tests check the unit against the real command line, so a renamed flag
// or command breaks the build here rather than on an operator's host.
package packaging

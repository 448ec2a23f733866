// Package evasion holds the end-to-end tests of what an attacker on the
// host tries against procwatch (issue 9; docs/evasions.md): real processes
// run as root and as uid 65534, under the real sensor and the default
// rules, each test asserting the incident it must raise (or its absence),
// its fields and its severity. It has no code of its own: the tests are the
// point, and they live apart from rules/ because only this package may
// bring the sensor and the rules together without a pipeline.
package evasion

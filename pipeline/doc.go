// Package pipeline wires one host's sensor, rules engine and incident store
// together and fans the result out to front ends. Local is the in-process
// implementation of api.Service: the agent runs it headless, and the
// CLI runs it without a sensor when no agent is up, so every front end talks
// to the same interface whether the host is monitored or not.
package pipeline

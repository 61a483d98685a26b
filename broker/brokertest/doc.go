// Package brokertest is the conformance suite every broker.Broker engine
// runs: one table of behaviours from the broker package contract (delivery
// to subscribed nodes only, exactly once, in publish order; control to every
// node; health), so that memory, Redis, Redis Cluster and NATS are held to
// the same rules. It also has a shared publish benchmark and a recording
// Handler for engine-specific tests.
//
// The suite starts and closes brokers itself; a factory only constructs
// them. Cases run in parallel, each with its own brokers and uniquely named
// rooms, so factories for a shared backend must be safe for concurrent use.
package brokertest

package nats

// TrackedSince is the Since of the broker's own gap repair, for tests.
var TrackedSince = (*Broker).trackedSince

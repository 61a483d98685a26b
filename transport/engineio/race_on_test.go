//go:build race

package engineio

// raceEnabled: the race detector changes what allocates.
const raceEnabled = true

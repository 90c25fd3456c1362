//go:build race

package cluster

// raceEnabled is set under the race detector, which makes applying a
// snapshot of 100,000 entries take minutes and its shadow memory never
// given back.
const raceEnabled = true

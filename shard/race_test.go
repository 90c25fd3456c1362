//go:build race

package shard

// raceEnabled is set under the race detector, which slows the model tests
// tenfold: they run fewer steps there.
const raceEnabled = true

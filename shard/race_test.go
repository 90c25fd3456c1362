//go:build race

package shard

// raceEnabled is set under the race detector, which makes a reader and a
// writer sharing one topic run some forty times slower; the tests that
// wait for a rare interleaving there wait for it without the detector
// only, where the plain and the all-atomic passes both run them.
const raceEnabled = true

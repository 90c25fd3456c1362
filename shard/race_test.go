//go:build race

package shard

// raceEnabled is set under the race detector, which slows the model tests
// tenfold and makes a reader and a writer sharing one topic some forty
// times slower: the model tests run fewer steps there, and the tests that
// wait for a rare interleaving wait for it without the detector only,
// where the plain and the all-atomic passes both run them.
const raceEnabled = true

//go:build race

package cluster

// raceEnabled is set under the race detector, which makes applying a
// snapshot of 100,000 entries take minutes and its shadow memory never
// given back.
//
// A test that scales down or skips under it must match plainOnly in
// test.sh, whose plain pass runs it in full.
const raceEnabled = true

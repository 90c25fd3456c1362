//go:build race

package channel

// The race detector allows 8128 live goroutines; each soak client costs
// four (two per side).
//
// A test that scales down or skips under it must match plainOnly in
// test.sh, whose plain pass runs it in full.
const raceEnabled = true

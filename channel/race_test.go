//go:build race

package channel

// The race detector allows 8128 live goroutines; each soak client costs
// four (two per side).
const raceEnabled = true

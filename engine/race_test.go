//go:build race

package engine

// raceEnabled is set under the race detector, whose shadow memory the
// runtime never gives back: a test that allocates a large engine there
// would leave the whole test binary gigabytes larger.
const raceEnabled = true

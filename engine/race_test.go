//go:build race

package engine

// raceEnabled is set under the race detector, whose shadow memory the
// runtime never gives back: a test that allocates a large engine there
// would leave the whole test binary gigabytes larger.
const raceEnabled = true

// defaultLinOps is -lin.ops's default under the race detector, which
// makes recording a history some ten times slower: the runs without it
// have the longer histories.
const defaultLinOps = 100

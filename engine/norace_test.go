//go:build !race

package engine

const raceEnabled = false

const defaultLinOps = 250

//go:build !race

package main

const clusterRace = false

//go:build race

package main

const clusterRace = true

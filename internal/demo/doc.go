// Package demo holds the echo backend used by `torii demo`, the feature tests
// and the load benchmarks: a small HTTP server that answers every request
// with a JSON description of what it received.
package demo

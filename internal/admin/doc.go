// Package admin serves Torii's operational endpoints — health, readiness,
// Prometheus metrics, the live routing table and optionally pprof — on a
// listener separate from client traffic.
package admin

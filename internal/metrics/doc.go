// Package metrics defines every Prometheus metric Torii exports, registered
// on a registry of its own (never the global default), so that tests and
// several instances in one process never collide.
package metrics

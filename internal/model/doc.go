// Package model holds the immutable routing snapshot that the control plane
// builds and the data plane serves.
//
// A Snapshot is never modified after it is published: a request loads one
// snapshot and uses only it, and a configuration change publishes a new one.
// The package imports only the standard library so that the data plane can be
// built, tested and benchmarked without any Kubernetes dependency.
package model

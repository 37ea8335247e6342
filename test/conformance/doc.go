// Package conformance holds data shared by the conformance tests of the
// manifest mode (test/feature) and the Kubernetes mode (test/e2e), so that
// both check the same cases. It is imported by test code only.
package conformance

// Package e2e holds Torii's end-to-end tests in Kubernetes mode: a real
// etcd and kube-apiserver started by test/e2e/harness, objects created
// through the API with client-go, and (as the Kubernetes source lands) Torii
// serving them to real HTTP clients.
//
// The control-plane binaries come from hack/e2e-tools.sh, which builds them
// into bin/ from the pinned versions in hack/tools. Without them the tests
// fail with that instruction; they never skip.
package e2e

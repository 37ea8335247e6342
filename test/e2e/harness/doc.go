// Package harness runs a real Kubernetes control plane for Torii's
// end-to-end tests: an etcd and a kube-apiserver started as child processes
// on free loopback ports, in a directory of their own, from the binaries
// hack/e2e-tools.sh builds into bin/.
//
// No kubelet, scheduler or controller-manager runs. Test backends are local
// processes behind selector-less Services; their EndpointSlices are written
// straight into etcd (PutEndpointSlice), because the API server refuses
// endpoint addresses in 127.0.0.0/8 and the backends listen on loopback. The
// API server then lists and watches those slices like any other object.
//
// Typical use in a test:
//
//	c := harness.Start(t)
//	cs := c.Client()                // kubernetes.Interface, cluster-admin
//	cfg := c.RESTConfig()           // for informers, leader election, ...
//	kubeconfig := c.Kubeconfig()    // for `torii serve --kubeconfig`
//	err := c.PutEndpointSlice(ctx, slice) // 127.0.0.1 addresses allowed
//	err = c.RestartAPIServer(ctx)   // same address, same certificate
//
// or, to share one cluster across a package, StartContext from TestMain:
//
//	c, err := harness.StartContext(ctx, harness.Options{})
//	if err != nil { fmt.Fprintln(os.Stderr, err); os.Exit(1) }
//	code := m.Run()
//	c.Close() // before os.Exit, which skips deferred calls
//	os.Exit(code)
//
// The harness never skips: missing or stale binaries fail the test with the
// command that builds them. Child processes run in their own process group
// and are killed when the cluster closes, when the test fails or panics, and
// (through the parent-death signal) even when the test binary itself dies.
package harness

package harness

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Shared is one cluster for a whole test binary, started by the first test
// that asks for it (so runs of unit tests alone start nothing). Tests that
// share it work in namespaces of their own; tests that stop the API server
// or need a pristine cluster use Start instead. Call Close from TestMain
// after m.Run, since os.Exit skips deferred calls.
type Shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Get returns the shared cluster, starting it on first use. It fails the
// test (never skips) when the cluster cannot start, and logs the component
// logs when the test fails.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
		defer cancel()
		start := time.Now()
		s.c, s.err = StartContext(ctx, Options{})
		t.Logf("e2e harness: shared cluster started in %v", time.Since(start).Round(time.Millisecond))
	})
	if s.err != nil {
		t.Fatalf("e2e harness: %v", s.err)
	}
	c := s.c
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("component logs:\n%s", c.LogTails(40))
		}
	})
	return c
}

// Close stops the shared cluster if it was started.
func (s *Shared) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}

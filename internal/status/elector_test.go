package status

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// Short election timings for tests: the Lease resolution is one second.
const (
	testLease = 2 * time.Second
	testRenew = time.Second
	testRetry = 100 * time.Millisecond
)

func TestNewElectorValidates(t *testing.T) {
	c := fake.NewClientset()
	tests := []struct {
		name    string
		cfg     ElectorConfig
		wantErr string
	}{
		{name: "no client", cfg: ElectorConfig{Namespace: "n", ElectionID: "e"}, wantErr: "client"},
		{name: "no namespace", cfg: ElectorConfig{Client: c, ElectionID: "e"}, wantErr: "namespace"},
		{name: "bad id", cfg: ElectorConfig{Client: c, Namespace: "n", ElectionID: "Torii Leader"}, wantErr: "election ID"},
		{name: "sub-second lease", cfg: ElectorConfig{Client: c, Namespace: "n", ElectionID: "e", LeaseDuration: 500 * time.Millisecond, RenewDeadline: 300 * time.Millisecond, RetryPeriod: 100 * time.Millisecond}, wantErr: "under 1s"},
		{name: "renew not below lease", cfg: ElectorConfig{Client: c, Namespace: "n", ElectionID: "e", LeaseDuration: 2 * time.Second, RenewDeadline: 2 * time.Second}, wantErr: "renewDeadline"},
		{name: "defaults", cfg: ElectorConfig{Client: c, Namespace: "n", ElectionID: "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewElector(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.cfg.LeaseDuration != DefaultLeaseDuration || e.cfg.RenewDeadline != DefaultRenewDeadline || e.cfg.RetryPeriod != DefaultRetryPeriod {
				t.Errorf("defaults not applied: %+v", e.cfg)
			}
			if e.Identity() == "" {
				t.Error("no default identity")
			}
		})
	}
}

// runElector runs e in the background; the returned stop cancels it and
// waits (bounded) for Run to return.
func runElector(t *testing.T, e *Elector, onStart func(context.Context), onStop func()) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, onStart, onStop) }()
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v of cancellation", waitTimeout)
		}
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond every 10ms until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestElectorLeadsStopsAndReleasesFake(t *testing.T) {
	c := fake.NewClientset()
	e, err := NewElector(ElectorConfig{Client: c, Namespace: "torii-system", ElectionID: "torii-leader", Identity: "a",
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var workDone, stopCalled atomic.Bool
	var stopAfterWork atomic.Bool
	stop := runElector(t, e, func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		// Work that outlives the context briefly: the Lease must not be
		// released before it ends.
		time.Sleep(50 * time.Millisecond)
		lease, err := c.CoordinationV1().Leases("torii-system").Get(context.Background(), "torii-leader", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "a" {
			t.Errorf("lease released before the leader's work returned: %+v, %v", lease, err)
		}
		workDone.Store(true)
	}, func() {
		stopAfterWork.Store(workDone.Load())
		stopCalled.Store(true)
	})
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("never became leader")
	}
	if !e.IsLeader() {
		t.Error("IsLeader false while leading")
	}
	stop()
	if e.IsLeader() {
		t.Error("IsLeader true after Run returned")
	}
	if !stopCalled.Load() || !stopAfterWork.Load() {
		t.Errorf("onStop called=%v, after onStart returned=%v", stopCalled.Load(), stopAfterWork.Load())
	}
	lease, err := c.CoordinationV1().Leases("torii-system").Get(context.Background(), "torii-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("lease still held by %q after shutdown", *h)
	}
}

// TestElectorStepsDownWhenRenewalsFail checks the guard beyond client-go:
// with the API refusing renewals, the leader's context ends within
// RenewDeadline (plus a tick), before LeaseDuration lets another take over.
func TestElectorStepsDownWhenRenewalsFail(t *testing.T) {
	c := fake.NewClientset()
	var refuse atomic.Bool
	c.PrependReactor("*", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if refuse.Load() {
			return true, nil, errors.New("API server unreachable")
		}
		return false, nil, nil
	})
	e, err := NewElector(ElectorConfig{Client: c, Namespace: "torii-system", ElectionID: "torii-leader", Identity: "a",
		LeaseDuration: 3 * time.Second, RenewDeadline: testRenew, RetryPeriod: testRetry})
	if err != nil {
		t.Fatal(err)
	}
	leading := make(chan struct{}, 10)
	ended := make(chan time.Time, 10)
	runElector(t, e, func(ctx context.Context) {
		leading <- struct{}{}
		<-ctx.Done()
		ended <- time.Now()
	}, nil)
	select {
	case <-leading:
	case <-time.After(waitTimeout):
		t.Fatal("never became leader")
	}
	refused := time.Now()
	refuse.Store(true)
	var stepped time.Time
	select {
	case stepped = <-ended:
	case <-time.After(waitTimeout):
		t.Fatal("leader kept leading without renewals")
	}
	if d := stepped.Sub(refused); d > 3*time.Second-500*time.Millisecond {
		t.Errorf("stepped down %v after renewals stopped; must be well before the 3s lease expires", d)
	} else {
		t.Logf("stepped down %v after renewals stopped (renew deadline %v, lease %v)", d.Round(time.Millisecond), testRenew, 3*time.Second)
	}
	if e.IsLeader() {
		t.Error("IsLeader true after stepping down")
	}
	// Renewals possible again: the same candidate leads again.
	refuse.Store(false)
	select {
	case <-leading:
	case <-time.After(waitTimeout):
		t.Fatal("did not lead again once the API answered")
	}
}

package upstream

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/model"
)

// fakeClock is a manually advanced clock for cooldown tests.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) read() int64             { return c.now.Load() }
func (c *fakeClock) advance(d time.Duration) { c.now.Add(int64(d)) }

func newTestRegistry() (*Registry, *fakeClock) {
	c := &fakeClock{}
	c.now.Store(1) // a clock value of 0 means "healthy"; start past it
	r := NewRegistry()
	r.clock = c.read
	return r, c
}

func eps(ports ...int32) []model.Endpoint {
	out := make([]model.Endpoint, len(ports))
	for i, p := range ports {
		out[i] = model.Endpoint{Address: "10.0.0.1", Port: p}
	}
	return out
}

func addr(port int32) string { return fmt.Sprintf("10.0.0.1:%d", port) }

func pickN(t *testing.T, b *Backend, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		a, ok := b.Pick(nil)
		if !ok {
			t.Fatalf("Pick %d: ok = false", i)
		}
		out[i] = a
	}
	return out
}

func TestPickRoundRobin(t *testing.T) {
	r, _ := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1, 2, 3)}})[0]
	got := pickN(t, b, 7)
	want := []string{addr(1), addr(2), addr(3), addr(1), addr(2), addr(3), addr(1)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("picks = %v, want %v", got, want)
	}
}

func TestPickNoEndpoints(t *testing.T) {
	r, _ := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80"}})[0]
	if a, ok := b.Pick(nil); ok {
		t.Fatalf("Pick on empty backend = %q, true", a)
	}
}

func TestPickSkipsTried(t *testing.T) {
	r, _ := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1, 2, 3)}})[0]
	for i := 0; i < 6; i++ {
		a, ok := b.Pick([]string{addr(1), addr(3)})
		if !ok || a != addr(2) {
			t.Fatalf("Pick(tried 1,3) = %q, %v; want %q", a, ok, addr(2))
		}
	}
	if a, ok := b.Pick([]string{addr(1), addr(2), addr(3)}); ok {
		t.Fatalf("Pick with everything tried = %q, true", a)
	}
}

func TestCooldown(t *testing.T) {
	r, clock := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1, 2, 3)}})[0]
	b.ReportConnectFailure(addr(2))
	for _, a := range pickN(t, b, 9) {
		if a == addr(2) {
			t.Fatalf("picked %s during its cooldown", a)
		}
	}
	clock.advance(connectFailureCooldown + time.Millisecond)
	seen := map[string]bool{}
	for _, a := range pickN(t, b, 3) {
		seen[a] = true
	}
	if !seen[addr(2)] {
		t.Fatalf("endpoint 2 not picked after its cooldown expired: %v", seen)
	}
	if b.downHint.Load() != 0 {
		t.Fatalf("down hint not cleared after every cooldown expired")
	}
}

func TestCooldownAllDownPicksEarliestExpiry(t *testing.T) {
	r, clock := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1, 2)}})[0]
	b.ReportConnectFailure(addr(2))
	clock.advance(time.Millisecond)
	b.ReportConnectFailure(addr(1))
	for i := 0; i < 4; i++ {
		if a, ok := b.Pick(nil); !ok || a != addr(2) {
			t.Fatalf("all down: Pick = %q, %v; want the earliest to recover, %s", a, ok, addr(2))
		}
	}
	// Tried endpoints are skipped even as the fallback.
	if a, ok := b.Pick([]string{addr(2)}); !ok || a != addr(1) {
		t.Fatalf("Pick(tried 2) = %q, %v; want %s", a, ok, addr(1))
	}
}

func TestSyncKeepsStateOfSurvivingBackends(t *testing.T) {
	r, _ := newTestRegistry()
	first := r.Sync([]model.Backend{
		{ID: "ns/a:80", Endpoints: eps(1, 2, 3)},
		{ID: "ns/b:80", Endpoints: eps(9)},
	})
	a := first[0]
	pickN(t, a, 1) // cursor now points at endpoint 2
	a.ReportConnectFailure(addr(3))

	// A new snapshot drops b, keeps a with one more endpoint, adds c.
	second := r.Sync([]model.Backend{
		{ID: "ns/a:80", Endpoints: eps(1, 2, 3, 4)},
		{ID: "ns/c:80", Endpoints: eps(7)},
	})
	if second[0] != a {
		t.Fatalf("surviving backend got a new handle")
	}
	if second[1] == a || second[1] == first[1] || len(second[1].Endpoints()) != 1 || second[1].Endpoints()[0].Port != 7 {
		t.Fatalf("handles not aligned with input: c got %v", second[1].Endpoints())
	}
	if got := len(a.Endpoints()); got != 4 {
		t.Fatalf("endpoints not replaced: %d", got)
	}
	// The cursor continued (1 pick done) and endpoint 3's cooldown survived.
	got := pickN(t, a, 3)
	want := []string{addr(2), addr(4), addr(1)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("picks after sync = %v, want %v", got, want)
	}
	if r.SetEndpoints("ns/b:80", eps(1)) {
		t.Fatalf("SetEndpoints on a dropped backend returned true")
	}
	// The dropped handle still serves requests that loaded it.
	if a, ok := first[1].Pick(nil); !ok || a != addr(9) {
		t.Fatalf("dropped handle Pick = %q, %v", a, ok)
	}
}

func TestSetEndpoints(t *testing.T) {
	r, _ := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1)}})[0]
	if !r.SetEndpoints("ns/a:80", eps(5, 6, 5)) {
		t.Fatalf("SetEndpoints on a known backend returned false")
	}
	if got := len(b.Endpoints()); got != 2 {
		t.Fatalf("duplicate endpoint kept: %v", b.Endpoints())
	}
	seen := map[string]int{}
	for _, a := range pickN(t, b, 4) {
		seen[a]++
	}
	if seen[addr(5)] != 2 || seen[addr(6)] != 2 {
		t.Fatalf("picks after SetEndpoints = %v", seen)
	}
	if !r.SetEndpoints("ns/a:80", nil) {
		t.Fatalf("clearing endpoints returned false")
	}
	if _, ok := b.Pick(nil); ok {
		t.Fatalf("Pick after clearing endpoints returned ok")
	}
	if r.SetEndpoints("ns/unknown:80", eps(1)) {
		t.Fatalf("SetEndpoints on unknown ID returned true")
	}
}

// TestSyncKeepsNewerLaneEndpoints covers the race between the two lanes: a
// snapshot built before an EndpointSlice update is applied after it, and must
// not put the older endpoint list back.
// TestLastCallWins checks the ordering contract: snapshots and lane updates
// each install their endpoints, so the call made last — computed from the
// newest view — decides, whichever lane it came by.
func TestLastCallWins(t *testing.T) {
	r, _ := newTestRegistry()
	snap := []model.Backend{{ID: "ns/a:80", Endpoints: eps(1)}, {ID: "ns/b:80", Endpoints: eps(1)}}
	handles := r.Sync(snap)
	a, b := handles[0], handles[1]
	if !r.SetEndpoints("ns/a:80", eps(2)) {
		t.Fatal("SetEndpoints failed")
	}
	if got := a.Endpoints(); len(got) != 1 || got[0].Port != 2 {
		t.Fatalf("lane update not installed: %v", got)
	}
	if got := b.Endpoints(); len(got) != 1 || got[0].Port != 1 {
		t.Fatalf("lane update for a touched b: %v", got)
	}
	// A later snapshot (say, after the Service changed its port) replaces
	// what the lane installed.
	r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(7)}, {ID: "ns/b:80", Endpoints: eps(3)}})
	if got := a.Endpoints(); len(got) != 1 || got[0].Port != 7 {
		t.Fatalf("a later snapshot did not replace lane endpoints: %v", got)
	}
	if got := b.Endpoints(); len(got) != 1 || got[0].Port != 3 {
		t.Fatalf("snapshot endpoints not applied: %v", got)
	}
	// A backend that left and came back is new: the snapshot seeds it.
	r.Sync(snap[1:])
	again := r.Sync(snap)[0]
	if again == a {
		t.Fatal("a backend that left the registry kept its handle")
	}
	if got := again.Endpoints(); len(got) != 1 || got[0].Port != 1 {
		t.Fatalf("re-added backend not seeded from the snapshot: %v", got)
	}
	if r.SetEndpoints("ns/unknown:80", eps(9)) {
		t.Fatal("SetEndpoints accepted an unknown backend")
	}
}

func TestExternalNameEndpointsComeFromSnapshots(t *testing.T) {
	r, _ := newTestRegistry()
	ext := func(name string) []model.Backend {
		return []model.Backend{{ID: "ns/ext:80", ExternalName: name, Endpoints: []model.Endpoint{{Address: name, Port: 80}}}}
	}
	b := r.Sync(ext("a.example"))[0]
	if r.SetEndpoints("ns/ext:80", eps(1)) {
		t.Fatal("SetEndpoints accepted an ExternalName backend")
	}
	r.Sync(ext("b.example"))
	if got := b.Endpoints(); len(got) != 1 || got[0].Address != "b.example" {
		t.Fatalf("ExternalName change not applied: %v", got)
	}
	// A Service that turns from EndpointSlices into ExternalName gets its
	// name even though the lane had set its endpoints.
	r.Sync([]model.Backend{{ID: "ns/svc:80", Endpoints: eps(1)}})
	r.SetEndpoints("ns/svc:80", eps(2))
	got := r.Sync([]model.Backend{{ID: "ns/svc:80", ExternalName: "c.example", Endpoints: []model.Endpoint{{Address: "c.example", Port: 80}}}})[0].Endpoints()
	if len(got) != 1 || got[0].Address != "c.example" {
		t.Fatalf("switch to ExternalName not applied: %v", got)
	}
	// And back: snapshots seed it again until the lane speaks.
	got = r.Sync([]model.Backend{{ID: "ns/svc:80", Endpoints: eps(3)}})[0].Endpoints()
	if len(got) != 1 || got[0].Port != 3 {
		t.Fatalf("switch back from ExternalName not applied: %v", got)
	}
}

func TestIPv6HostPort(t *testing.T) {
	r, _ := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: []model.Endpoint{{Address: "fd00::1", Port: 8080}}}})[0]
	if a, _ := b.Pick(nil); a != "[fd00::1]:8080" {
		t.Fatalf("Pick = %q", a)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	r, _ := newTestRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1, 2, 3)}})[0]
	b.ReportConnectFailure(addr(1))
	tried := []string{addr(2)}
	if n := testing.AllocsPerRun(100, func() { b.Pick(tried) }); n != 0 {
		t.Fatalf("Pick allocated %v times, want 0", n)
	}
}

// TestConcurrentPickAndUpdate is meant for the race detector: picks, failure
// reports, endpoint updates and syncs all run at once.
func TestConcurrentPickAndUpdate(t *testing.T) {
	r := NewRegistry()
	b := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1, 2, 3)}})[0]
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if a, ok := b.Pick(nil); ok && i%10 == 0 {
					b.ReportConnectFailure(a)
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			r.SetEndpoints("ns/a:80", eps(1, 2, 3, 4))
		} else {
			r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(2, 3)}})
		}
	}
	wg.Wait()
}

func BenchmarkPick(b *testing.B) {
	r := NewRegistry()
	be := r.Sync([]model.Backend{{ID: "ns/a:80", Endpoints: eps(1, 2, 3, 4)}})[0]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			be.Pick(nil)
		}
	})
}

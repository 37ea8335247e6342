package status

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leader election defaults, those of the Kubernetes core components: a
// crashed leader is replaced within about LeaseDuration+RetryPeriod, a
// cancelled one (shutdown releases the Lease) within about RetryPeriod.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// ElectorConfig configures an Elector. Zero durations take the defaults.
type ElectorConfig struct {
	Client kubernetes.Interface
	// Namespace and ElectionID name the coordination.k8s.io Lease.
	Namespace, ElectionID string
	// Identity is this candidate's name in the Lease (the pod name); empty
	// means hostname plus a random suffix.
	Identity string
	// LeaseDuration is how long others wait before taking over a Lease
	// that is not renewed. The Lease stores it in whole seconds, so it
	// must be at least 1s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before it
	// steps down; it must be shorter than LeaseDuration.
	RenewDeadline time.Duration
	// RetryPeriod paces acquisition and renewal attempts.
	RetryPeriod time.Duration
	Logger      *slog.Logger
}

// Elector campaigns for a Lease with client-go's leaderelection and runs the
// leader's work while it holds it.
//
// Two guards go beyond client-go so that at most one replica writes status
// at a time:
//
//   - The leader's context is cancelled once RenewDeadline has passed since
//     the last renewal the API server confirmed, even while client-go is
//     still retrying (client-go ends leadership only after its retries and a
//     release attempt, which can outlast the LeaseDuration others wait).
//   - On shutdown the Lease is released (ReleaseOnCancel) only after the
//     leader's work has returned, so the successor never overlaps with the
//     last writes of its predecessor.
type Elector struct {
	cfg ElectorConfig
	log *slog.Logger
	// term is the context of the current leadership, nil when not leading.
	// IsLeader reads its Err rather than a flag that a goroutine clears, so
	// it turns false at the very moment leadership ends.
	term atomic.Pointer[context.Context]
}

// NewElector validates cfg and fills in defaults.
func NewElector(cfg ElectorConfig) (*Elector, error) {
	if cfg.Client == nil {
		return nil, errors.New("leader election: a Kubernetes client is required")
	}
	if errs := validation.IsDNS1123Label(cfg.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("leader election: namespace %q: %s", cfg.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(cfg.ElectionID); len(errs) > 0 {
		return nil, fmt.Errorf("leader election: election ID %q: %s", cfg.ElectionID, strings.Join(errs, "; "))
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	if cfg.LeaseDuration < time.Second {
		return nil, fmt.Errorf("leader election: lease duration %v is under 1s, the Lease's resolution", cfg.LeaseDuration)
	}
	if cfg.Identity == "" {
		id, err := defaultIdentity()
		if err != nil {
			return nil, err
		}
		cfg.Identity = id
	}
	e := &Elector{cfg: cfg, log: cfg.Logger}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	// Build one elector now so that invalid durations fail at start-up,
	// not on the first campaign.
	if _, err := e.newLeaderElector(e.newLock(), leaderelection.LeaderCallbacks{
		OnStartedLeading: func(context.Context) {}, OnStoppedLeading: func() {},
	}); err != nil {
		return nil, fmt.Errorf("leader election: %w", err)
	}
	return e, nil
}

// defaultIdentity is hostname_random: unique even for two processes on one
// host, which would otherwise both believe they hold the Lease.
func defaultIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b), nil
}

// Identity returns this candidate's identity in the Lease.
func (e *Elector) Identity() string { return e.cfg.Identity }

// IsLeader reports whether this replica currently leads. It turns false as
// soon as leadership ends, possibly before onStart has returned.
func (e *Elector) IsLeader() bool {
	t := e.term.Load()
	return t != nil && (*t).Err() == nil
}

// Run campaigns until ctx ends, then returns nil. Each time this replica
// becomes leader it calls onStart with a context that ends when leadership
// does; onStart must return soon after that context ends. Once it has
// returned, onStop is called (if not nil) and the campaign starts again.
// The Lease is released when ctx ends, after onStart has returned.
func (e *Elector) Run(ctx context.Context, onStart func(ctx context.Context), onStop func()) error {
	if onStart == nil {
		// Leading with nothing to do still answers IsLeader.
		onStart = func(ctx context.Context) { <-ctx.Done() }
	}
	for ctx.Err() == nil {
		led := e.campaign(ctx, onStart)
		if led && onStop != nil {
			onStop()
		}
	}
	return nil
}

// campaign runs one client-go election round: acquire, lead, lose. It
// returns whether this replica led, after onStart has returned and the
// Lease has been released if ctx ended.
func (e *Elector) campaign(ctx context.Context, onStart func(ctx context.Context)) bool {
	round, cancelRound := context.WithCancel(ctx)
	defer cancelRound()
	lock := e.newLock()

	var (
		mu      sync.Mutex
		ended   bool // the round is over; a late OnStartedLeading must not lead
		led     bool
		working sync.WaitGroup
	)
	callbacks := leaderelection.LeaderCallbacks{
		// client-go calls this on its own goroutine; it may run after the
		// round is already over when leadership is lost at once.
		OnStartedLeading: func(lctx context.Context) {
			mu.Lock()
			if ended || lctx.Err() != nil {
				mu.Unlock()
				return
			}
			led = true
			working.Add(1)
			e.term.Store(&lctx)
			mu.Unlock()
			defer working.Done()

			go e.watchRenewals(lctx, lock, cancelRound)
			e.log.Info("became leader", "lease", lock.Describe(), "identity", e.cfg.Identity)
			onStart(lctx)
		},
		OnStoppedLeading: func() {},
		OnNewLeader: func(id string) {
			if id != e.cfg.Identity {
				e.log.Info("leader observed", "lease", lock.Describe(), "leader", id)
			}
		},
	}
	le, err := e.newLeaderElector(lock, callbacks)
	if err != nil {
		// Validated in NewElector; only a bug gets here. Pause so that a
		// persistent failure cannot spin.
		e.log.Error("leader election", "error", err)
		_ = sleep(ctx, e.cfg.RetryPeriod)
		return false
	}
	le.Run(round)

	mu.Lock()
	ended = true
	e.term.Store(nil)
	mu.Unlock()
	working.Wait()
	if led {
		e.log.Info("stopped leading", "lease", lock.Describe(), "identity", e.cfg.Identity)
		if ctx.Err() != nil {
			e.release(lock)
		}
	}
	return led
}

// watchRenewals cancels the round once RenewDeadline has passed since the
// last confirmed renewal, so the leader's work stops before any other
// replica may consider the Lease expired (LeaseDuration > RenewDeadline).
func (e *Elector) watchRenewals(ctx context.Context, lock *renewLock, stepDown context.CancelFunc) {
	tick := time.NewTicker(max(e.cfg.RetryPeriod/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if since := time.Since(lock.lastRenewal()); since > e.cfg.RenewDeadline {
				e.log.Warn("lease not renewed in time; stepping down", "lease", lock.Describe(), "since_renewal", since.Round(time.Millisecond))
				stepDown()
				return
			}
		}
	}
}

// release gives up the Lease if this replica still holds it, so a
// successor takes over after RetryPeriod instead of LeaseDuration. It is
// the client-go release, run after the leader's work has stopped.
func (e *Elector) release(lock *renewLock) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != e.cfg.Identity {
		return
	}
	now := metav1.NewTime(time.Now())
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions:    rec.LeaderTransitions,
		LeaseDurationSeconds: 1,
		RenewTime:            now,
		AcquireTime:          now,
	})
	if err != nil {
		e.log.Warn("could not release the lease; a successor waits for it to expire", "lease", lock.Describe(), "error", err)
		return
	}
	e.log.Info("released the lease", "lease", lock.Describe())
}

func (e *Elector) newLock() *renewLock {
	return &renewLock{
		identity: e.cfg.Identity,
		LeaseLock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.Namespace, Name: e.cfg.ElectionID},
			Client:     e.cfg.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.cfg.Identity},
		},
	}
}

func (e *Elector) newLeaderElector(lock *renewLock, cb leaderelection.LeaderCallbacks) (*leaderelection.LeaderElector, error) {
	return leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: e.cfg.LeaseDuration,
		RenewDeadline: e.cfg.RenewDeadline,
		RetryPeriod:   e.cfg.RetryPeriod,
		Callbacks:     cb,
		// Released by campaign after onStart returns instead; see Elector.
		ReleaseOnCancel: false,
		Name:            e.cfg.ElectionID,
	})
}

// renewLock is a LeaseLock that notes when the API server last confirmed
// this candidate as holder. The time noted is when the request was sent:
// the Lease cannot have been renewed later than that, which keeps the
// step-down guard conservative.
type renewLock struct {
	*resourcelock.LeaseLock
	identity string
	// renewed holds a time.Time with its monotonic reading, so a wall
	// clock step cannot fake or hide an overdue renewal.
	renewed atomic.Pointer[time.Time]
}

func (l *renewLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	sent := time.Now()
	err := l.LeaseLock.Create(ctx, r)
	l.note(err, r, sent)
	return err
}

func (l *renewLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	sent := time.Now()
	err := l.LeaseLock.Update(ctx, r)
	l.note(err, r, sent)
	return err
}

func (l *renewLock) note(err error, r resourcelock.LeaderElectionRecord, sent time.Time) {
	if err == nil && r.HolderIdentity == l.identity {
		l.renewed.Store(&sent)
	}
}

// lastRenewal returns when the last confirmed renewal was sent; the zero
// time (long overdue) before any.
func (l *renewLock) lastRenewal() time.Time {
	if t := l.renewed.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

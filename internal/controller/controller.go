package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torii-dev/torii/internal/dataplane"
	"github.com/torii-dev/torii/internal/metrics"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// Config configures a Controller.
type Config struct {
	Translate translate.Config
	Dataplane *dataplane.Dataplane
	Metrics   *metrics.Metrics // may be nil
	Logger    *slog.Logger
}

// Controller builds and publishes snapshots. Apply is serialised; the other
// methods are safe for concurrent use.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	generation uint64
	known      map[string]struct{} // problems already logged, so a rebuild never repeats them
	// lastInvalid is the last validation failure logged.
	lastInvalid string

	ready  atomic.Bool
	result atomic.Pointer[translate.Result]
}

// New creates a Controller.
func New(cfg Config) *Controller {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, log: log, known: map[string]struct{}{}}
}

// ErrInvalidSnapshot wraps a model invariant violation: a translator bug,
// never a user error. The previous snapshot keeps serving.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// Apply translates objs and publishes the result. On failure the last good
// snapshot keeps serving and the error is returned.
func (c *Controller) Apply(objs *store.Objects) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	res := translate.Build(c.cfg.Translate, objs)
	if err := res.Snapshot.Validate(); err != nil {
		c.observeReload(false, start)
		// Rebuilds repeat until the objects change; say it once.
		if msg := err.Error(); msg != c.lastInvalid {
			c.lastInvalid = msg
			c.log.Error("translated snapshot failed validation; keeping the previous one", "error", err)
		}
		return fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	c.lastInvalid = ""
	c.generation++
	res.Snapshot.Generation = c.generation
	for _, err := range c.cfg.Dataplane.Apply(res.Snapshot) {
		c.log.Warn("certificate not loaded", "error", err)
	}
	c.result.Store(&res)
	c.ready.Store(true)
	c.logNewProblems(res.Problems)
	c.observeReload(true, start)
	if m := c.cfg.Metrics; m != nil {
		m.Generation.Set(float64(c.generation))
		var errs, warns, routes, eps int
		for _, p := range res.Problems {
			if p.Severity == translate.SeverityError {
				errs++
			} else {
				warns++
			}
		}
		for _, vh := range res.Snapshot.VirtualHosts {
			routes += len(vh.Routes)
		}
		for _, b := range res.Snapshot.Backends {
			eps += len(b.Endpoints)
		}
		m.Problems.WithLabelValues(string(translate.SeverityError)).Set(float64(errs))
		m.Problems.WithLabelValues(string(translate.SeverityWarning)).Set(float64(warns))
		m.Routes.Set(float64(routes))
		m.Backends.Set(float64(len(res.Snapshot.Backends)))
		m.Endpoints.Set(float64(eps))
	}
	c.log.Debug("snapshot published", "generation", c.generation,
		"vhosts", len(res.Snapshot.VirtualHosts), "backends", len(res.Snapshot.Backends),
		"problems", len(res.Problems), "took", time.Since(start))
	return nil
}

// Ready reports whether a snapshot is live.
func (c *Controller) Ready() bool { return c.ready.Load() }

// Result returns the last published translation, or nil.
func (c *Controller) Result() *translate.Result { return c.result.Load() }

func (c *Controller) observeReload(ok bool, start time.Time) {
	m := c.cfg.Metrics
	if m == nil {
		return
	}
	m.ReloadDuration.Observe(time.Since(start).Seconds())
	if ok {
		m.ReloadSuccessful.Set(1)
	} else {
		m.ReloadSuccessful.Set(0)
	}
}

// logNewProblems logs each problem the first time it appears and forgets
// problems that went away, so a fixed-then-broken object is logged again.
func (c *Controller) logNewProblems(problems []translate.Problem) {
	current := make(map[string]struct{}, len(problems))
	for _, p := range problems {
		key := string(p.Severity) + "\x00" + p.Reason + "\x00" + p.String()
		current[key] = struct{}{}
		if _, seen := c.known[key]; seen {
			continue
		}
		c.log.Warn("object problem", "severity", p.Severity, "reason", p.Reason,
			"object", p.Object.String(), "message", p.Message)
	}
	c.known = current
}

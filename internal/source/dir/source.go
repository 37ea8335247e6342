package dir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/torii-dev/torii/internal/store"
)

const (
	defaultDebounce = 100 * time.Millisecond
	defaultResync   = time.Second

	// maxDelayFactor bounds, as a multiple of Debounce, how long a steady
	// stream of events can postpone a scan, so that a file rewritten in a
	// loop still shows up promptly.
	maxDelayFactor = 5
)

// Config configures a Source.
type Config struct {
	// Dir is the directory whose manifests are served. It must exist.
	Dir string
	// Logger receives load, rejection and watch messages. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Debounce is how long the directory must be quiet after a file event
	// before it is scanned, so that bursts (an editor's save, a ConfigMap
	// update) cost one scan and one update. Zero means 100ms.
	Debounce time.Duration
	// Resync is the period of the stat-based scan that catches changes the
	// file watcher missed, for example on filesystems without inotify.
	// Zero means 1s.
	Resync time.Duration
}

// Update is a full view of the directory.
type Update struct {
	// Objects holds every file's last good content, each slice sorted by
	// namespace/name. It is never nil.
	Objects *store.Objects
	// Errors lists, sorted by path, the files whose current content cannot
	// be read or decoded (their last good content still serves) and the
	// files that lost objects to an earlier file defining the same object.
	// A file may appear twice: once for each reason.
	Errors []FileError
}

// Source serves the manifests in one directory. Load reads them once; Run
// keeps the view current. A Source is used by one caller: Load before Run,
// and Run at most once at a time.
type Source struct {
	dir      string
	log      *slog.Logger
	debounce time.Duration
	resync   time.Duration

	// Tests set these.
	noWatch   bool
	afterScan func(scanResult)

	running atomic.Bool

	mu      sync.Mutex
	loaded  bool
	files   map[string]*fileState
	listErr string
}

// New returns a Source for cfg.Dir, which must be an existing directory.
func New(cfg Config) (*Source, error) {
	if cfg.Dir == "" {
		return nil, errors.New("manifest directory: no path given")
	}
	fi, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("manifest directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("manifest directory %s: not a directory", cfg.Dir)
	}
	if cfg.Debounce < 0 || cfg.Resync < 0 {
		return nil, fmt.Errorf("manifest directory %s: negative debounce or resync period", cfg.Dir)
	}
	s := &Source{
		dir:      filepath.Clean(cfg.Dir),
		log:      cfg.Logger,
		debounce: cfg.Debounce,
		resync:   cfg.Resync,
		files:    make(map[string]*fileState),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.debounce == 0 {
		s.debounce = defaultDebounce
	}
	if s.resync == 0 {
		s.resync = defaultResync
	}
	return s, nil
}

// Load reads the directory synchronously and returns the full view. If the
// directory cannot be listed, the view is the previous one (empty at first)
// and the listing error is reported against the directory's path.
func (s *Source) Load() Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
	res, err := s.scan(nil, true)
	s.scanned(res)
	u := s.build()
	if err != nil {
		u.Errors = append([]FileError{{Path: s.dir, Err: err}}, u.Errors...)
	}
	return u
}

// Run watches the directory until ctx is done and calls onUpdate, never
// concurrently, with a new full view after each effective change: a file
// edited, added, removed or renamed, including atomic-rename saves and
// ConfigMap ..data symlink swaps. A change whose content is identical (a
// touch, a rewrite with the same bytes) causes no call. If Load was never
// called, the first call delivers the initial view.
//
// Changes are noticed through file events, debounced, and through a
// periodic stat-based scan that also covers filesystems without file
// events. Run returns nil when ctx is done.
func (s *Source) Run(ctx context.Context, onUpdate func(Update)) error {
	if onUpdate == nil {
		return errors.New("manifest directory: Run needs an onUpdate function")
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("manifest directory: Run is already running")
	}
	defer s.running.Store(false)

	w := s.newWatch()
	defer w.close()

	deliver := func(dirty map[string]bool, all bool) {
		if u, ok := s.refresh(dirty, all); ok {
			onUpdate(u)
		}
	}
	// The watch starts after Load returned; this scan picks up anything
	// that changed in between (or delivers the first view).
	deliver(nil, false)

	resync := time.NewTicker(s.resync)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	var (
		dirty        = make(map[string]bool) // names seen in events since the last scan
		all          bool                    // whether the next scan must re-read every file
		fire         <-chan time.Time        // nil when no scan is pending
		pendingSince time.Time
	)
	arm := func() {
		now := time.Now()
		if fire == nil {
			fire, pendingSince = timer.C, now
		}
		wait := min(s.debounce, pendingSince.Add(maxDelayFactor*s.debounce).Sub(now))
		timer.Reset(max(wait, 0))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.events():
			if !ok {
				w.stop()
				continue
			}
			if w.isSelf(ev) {
				// The directory itself was removed or replaced; the
				// next scan re-reads everything once the watch is back.
				all = true
			} else {
				// Reading files named in events, whatever their stat
				// says, catches edits that leave size and mtime unchanged.
				dirty[filepath.Base(ev.Name)] = true
			}
			arm()
		case err, ok := <-w.errors():
			if !ok {
				w.stop()
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost; only a full re-read is trustworthy.
				all = true
				arm()
			}
			s.log.Warn("manifest directory watch error", "dir", s.dir, "err", err)
		case <-fire:
			fire = nil
			all = w.ensure() || all
			deliver(dirty, all)
			clear(dirty)
			all = false
		case <-resync.C:
			deliver(nil, w.ensure())
		}
	}
}

// refresh scans the directory and, when something effectively changed,
// returns the new view.
func (s *Source) refresh(dirty map[string]bool, all bool) (Update, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.scan(dirty, all)
	s.scanned(res)
	if err != nil {
		// Keep serving the last view: a directory that disappears for a
		// moment (an unmount, a redeploy) must not drop every route.
		if msg := err.Error(); msg != s.listErr {
			s.log.Error("cannot read manifest directory; keeping the last view", "dir", s.dir, "err", err)
			s.listErr = msg
		}
		return Update{}, false
	}
	if s.listErr != "" {
		s.log.Info("manifest directory readable again", "dir", s.dir)
		s.listErr = ""
	}
	if !res.changed && s.loaded {
		return Update{}, false
	}
	s.loaded = true
	return s.build(), true
}

func (s *Source) scanned(res scanResult) {
	if s.afterScan != nil {
		s.afterScan(res)
	}
}

// watch wraps the directory's file watcher. When no watcher can be had,
// its channels are nil and the periodic scan alone notices changes.
type watch struct {
	dir    string
	log    *slog.Logger
	w      *fsnotify.Watcher
	active bool      // whether dir is currently watched
	id     [2]uint64 // device and inode of the watched directory
	warned bool      // whether the failure to watch was logged
}

func (s *Source) newWatch() *watch {
	wt := &watch{dir: s.dir, log: s.log}
	if s.noWatch {
		return wt
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("cannot watch manifest directory; relying on the periodic scan",
			"dir", s.dir, "period", s.resync, "err", err)
		return wt
	}
	wt.w = w
	wt.ensure()
	return wt
}

// ensure (re)establishes the watch when it was lost or the directory was
// replaced by another one, and reports whether it did so after a loss, in
// which case events may have been missed.
func (wt *watch) ensure() bool {
	if wt.w == nil {
		return false
	}
	fi, err := os.Stat(wt.dir)
	if err != nil {
		// The scan reports the missing directory; nothing to watch yet.
		return false
	}
	dev, ino := fileID(fi)
	id := [2]uint64{dev, ino}
	if wt.active && id == wt.id {
		return false
	}
	wasWatched := wt.id != [2]uint64{}
	// The old watch may be gone already along with the old directory.
	_ = wt.w.Remove(wt.dir)
	if err := wt.w.Add(wt.dir); err != nil {
		wt.active = false
		if !wt.warned {
			wt.log.Warn("cannot watch manifest directory; relying on the periodic scan until it can",
				"dir", wt.dir, "err", err)
			wt.warned = true
		}
		return false
	}
	if wt.warned {
		wt.log.Info("watching manifest directory", "dir", wt.dir)
		wt.warned = false
	}
	wt.active, wt.id = true, id
	return wasWatched
}

// isSelf reports whether ev is about the watched directory itself going
// away, which ends the watch.
func (wt *watch) isSelf(ev fsnotify.Event) bool {
	if filepath.Clean(ev.Name) != wt.dir || !ev.Has(fsnotify.Remove|fsnotify.Rename) {
		return false
	}
	wt.active = false
	return true
}

func (wt *watch) events() <-chan fsnotify.Event {
	if wt.w == nil {
		return nil
	}
	return wt.w.Events
}

func (wt *watch) errors() <-chan error {
	if wt.w == nil {
		return nil
	}
	return wt.w.Errors
}

// stop abandons the watcher after its channels closed, leaving the
// periodic scan in charge.
func (wt *watch) stop() {
	if wt.w == nil {
		return
	}
	wt.log.Warn("manifest directory watcher stopped; relying on the periodic scan", "dir", wt.dir)
	wt.close()
}

func (wt *watch) close() {
	if wt.w != nil {
		_ = wt.w.Close()
		wt.w = nil
		wt.active = false
	}
}

package dir

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
)

// waitTimeout bounds every wait for an update or scan; the contract is one
// second, the slack absorbs a loaded test machine.
const waitTimeout = 3 * time.Second

// testWriter sends log output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type timedUpdate struct {
	Update
	at time.Time
}

type harness struct {
	t       *testing.T
	dir     string
	src     *Source
	initial Update // what Load returned
	updates chan timedUpdate
	scans   chan scanResult
}

type options struct {
	noWatch  bool
	resync   time.Duration
	skipLoad bool
}

// start runs a Source on dir until the test ends, after Load unless
// opt.skipLoad, and returns once Run has done its first scan, so the watch
// is in place.
func start(t *testing.T, dir string, opt options) *harness {
	t.Helper()
	src, err := New(Config{
		Dir:    dir,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Resync: opt.resync,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:       t,
		dir:     dir,
		src:     src,
		updates: make(chan timedUpdate, 64),
		scans:   make(chan scanResult, 1024),
	}
	src.noWatch = opt.noWatch
	src.afterScan = func(r scanResult) {
		select {
		case h.scans <- r:
		default: // a test that cares drains the channel first
		}
	}
	if !opt.skipLoad {
		h.initial = src.Load()
		<-h.scans
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(u Update) {
			select {
			case h.updates <- timedUpdate{Update: u, at: time.Now()}:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	h.waitScan(time.Time{}, 0)
	return h
}

func (h *harness) write(name, content string) { h.t.Helper(); writeFile(h.t, h.dir, name, content) }

func (h *harness) remove(name string) {
	h.t.Helper()
	if err := os.Remove(filepath.Join(h.dir, name)); err != nil {
		h.t.Fatal(err)
	}
}

// wait returns the first update satisfying cond, failing the test after
// waitTimeout.
func (h *harness) wait(what string, cond func(Update) bool) timedUpdate {
	h.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case u := <-h.updates:
			if cond(u.Update) {
				return u
			}
			h.t.Logf("update not yet %s: services %v, errors %v", what, ports(u.Update), u.Errors)
		case <-deadline.C:
			h.t.Fatalf("no update %s within %v", what, waitTimeout)
		}
	}
}

// waitScan waits for a scan that started after since and read at least
// (minRead >= 0) or exactly none (minRead < 0) of the files.
func (h *harness) waitScan(since time.Time, minRead int) scanResult {
	h.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case r := <-h.scans:
			if r.started.Before(since) {
				continue
			}
			if (minRead >= 0 && r.read >= minRead) || (minRead < 0 && r.read == 0) {
				return r
			}
		case <-deadline.C:
			h.t.Fatalf("no scan since %v reading %d files within %v", since, minRead, waitTimeout)
		}
	}
}

func (h *harness) expectNoUpdate() {
	h.t.Helper()
	select {
	case u := <-h.updates:
		h.t.Errorf("unexpected update: services %v, errors %v", ports(u.Update), u.Errors)
	default:
	}
}

// ports maps each Service name to its first port.
func ports(u Update) map[string]int32 {
	out := make(map[string]int32)
	if u.Objects == nil {
		return out
	}
	for _, s := range u.Objects.Services {
		out[s.Name] = s.Spec.Ports[0].Port
	}
	return out
}

func errorPaths(u Update) []string {
	var out []string
	for _, e := range u.Errors {
		out = append(out, filepath.Base(e.Path))
	}
	return out
}

func hasPort(name string, port int32) func(Update) bool {
	return func(u Update) bool { p, ok := ports(u)[name]; return ok && p == port }
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "f.yaml", "")
	for _, cfg := range []Config{
		{},
		{Dir: filepath.Join(dir, "missing")},
		{Dir: file},
		{Dir: dir, Debounce: -time.Second},
		{Dir: dir, Resync: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if s.debounce != defaultDebounce || s.resync != defaultResync || s.log == nil {
		t.Errorf("defaults not applied: debounce %v resync %v", s.debounce, s.resync)
	}
	if err := s.Run(context.Background(), nil); err == nil {
		t.Error("Run with a nil callback succeeded")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80)+"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
	writeFile(t, dir, "b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [\n")
	writeFile(t, dir, "c.txt", serviceYAML("not-a-manifest", 1))
	h := start(t, dir, options{})

	if got := ports(h.initial); len(got) != 1 || got["web"] != 80 {
		t.Errorf("services = %v, want web:80", got)
	}
	if got := errorPaths(h.initial); !slices.Equal(got, []string{"b.yaml"}) {
		t.Errorf("errors = %v, want b.yaml", h.initial.Errors)
	}
	if ts := h.initial.Objects.Services[0].CreationTimestamp; !ts.IsZero() {
		t.Errorf("creationTimestamp = %v, want zero as in the manifest", ts)
	}
	h.expectNoUpdate()
}

func TestRunEdit(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	h := start(t, dir, options{})

	changed := time.Now()
	h.write("a.yaml", serviceYAML("web", 81))
	u := h.wait("with web:81", hasPort("web", 81))
	latency := u.at.Sub(changed)
	t.Logf("change→callback latency: %v", latency)
	if latency > time.Second {
		t.Errorf("callback %v after the change, want within 1s", latency)
	}
}

func TestRunAddAndDelete(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	h := start(t, dir, options{})

	h.write("b.yaml", serviceYAML("api", 90))
	h.wait("with api added", func(u Update) bool {
		p := ports(u)
		return p["api"] == 90 && p["web"] == 80
	})

	h.remove("a.yaml")
	u := h.wait("without web", func(u Update) bool { _, ok := ports(u)["web"]; return !ok })
	if got := ports(u.Update); len(got) != 1 || got["api"] != 90 {
		t.Errorf("services = %v, want only api:90", got)
	}
}

func TestRunAtomicRenameSave(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	h := start(t, dir, options{})

	// Editors write a hidden temporary file and rename it over the
	// original, so the original's inode changes and no partial content is
	// ever visible.
	h.write(".a.yaml.tmp", serviceYAML("web", 81))
	if err := os.Rename(filepath.Join(dir, ".a.yaml.tmp"), filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	h.wait("with web:81", hasPort("web", 81))

	// A rename to a new name is a removal plus an addition.
	if err := os.Rename(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	h.wait("after the rename", func(u Update) bool { return hasPort("web", 81)(u) && len(u.Errors) == 0 })
	h.write("b.yaml", serviceYAML("web", 82))
	h.wait("with web:82 from the renamed file", hasPort("web", 82))
}

func TestRunConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	// The layout the kubelet gives a ConfigMap volume: user-visible names
	// are symlinks through ..data, which points at a timestamped directory
	// and is swapped atomically on update.
	version := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), "app.yaml", content)
	}
	version("..2026_01_01_00_00_00.1", serviceYAML("web", 80))
	if err := os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/app.yaml", filepath.Join(dir, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	h := start(t, dir, options{})
	if got := ports(h.initial); got["web"] != 80 || len(h.initial.Errors) != 0 {
		t.Fatalf("initial services %v errors %v", got, h.initial.Errors)
	}

	changed := time.Now()
	version("..2026_01_01_00_01_00.2", serviceYAML("web", 81))
	if err := os.Symlink("..2026_01_01_00_01_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	u := h.wait("with web:81 after the swap", hasPort("web", 81))
	t.Logf("ConfigMap swap→callback latency: %v", u.at.Sub(changed))
	if len(u.Errors) != 0 {
		t.Errorf("errors = %v", u.Errors)
	}
}

func TestRunBrokenEditKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	writeFile(t, dir, "b.yaml", serviceYAML("api", 90))
	h := start(t, dir, options{})

	// A half-written file: the first document is fine, the second is not;
	// nothing of it may apply.
	h.write("a.yaml", serviceYAML("web", 81)+"---\napiVersion: v1\nkind: Service\nmetadata: {name: x\n")
	u := h.wait("reporting a.yaml", func(u Update) bool { return slices.Equal(errorPaths(u), []string{"a.yaml"}) })
	if got := ports(u.Update); got["web"] != 80 || got["api"] != 90 {
		t.Errorf("services = %v, want the last good web:80 and api:90", got)
	}

	h.write("a.yaml", serviceYAML("web", 82))
	u = h.wait("with the fix", hasPort("web", 82))
	if len(u.Errors) != 0 {
		t.Errorf("errors after the fix = %v", u.Errors)
	}

	// A file that never parsed contributes nothing but its error.
	h.write("c.yaml", "kind: [\n")
	u = h.wait("reporting c.yaml", func(u Update) bool { return slices.Equal(errorPaths(u), []string{"c.yaml"}) })
	if got := ports(u.Update); len(got) != 2 {
		t.Errorf("services = %v", got)
	}
}

func TestRunNoUpdateWithoutContentChange(t *testing.T) {
	dir := t.TempDir()
	content := serviceYAML("web", 80)
	p := writeFile(t, dir, "a.yaml", content)
	h := start(t, dir, options{resync: 100 * time.Millisecond})

	// Rewrite the same bytes and move mtime an hour back, so that stat
	// differs (forcing a read) and the file is not "recently modified"
	// (so later scans trust its stat again).
	changed := time.Now()
	h.write("a.yaml", content)
	old := changed.Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	r := h.waitScan(changed, 1)
	t.Logf("scan after the touch: read %d, changed %t", r.read, r.changed)
	if r.changed {
		t.Error("a scan reported a change for identical content")
	}
	// A later scan that reads nothing shows the new stat was recorded.
	h.waitScan(r.started.Add(time.Nanosecond), -1)
	h.expectNoUpdate()
	if t.Failed() {
		return
	}

	// A real change still comes through afterwards.
	h.write("a.yaml", serviceYAML("web", 81))
	h.wait("with web:81", hasPort("web", 81))
}

func TestRunPeriodicScanWithoutWatcher(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	h := start(t, dir, options{noWatch: true, resync: 50 * time.Millisecond})

	h.write("a.yaml", serviceYAML("web", 81))
	h.wait("with web:81", hasPort("web", 81))
	h.write("b.yaml", serviceYAML("api", 90))
	h.wait("with api:90", hasPort("api", 90))
	h.remove("a.yaml")
	h.wait("without web", func(u Update) bool { _, ok := ports(u)["web"]; return !ok })
}

func TestRunWithoutLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	h := start(t, dir, options{skipLoad: true})
	h.wait("with the initial view", hasPort("web", 80))
}

func TestRunOnce(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, options{})
	if err := h.src.Run(context.Background(), func(Update) {}); err == nil {
		t.Error("a second concurrent Run succeeded")
	}
}

func TestRunDirectoryReplaced(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	h := start(t, dir, options{resync: 100 * time.Millisecond})

	// Deploy tools sometimes swap a whole directory; the watch on the old
	// one is useless afterwards.
	next := filepath.Join(parent, "next")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, next, "a.yaml", serviceYAML("web", 81))
	if err := os.Rename(dir, filepath.Join(parent, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	h.wait("with web:81 from the new directory", hasPort("web", 81))

	// Events from the new directory are seen: a file event is read even
	// when stat alone could not tell.
	h.write("b.yaml", serviceYAML("api", 90))
	h.wait("with api:90", hasPort("api", 90))
}

func TestRunDuplicatesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", serviceYAML("web", 80))
	writeFile(t, dir, "b.yaml", serviceYAML("web", 90)+"---\n"+serviceYAML("api", 91))
	h := start(t, dir, options{})

	if got := ports(h.initial); got["web"] != 80 || got["api"] != 91 {
		t.Errorf("services = %v, want web:80 from a.yaml and api:91 from b.yaml", got)
	}
	if got := errorPaths(h.initial); !slices.Equal(got, []string{"b.yaml"}) {
		t.Errorf("errors = %v, want the duplicate in b.yaml", h.initial.Errors)
	}

	h.remove("a.yaml")
	u := h.wait("with web from b.yaml", hasPort("web", 90))
	if len(u.Errors) != 0 {
		t.Errorf("errors = %v, want none once the duplicate is gone", u.Errors)
	}
}

func TestCreationTimestampsAsWritten(t *testing.T) {
	dir := t.TempDir()
	ingress := func(name, host, ts string) string {
		s := "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name + "\n"
		if ts != "" {
			s += "  creationTimestamp: \"" + ts + "\"\n"
		}
		return s + "spec:\n  rules:\n  - host: " + host + "\n---\n"
	}
	fixed := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	created := func(u Update) map[string]time.Time {
		out := make(map[string]time.Time)
		for _, i := range u.Objects.Ingresses {
			out[i.Name] = i.CreationTimestamp.Time
		}
		return out
	}
	find := func(u Update, name string) *networkingv1.Ingress {
		for _, i := range u.Objects.Ingresses {
			if i.Name == name {
				return i
			}
		}
		return nil
	}
	// asWritten checks that fixed has its manifest timestamp and every
	// other Ingress none: nothing depends on when the Source saw them.
	asWritten := func(when string, u Update) {
		t.Helper()
		for name, ts := range created(u) {
			want := time.Time{}
			if name == "fixed" {
				want = fixed
			}
			if !ts.Equal(want) {
				t.Errorf("%s: %s creationTimestamp = %v, want %v", when, name, ts, want)
			}
		}
	}

	writeFile(t, dir, "a.yaml", ingress("web", "a.example", "")+ingress("fixed", "f.example", "2020-01-01T00:00:00Z"))
	h := start(t, dir, options{})
	if got := created(h.initial); len(got) != 2 {
		t.Fatalf("initial Ingresses = %v, want web and fixed", got)
	}
	asWritten("initially", h.initial)

	// Edited and added objects get no timestamp either.
	h.write("a.yaml", ingress("web", "b.example", "")+ingress("fixed", "f.example", "2020-01-01T00:00:00Z")+ingress("api", "c.example", ""))
	u := h.wait("with api", func(u Update) bool { return find(u, "api") != nil })
	asWritten("after the edit", u.Update)
	if got := find(u.Update, "web").Spec.Rules[0].Host; got != "b.example" {
		t.Errorf("web host = %q, want the edit applied", got)
	}

	// A change to another file leaves the objects of an unchanged file
	// untouched, pointer and all.
	webBefore := find(u.Update, "web")
	h.write("z.yaml", serviceYAML("other", 1))
	u = h.wait("with the other service", hasPort("other", 1))
	if find(u.Update, "web") != webBefore {
		t.Error("an object of an unchanged file was replaced by a new pointer")
	}
	asWritten("after an unrelated change", u.Update)

	// A restarted Source and a one-shot read (`torii check`) see exactly
	// the view the long-running Source has.
	paths, err := ListManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := ReadFiles(paths)
	if len(read.Errors) != 0 {
		t.Fatalf("ReadFiles errors: %v", read.Errors)
	}
	restarted, err := New(Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	again := restarted.Load()
	if !reflect.DeepEqual(again.Objects, u.Objects) {
		t.Errorf("a restarted Source's view differs from the running one's:\n got %+v\nwant %+v", again.Objects, u.Objects)
	}
	if !reflect.DeepEqual(read.Objects, u.Objects) {
		t.Errorf("ReadFiles' view differs from the running Source's:\n got %+v\nwant %+v", read.Objects, u.Objects)
	}
}

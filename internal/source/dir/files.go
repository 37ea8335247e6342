package dir

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/torii-dev/torii/internal/store"
)

// maxFileSize caps how much of one manifest is read, so that a giant or
// runaway file cannot exhaust memory.
const maxFileSize = 64 << 20

// maxListedDuplicates bounds how many duplicate objects one error names.
const maxListedDuplicates = 10

// FileError is a problem with one manifest file.
type FileError struct {
	Path string
	Err  error
}

// Error returns "path: err".
func (e FileError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e FileError) Unwrap() error { return e.Err }

// ListManifests returns the paths of the *.yaml, *.yml and *.json files
// directly in dir, sorted. It does not recurse, skips hidden names (which
// also skips the ..data machinery of Kubernetes ConfigMap volumes), and
// follows symbolic links, keeping those that lead to a regular file.
func ListManifests(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !isManifestName(name) {
			continue
		}
		p := filepath.Join(dir, name)
		switch {
		case e.Type().IsRegular():
		case e.Type()&os.ModeSymlink != 0:
			// ConfigMap keys are symlinks into ..data/. A dangling link
			// (a key being removed) is treated as absent.
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
		default:
			// Directories, sockets and pipes; reading a pipe would block.
			continue
		}
		paths = append(paths, p)
	}
	// os.ReadDir already sorts by name; sorting again states the contract.
	slices.Sort(paths)
	return paths, nil
}

func isManifestName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Contents is what ReadFiles read.
type Contents struct {
	// Objects merges the kinds Torii uses from every file that decoded,
	// each slice sorted by namespace/name. It is never nil.
	Objects *store.Objects
	// Ignored lists the documents of kinds Torii does not use, from every
	// file that decoded, in the order the files were given; a document
	// repeated exactly (in another file) is listed once.
	Ignored []Ignored
	// Errors holds at most one error per bad file, in the order the files
	// were given.
	Errors []FileError
}

// ReadFiles reads and decodes the given files, for `torii check` and
// similar one-shot loads. When two files define the same object, the one
// given first wins and the other file is reported in Errors; its other
// objects still load. A file that fails to read or decode contributes
// nothing but its error. Creation timestamps are left as written (zero when
// absent), exactly as a Source leaves them.
func ReadFiles(paths []string) Contents {
	var (
		good    []loadedFile
		errs    = make(map[string]error)
		order   []string
		listed  = make(map[string]bool)
		ignored []Ignored
		dupIgn  = make(map[Ignored]bool)
	)
	for _, p := range paths {
		// Naming a file twice must not make it a duplicate of itself.
		if listed[filepath.Clean(p)] {
			continue
		}
		listed[filepath.Clean(p)] = true
		order = append(order, p)
		data, err := readFile(p, maxFileSize)
		if err != nil {
			errs[p] = err
			continue
		}
		m, err := Decode(data)
		if err != nil {
			errs[p] = err
			continue
		}
		good = append(good, loadedFile{path: p, manifest: &m})
		for _, ig := range m.Ignored {
			if !dupIgn[ig] {
				dupIgn[ig] = true
				ignored = append(ignored, ig)
			}
		}
	}
	objs, dups := merge(good)
	for p, err := range dups {
		errs[p] = err
	}
	out := Contents{Objects: objs, Ignored: ignored}
	for _, p := range order {
		if err := errs[p]; err != nil {
			out.Errors = append(out.Errors, FileError{Path: p, Err: err})
		}
	}
	return out
}

// readFile reads at most limit bytes of path and fails if it holds more.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file is larger than the %d MiB limit", limit>>20)
	}
	return data, nil
}

// loadedFile is the decoded content of one file, in merge priority order.
type loadedFile struct {
	path     string
	manifest *Manifest
}

// merge builds one view from files, the earlier file winning when two
// define the same object. It returns the view and, per file that lost, an
// error naming what it lost. The view holds the decoded objects themselves,
// so an object of an unchanged file keeps its pointer from view to view.
func merge(files []loadedFile) (*store.Objects, map[string]error) {
	out := &store.Objects{}
	owner := make(map[objectKey]string)
	dups := make(map[string]error)
	for _, f := range files {
		var lost []string
		each(&f.manifest.Objects, func(obj runtime.Object) {
			key := keyOf(obj)
			if first, ok := owner[key]; ok {
				lost = append(lost, fmt.Sprintf("%s (defined in %s)", key, first))
				return
			}
			owner[key] = f.path
			add(out, obj)
		})
		if len(lost) > 0 {
			dups[f.path] = duplicateError(lost)
		}
	}
	sortObjects(out)
	return out, dups
}

func duplicateError(lost []string) error {
	more := ""
	if len(lost) > maxListedDuplicates {
		more = fmt.Sprintf(" and %d more", len(lost)-maxListedDuplicates)
		lost = lost[:maxListedDuplicates]
	}
	return fmt.Errorf("ignored objects already defined by an earlier file: %s%s", strings.Join(lost, ", "), more)
}

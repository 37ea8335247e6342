package dir

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// racyWindow is how recently a file may have been modified and still be
// re-read by the periodic scan even though its stat looks unchanged:
// filesystem timestamps are coarse, so a second same-size write within one
// tick leaves size, mtime and inode as they were.
const racyWindow = 2 * time.Second

// maxLoggedIgnored bounds how many ignored kinds one log line names.
const maxLoggedIgnored = 10

// fileState is what a Source remembers about one manifest file.
type fileState struct {
	stat    fileStat
	racy    bool        // modified too recently for stat to be trusted
	version fileVersion // identity of the content read last
	err     error       // why the current content is not serving; nil if it is
	good    *Manifest   // the last content that decoded; nil if none yet
	dupErr  string      // the duplicate report last logged
}

// fileVersion identifies what a read of a file returned.
type fileVersion struct {
	hash    [sha256.Size]byte
	readErr string
}

// scanResult describes one scan, for tests.
type scanResult struct {
	started time.Time
	read    int  // files read
	changed bool // whether any file's content, or the set of files, changed
}

// scan lists the directory and re-reads the files that are new, named in
// dirty, of uncertain stat, or all of them when all is set. It reports
// whether anything effectively changed.
func (s *Source) scan(dirty map[string]bool, all bool) (scanResult, error) {
	res := scanResult{started: time.Now()}
	paths, err := ListManifests(s.dir)
	if err != nil {
		return res, err
	}
	present := make(map[string]bool, len(paths))
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // gone since the listing: removed below
		}
		f, known := s.files[p]
		var st fileStat
		if err == nil {
			st = statOf(fi)
			if known && !all && !dirty[filepath.Base(p)] && !f.racy && st == f.stat {
				present[p] = true
				continue
			}
		}
		var data []byte
		if err == nil {
			data, err = readFile(p, maxFileSize)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		present[p] = true
		res.read++
		if !known {
			f = &fileState{}
			s.files[p] = f
		}
		if s.reload(p, f, st, data, err, !known) {
			res.changed = true
		}
	}
	var removed []string
	for p := range s.files {
		if !present[p] {
			removed = append(removed, p)
		}
	}
	slices.Sort(removed)
	for _, p := range removed {
		delete(s.files, p)
		s.log.Info("manifest removed", "path", p)
		res.changed = true
	}
	return res, nil
}

// reload records a fresh read of p (data, or readErr) and reports whether
// it differs from what was read before.
func (s *Source) reload(p string, f *fileState, st fileStat, data []byte, readErr error, isNew bool) bool {
	f.stat = st
	f.racy = time.Since(time.Unix(0, st.mtime)) < racyWindow
	var v fileVersion
	if readErr != nil {
		v.readErr = readErr.Error()
	} else {
		v.hash = sha256.Sum256(data)
	}
	if !isNew && v == f.version {
		return false
	}
	f.version = v

	err := readErr
	var m Manifest
	if err == nil {
		m, err = Decode(data)
	}
	if err != nil {
		// Logged once per distinct content: an unchanged file is not
		// decoded again.
		f.err = err
		if f.good != nil {
			s.log.Warn("manifest rejected; its last good content keeps serving", "path", p, "err", err)
		} else {
			s.log.Warn("manifest rejected", "path", p, "err", err)
		}
		return true
	}
	f.err = nil
	f.good = &m
	s.log.Info("manifest loaded", "path", p, "objects", count(&m.Objects))
	if len(m.Ignored) > 0 {
		var shown []string
		for _, ig := range m.Ignored[:min(len(m.Ignored), maxLoggedIgnored)] {
			shown = append(shown, ig.String())
		}
		more := len(m.Ignored) - len(shown)
		s.log.Info("manifest has kinds Torii does not use", "path", p, "ignored", shown, "more", more)
	}
	return true
}

// build merges every file's last good content into a view, in path order.
// Objects are published as decoded, creation timestamps as written, so the
// view depends on the files' content alone; an unchanged file's objects keep
// their pointers.
func (s *Source) build() Update {
	paths := slices.Sorted(maps.Keys(s.files))
	var good []loadedFile
	for _, p := range paths {
		if f := s.files[p]; f.good != nil {
			good = append(good, loadedFile{path: p, manifest: f.good})
		}
	}
	objs, dups := merge(good)

	var errs []FileError
	for _, p := range paths {
		f := s.files[p]
		if f.err != nil {
			errs = append(errs, FileError{Path: p, Err: f.err})
		}
		var msg string
		if dup := dups[p]; dup != nil {
			errs = append(errs, FileError{Path: p, Err: dup})
			msg = dup.Error()
		}
		if msg != f.dupErr {
			if msg != "" {
				s.log.Warn("manifest defines objects an earlier file already defines", "path", p, "err", msg)
			}
			f.dupErr = msg
		}
	}
	return Update{Objects: objs, Errors: errs}
}

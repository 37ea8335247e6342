package dir

import "os"

// fileStat is what the periodic scan compares to decide whether a file may
// have changed without reading it. The inode catches atomic-rename saves and
// ConfigMap symlink swaps even when size and mtime happen to match.
type fileStat struct {
	size     int64
	mtime    int64 // UnixNano
	dev, ino uint64
}

func statOf(fi os.FileInfo) fileStat {
	st := fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	st.dev, st.ino = fileID(fi)
	return st
}

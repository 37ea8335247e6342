//go:build !unix

package dir

import "os"

// fileID returns zeros where inode numbers are not available; size and
// mtime then carry the change detection alone.
func fileID(os.FileInfo) (dev, ino uint64) { return 0, 0 }

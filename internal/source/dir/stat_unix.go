//go:build unix

package dir

import (
	"os"
	"syscall"
)

// fileID returns the device and inode numbers of fi.
func fileID(fi os.FileInfo) (dev, ino uint64) {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), uint64(s.Ino) //nolint:unconvert // Dev is not uint64 on every unix.
	}
	return 0, 0
}

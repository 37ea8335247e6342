//go:build unix && !linux

package harness

import "syscall"

// setPdeathsig is a no-op where the kernel has no parent-death signal; the
// cleanups still kill every process group.
func setPdeathsig(*syscall.SysProcAttr) {}

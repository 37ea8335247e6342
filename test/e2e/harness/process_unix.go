//go:build unix

package harness

import (
	"os"
	"syscall"
)

var (
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)

// sysProcAttr puts each component in its own process group, so that a stop
// signal reaches anything it might spawn and never the test binary itself.
// On Linux the parent-death signal also kills the component when the test
// binary dies without running cleanups (go test -timeout, SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(attr)
	return attr
}

// signalGroup signals the process group led by p (its pid, by Setpgid).
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}

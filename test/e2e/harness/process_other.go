//go:build !unix

package harness

import (
	"errors"
	"os"
	"syscall"
)

// The control plane binaries and process-group handling need a Unix system.
var (
	sigTerm = syscall.Signal(15)
	sigKill = syscall.Signal(9)
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(p *os.Process, sig syscall.Signal) error {
	if sig == sigKill {
		return p.Kill()
	}
	return errors.New("e2e harness: process groups need a Unix system")
}

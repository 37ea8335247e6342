package harness

import "syscall"

// setPdeathsig asks the kernel to SIGKILL the child when its parent thread
// exits. Go only retires OS threads locked with runtime.LockOSThread, which
// the harness never does, so in practice this fires when the test binary
// dies.
func setPdeathsig(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }

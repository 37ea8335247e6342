package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// killWait bounds how long the harness waits for a killed process group to
// be reaped. SIGKILL cannot be ignored, so only a wedged kernel exceeds it.
const killWait = 10 * time.Second

// process is one control-plane component running as a child process in its
// own process group, with stdout and stderr appended to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	done    chan struct{} // closed once Wait has returned
	waitErr error         // valid after done is closed
}

// startProcess runs path with args in dir. The log file is opened for
// appending, so a restarted component keeps its earlier output for the
// failure report.
func startProcess(name, path string, args []string, dir, logPath string) (*process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "=== harness: %s starting at %s\n=== %s %s\n", name, time.Now().Format(time.RFC3339Nano), path, strings.Join(args, " "))
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	// An *os.File as stdout/stderr is handed to the child directly: no
	// copying goroutine that could block Wait or outlive the process.
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, log: log, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the test's environment minus what would point a component at
// something other than its flags: proxies (the components only talk over
// loopback) and etcd's ETCD_* flag variables.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "ETCD_"),
			strings.EqualFold(k, "http_proxy"), strings.EqualFold(k, "https_proxy"),
			strings.EqualFold(k, "all_proxy"), strings.EqualFold(k, "no_proxy"):
			continue
		}
		env = append(env, kv)
	}
	return env
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop asks the process group to terminate with SIGTERM and kills it if it
// is still running after grace. It returns once the process is reaped.
func (p *process) stop(grace time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	if grace > 0 {
		_ = signalGroup(p.cmd.Process, sigTerm)
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
	}
	return p.kill()
}

// kill sends SIGKILL to the whole process group and waits, bounded, until
// the process is reaped.
func (p *process) kill() error {
	if done, _ := p.exited(); done {
		return nil
	}
	_ = signalGroup(p.cmd.Process, sigKill)
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s (pid %d) not reaped %v after SIGKILL", p.name, p.cmd.Process.Pid, killWait)
	}
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string { return tailFile(p.logPath, n) }

// tailFile returns the last n lines of a file, reading at most its last
// 64 KiB: component logs can be large and only their end explains a failure.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxRead = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxRead {
		if _, err := f.Seek(-maxRead, io.SeekEnd); err != nil {
			return fmt.Sprintf("(read log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// errExited is returned when a component dies while the harness waits for it.
var errExited = errors.New("exited")

// ChildProcAttr is the process set-up the harness uses for its components,
// for tests that start processes of their own (Torii replicas): its own
// process group and, on Linux, death with the test binary.
func ChildProcAttr() *syscall.SysProcAttr { return sysProcAttr() }

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a long-running child (backend or proxy) started in its own process
// group, so that stopping it also stops everything it forked.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done is closed
	log  *os.File
}

// registry holds every running proc so that they can all be killed on exit.
var registry struct {
	sync.Mutex
	procs map[*proc]bool
}

// startProc starts argv with stdout and stderr appended to logPath.
func startProc(name, logPath string, argv []string, env []string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logf}
	registry.Lock()
	if registry.procs == nil {
		registry.procs = map[*proc]bool{}
	}
	registry.procs[p] = true
	registry.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is also the process group id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits (bounded) for the leader to be reaped.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	// Kill the whole group even if the leader is gone: nginx workers or
	// other children may outlive it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	p.log.Close()
	registry.Lock()
	delete(registry.procs, p)
	registry.Unlock()
}

// stopAll kills every registered proc (used on exit and interrupt).
func stopAll() {
	registry.Lock()
	ps := make([]*proc, 0, len(registry.procs))
	for p := range registry.procs {
		ps = append(ps, p)
	}
	registry.Unlock()
	for _, p := range ps {
		p.stop(2 * time.Second)
	}
}

// runTool runs a bounded, short-lived command in its own process group and
// returns its stdout, stderr and resource usage. The whole group is killed
// when ctx ends.
func runTool(ctx context.Context, timeout time.Duration, argv []string, env []string) (stdout, stderr string, ru *syscall.Rusage, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var so, se strings.Builder
	cmd.Stdout = &so
	cmd.Stderr = &se
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		// Leftovers of the group, if any.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if cmd.ProcessState != nil {
		ru, _ = cmd.ProcessState.SysUsage().(*syscall.Rusage)
	}
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("%s: %w (%v)", argv[0], ctx.Err(), err)
	}
	return so.String(), se.String(), ru, err
}

// procStat is the part of /proc/PID/stat this program uses.
type procStat struct {
	PID   int
	Comm  string
	PPID  int
	PGRP  int
	UTime uint64 // clock ticks
	STime uint64 // clock ticks
}

// parseProcStat parses one /proc/PID/stat line. The command name is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(line string) (procStat, error) {
	var s procStat
	open := strings.IndexByte(line, '(')
	closing := strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return s, errors.New("malformed stat line")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return s, fmt.Errorf("stat pid: %w", err)
	}
	s.PID = pid
	s.Comm = line[open+1 : closing]
	// Fields after the name start at field 3 (state).
	f := strings.Fields(line[closing+1:])
	// f[0]=state(3) f[1]=ppid(4) f[2]=pgrp(5) ... f[11]=utime(14) f[12]=stime(15)
	if len(f) < 13 {
		return s, errors.New("short stat line")
	}
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("stat ppid: %w", err)
	}
	if s.PGRP, err = strconv.Atoi(f[2]); err != nil {
		return s, fmt.Errorf("stat pgrp: %w", err)
	}
	if s.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return s, fmt.Errorf("stat utime: %w", err)
	}
	if s.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return s, fmt.Errorf("stat stime: %w", err)
	}
	return s, nil
}

// parseVmHWM returns the VmHWM (peak resident set) of a /proc/PID/status
// text in KiB.
func parseVmHWM(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("malformed VmHWM line %q", line)
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no VmHWM line")
}

// groupStats returns the stat of every live process whose process group is
// pgid (the proxy and everything it forked).
func groupStats(pgid int) []procStat {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []procStat
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		s, err := parseProcStat(string(b))
		if err != nil || s.PGRP != pgid {
			continue
		}
		out = append(out, s)
	}
	return out
}

// groupUsage is the CPU ticks and peak RSS of a process group.
type groupUsage struct {
	Ticks   uint64
	HWMKiB  int64
	Procs   int
	Command []string
}

func readGroupUsage(pgid int) groupUsage {
	var u groupUsage
	for _, s := range groupStats(pgid) {
		u.Ticks += s.UTime + s.STime
		u.Procs++
		u.Command = append(u.Command, s.Comm)
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.PID)); err == nil {
			if kb, err := parseVmHWM(string(b)); err == nil {
				u.HWMKiB += kb
			}
		}
	}
	return u
}

// cpuTimes is one "cpuN" line of /proc/stat, in clock ticks.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Task is the time spent running tasks (what per-process utime+stime adds
// up to), without interrupt handling.
func (c cpuTimes) Task() uint64 { return c.User + c.Nice + c.System }

// Total is every accounted tick.
func (c cpuTimes) Total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// parseProcStatCPUs parses the per-CPU lines of /proc/stat.
func parseProcStatCPUs(text string) (map[int]cpuTimes, error) {
	out := map[int]cpuTimes{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
		}
		out[n] = cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
	}
	if len(out) == 0 {
		return nil, errors.New("no cpuN lines in /proc/stat")
	}
	return out, nil
}

func readCPUs() map[int]cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	m, _ := parseProcStatCPUs(string(b))
	return m
}

// otherLoadPct is the share (%) of a CPU's time spent running tasks other
// than ours between two /proc/stat samples: (task ticks - our ticks) / all
// ticks. Interrupt and softirq time is left out (loopback traffic of the
// benchmark itself lands there).
func otherLoadPct(before, after cpuTimes, oursTicks uint64) float64 {
	total := after.Total() - before.Total()
	if total == 0 {
		return 0
	}
	task := after.Task() - before.Task()
	if oursTicks >= task {
		return 0
	}
	return 100 * float64(task-oursTicks) / float64(total)
}

// clockTicks is USER_HZ (getconf CLK_TCK), 100 on Linux unless proven
// otherwise.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}

// fileSize is the size of path, 0 when it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

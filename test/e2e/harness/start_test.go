package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailedStartReportsLogsAndCleansUp starts an API server that cannot
// start and checks that the error carries its log and that no component is
// left running.
func TestFailedStartReportsLogsAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c, err := StartContext(ctx, Options{Dir: dir, APIServerFlags: []string{"--no-such-flag"}})
	if err == nil {
		c.Close()
		t.Fatal("StartContext succeeded with a bad API server flag")
	}
	msg := err.Error()
	if !strings.Contains(msg, "kube-apiserver exited") || !strings.Contains(msg, "unknown flag: --no-such-flag") {
		t.Errorf("error does not carry the API server's exit and log:\n%s", msg)
	}
	if pids := processesMentioning(t, dir); len(pids) > 0 {
		t.Errorf("processes still running with %s on their command line: %v", dir, pids)
	}
}

// processesMentioning lists the pids whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil || len(cmdlines) == 0 {
		t.Fatalf("cannot list processes through /proc: %v", err)
	}
	var pids []string
	for _, p := range cmdlines {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), s) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

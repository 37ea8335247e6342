package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// tool is an external program and the Debian package that provides it.
type tool struct {
	bin string
	pkg string // Debian package (nginx: nginx-light or nginx, decided at install)
}

// lookTool finds bin on PATH or in the sbin directories (nginx and haproxy
// live in /usr/sbin, which is not on every user's PATH).
func lookTool(bin string) (string, bool) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, bin)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// neededTools lists the tools the selected scenarios and proxies use.
func neededTools(scens []scenario, proxies []string) []tool {
	need := map[string]tool{"taskset": {"taskset", "util-linux"}}
	for _, s := range scens {
		switch s.Tool {
		case toolWrk:
			need["wrk"] = tool{"wrk", "wrk"}
		case toolH2load:
			need["h2load"] = tool{"h2load", "nghttp2-client"}
		}
	}
	for _, p := range proxies {
		switch p {
		case "nginx":
			need["nginx"] = tool{"nginx", "nginx"}
		case "haproxy":
			need["haproxy"] = tool{"haproxy", "haproxy"}
		}
	}
	var out []tool
	for _, name := range []string{"taskset", "wrk", "h2load", "nginx", "haproxy"} {
		if t, ok := need[name]; ok {
			out = append(out, t)
		}
	}
	return out
}

// ensureTools returns the path of every needed tool, installing missing ones
// with apt-get when running as root.
func ensureTools(ctx context.Context, tools []tool, logf func(string, ...any)) (map[string]string, error) {
	var missing []tool
	for _, t := range tools {
		if _, ok := lookTool(t.bin); !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		var pkgs, bins []string
		for _, t := range missing {
			pkg := t.pkg
			if t.bin == "nginx" {
				pkg = nginxPackage(ctx)
			}
			pkgs = append(pkgs, pkg)
			bins = append(bins, t.bin)
		}
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("missing %s; install them first: sudo apt-get install --no-install-recommends %s",
				strings.Join(bins, ", "), strings.Join(pkgs, " "))
		}
		logf("installing %s (apt-get install %s)", strings.Join(bins, ", "), strings.Join(pkgs, " "))
		env := []string{"DEBIAN_FRONTEND=noninteractive"}
		if _, se, _, err := runTool(ctx, 10*time.Minute, []string{"apt-get", "update"}, env); err != nil {
			return nil, fmt.Errorf("apt-get update: %v\n%s", err, tail(se, 2000))
		}
		args := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, pkgs...)
		if _, se, _, err := runTool(ctx, 15*time.Minute, args, env); err != nil {
			return nil, fmt.Errorf("apt-get install: %v\n%s", err, tail(se, 2000))
		}
	}
	paths := map[string]string{}
	for _, t := range tools {
		p, ok := lookTool(t.bin)
		if !ok {
			return nil, fmt.Errorf("%s still missing after installing %s", t.bin, t.pkg)
		}
		paths[t.bin] = p
	}
	return paths, nil
}

// nginxPackage prefers nginx-light (fewer modules) when the archive has it.
func nginxPackage(ctx context.Context) string {
	out, _, _, err := runTool(ctx, time.Minute, []string{"apt-cache", "policy", "nginx-light"}, nil)
	if err == nil && strings.Contains(out, "Candidate:") && !strings.Contains(out, "Candidate: (none)") {
		return "nginx-light"
	}
	return "nginx"
}

// toolVersions returns one line per tool, for the report header.
func toolVersions(ctx context.Context, paths map[string]string, torii string) []string {
	probe := func(name string, argv ...string) string {
		so, se, _, _ := runTool(ctx, 10*time.Second, argv, nil)
		s := strings.TrimSpace(so + "\n" + se)
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[:i]
		}
		return name + ": " + strings.TrimSpace(s)
	}
	var out []string
	if p, ok := paths["wrk"]; ok {
		out = append(out, probe("wrk", p, "-v"))
	}
	if p, ok := paths["h2load"]; ok {
		out = append(out, probe("h2load", p, "--version"))
	}
	if p, ok := paths["nginx"]; ok {
		out = append(out, probe("nginx", p, "-v"))
	}
	if p, ok := paths["haproxy"]; ok {
		out = append(out, probe("haproxy", p, "-v"))
	}
	if torii != "" {
		out = append(out, probe("torii", torii, "version"))
	}
	out = append(out, probe("go", "go", "version"))
	return out
}

// repoRoot walks up from the working directory to the directory holding the
// Torii go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/torii-dev/torii") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the torii repository (no go.mod of github.com/torii-dev/torii above %s)", dir)
		}
		dir = parent
	}
}

// buildTorii runs go build -o bin/torii ./cmd/torii in root. A failed build
// is retried twice, a few seconds apart: the tree may be mid-edit.
func buildTorii(ctx context.Context, root string, logf func(string, ...any)) (string, error) {
	out := filepath.Join(root, "bin", "torii")
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if attempt > 1 {
			logf("go build failed, retrying in 5s: %v", firstLine(err.Error()))
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(5 * time.Second):
			}
		}
		bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		cmd := exec.CommandContext(bctx, "go", "build", "-o", out, "./cmd/torii")
		cmd.Dir = root
		b, berr := cmd.CombinedOutput()
		cancel()
		if berr == nil {
			return out, nil
		}
		err = fmt.Errorf("go build ./cmd/torii: %v\n%s", berr, b)
	}
	return "", err
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

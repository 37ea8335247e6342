package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/torii-dev/torii/examples"
	"github.com/torii-dev/torii/internal/demo"
)

// demoBackends are the echo backends the quickstart EndpointSlices point at.
var demoBackends = []struct{ name, addr string }{
	{"web", "127.0.0.1:9101"},
	{"api", "127.0.0.1:9102"},
	{"fallback", "127.0.0.1:9103"},
}

// demoCommand copies the embedded quickstart manifests to a temporary
// directory (edit them there to watch Torii apply changes live), starts the
// echo backends they point at, and serves them exactly as `torii serve` does.
func demoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("torii demo", flag.ContinueOnError)
	fset.SetOutput(stderr)
	build := serveFlags(fset)
	// The demo is for a person at a terminal: listen on loopback only.
	for name, value := range map[string]string{"http-addr": "127.0.0.1:8080", "https-addr": "127.0.0.1:8443", "admin-addr": "127.0.0.1:10254", "shutdown-grace-period": "0s"} {
		if err := fset.Set(name, value); err != nil {
			return err
		}
	}
	if err := fset.Parse(args); err != nil {
		return err
	}
	cfg, err := build(stderr)
	if err != nil {
		return err
	}
	if cfg.ManifestDir == "" {
		if cfg.ManifestDir, err = os.MkdirTemp("", "torii-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(cfg.ManifestDir)
		if err := copyEmbedded(examples.Quickstart, "quickstart", cfg.ManifestDir); err != nil {
			return err
		}
	}
	for _, b := range demoBackends {
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			return fmt.Errorf("start demo backend %s: %w", b.name, err)
		}
		srv := &http.Server{Handler: demo.Echo{Name: b.name}, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cfg.Logger.Error("demo backend stopped", "backend", b.name, "error", err)
			}
		}()
		defer srv.Close()
	}
	fmt.Fprintf(stdout, `Torii demo: serving the manifests in %s (edit them; changes apply live).
Try, from another terminal:
  curl -s http://%s/ -H 'Host: demo.localhost'          # -> web
  curl -s http://%s/api/users -H 'Host: demo.localhost' # -> api
  curl -s http://%s/anything -H 'Host: other.example'   # -> fallback (catch-all)
  curl -sk --resolve demo.localhost:%s:127.0.0.1 https://demo.localhost:%s/api  # TLS, self-signed default cert
  curl -s http://%s/debug/routes                        # live routing table
Press Ctrl-C to stop.
`, cfg.ManifestDir, cfg.HTTPAddr, cfg.HTTPAddr, cfg.HTTPAddr, portOf(cfg.HTTPSAddr), portOf(cfg.HTTPSAddr), cfg.AdminAddr)
	return serve(ctx, cfg)
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return port
}

// copyEmbedded writes every file of fsys under root into dst.
func copyEmbedded(fsys fs.FS, root, dst string) error {
	return fs.WalkDir(fsys, root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, filepath.Base(path)), data, 0o644)
	})
}

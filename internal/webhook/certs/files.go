package certs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// defaultFileInterval is how often Files re-reads its files. The kubelet
// refreshes a mounted Secret within about a minute of a change.
const defaultFileInterval = 10 * time.Second

// FilesConfig configures Files.
type FilesConfig struct {
	CertFile, KeyFile string
	Holder            *Holder
	// Interval between reloads; zero means 10 s.
	Interval time.Duration
	Logger   *slog.Logger
}

// Files keeps Holder serving the certificate and key in two files, such as
// a cert-manager Secret mounted into the pod. It only reads them.
type Files struct {
	cfg     FilesConfig
	log     *slog.Logger
	lastErr string
}

// NewFiles loads the files once, so that a wrong path fails at start-up.
func NewFiles(cfg FilesConfig) (*Files, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" || cfg.Holder == nil {
		return nil, fmt.Errorf("webhook certificate: both a certificate and a key file are needed")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = defaultFileInterval
	}
	f := &Files{cfg: cfg, log: cfg.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if err := f.Load(); err != nil {
		return nil, err
	}
	return f, nil
}

// Load reads the files and serves them if they changed. On error the
// certificate served so far stays.
func (f *Files) Load() error {
	certPEM, err := os.ReadFile(f.cfg.CertFile)
	if err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("webhook key: %w", err)
	}
	changed, err := f.cfg.Holder.SetPEM(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("webhook certificate %s and key %s: %w", f.cfg.CertFile, f.cfg.KeyFile, err)
	}
	if changed {
		logLoaded(f.log, f.cfg.Holder, f.cfg.CertFile)
	}
	return nil
}

// Run reloads the files every interval until ctx is done. A failed reload
// is logged once and the previous certificate keeps serving.
func (f *Files) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		msg := ""
		if err := f.Load(); err != nil {
			msg = err.Error()
		}
		if msg != f.lastErr && msg != "" {
			f.log.Warn("reloading the webhook certificate failed; keeping the current one", "error", msg)
		}
		f.lastErr = msg
	}
}

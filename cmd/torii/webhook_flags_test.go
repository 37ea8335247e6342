package main

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestWebhookFlags(t *testing.T) {
	parse := func(args ...string) (timeout time.Duration, concurrent int) {
		t.Helper()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		build := serveFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := build(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Webhook.Timeout, cfg.Webhook.MaxConcurrent
	}
	if timeout, n := parse(); timeout != 4*time.Second || n != 4 {
		t.Errorf("defaults: --webhook-timeout %v, --webhook-max-concurrent %d; want 4s and 4", timeout, n)
	}
	if timeout, n := parse("--webhook-timeout=9s", "--webhook-max-concurrent=16"); timeout != 9*time.Second || n != 16 {
		t.Errorf("--webhook-timeout %v, --webhook-max-concurrent %d; want 9s and 16", timeout, n)
	}
}

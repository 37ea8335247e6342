package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestDedicatedFlags(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	build := serveFlags(fs)
	if err := fs.Parse([]string{
		"--enable-dedicated", "--dedicated-image=registry.example/torii:1", "--publish-cluster-ip",
		"--only-ingress=shop/a", "--only-ingress=shop/b", "--only-ingress-class=dedicated",
	}); err != nil {
		t.Fatal(err)
	}
	cfg, err := build(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Kube.Dedicated
	if !d.Enabled || d.Image != "registry.example/torii:1" || !d.PublishClusterIP {
		t.Errorf("dedicated config %+v", d)
	}
	if !slices.Equal(cfg.Kube.OnlyIngresses, []string{"shop/a", "shop/b"}) || cfg.Kube.OnlyIngressClass != "dedicated" {
		t.Errorf("only: %q %q", cfg.Kube.OnlyIngresses, cfg.Kube.OnlyIngressClass)
	}

	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	build = serveFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg, _ = build(io.Discard); cfg.Kube.Dedicated.Enabled || len(cfg.Kube.OnlyIngresses) > 0 {
		t.Errorf("dedicated mode on by default: %+v", cfg.Kube)
	}
}

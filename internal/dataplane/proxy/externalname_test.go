package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"

	"github.com/torii-dev/torii/internal/model"
)

// externalBackend is an ExternalName backend: its endpoint is name at the
// port of addr.
func externalBackend(t *testing.T, name, addr string) model.Backend {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return model.Backend{ID: "ns/ext:80", ExternalName: name, Endpoints: []model.Endpoint{{Address: name, Port: int32(n)}}}
}

// TestExternalNameLoopbackRefused: an ExternalName Service naming the local
// host could reach Torii's own admin port. Names and IP literals alike are
// refused (Kubernetes accepts "127.0.0.1" as an externalName), unless
// AllowExternalNameLoopback is set.
func TestExternalNameLoopbackRefused(t *testing.T) {
	for _, name := range []string{"localhost", "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder(t, "local")
			h := newHarness(t, Config{})
			h.swap(newRouter(prefix("/", 0)), externalBackend(t, name, rec.addr()))
			if status, body := h.get("/"); status != http.StatusBadGateway || body != "502 Bad Gateway\n" {
				t.Fatalf("default: got %d %q, want Torii's 502", status, body)
			}
			if n := rec.hits.Load(); n != 0 {
				t.Fatalf("backend on loopback reached %d times", n)
			}

			h = newHarness(t, Config{AllowExternalNameLoopback: true})
			h.swap(newRouter(prefix("/", 0)), externalBackend(t, name, rec.addr()))
			if status, body := h.get("/"); status != http.StatusOK || body != "local" {
				t.Fatalf("with AllowExternalNameLoopback: got %d %q", status, body)
			}
		})
	}
}

// TestEndpointSliceLoopbackAllowed: endpoints from EndpointSlices are not
// checked (pod IPs; directory mode and tests use loopback).
func TestEndpointSliceLoopbackAllowed(t *testing.T) {
	rec := newRecorder(t, "local")
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
	if status, _ := h.get("/"); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
}

func TestForbiddenUpstream(t *testing.T) {
	tests := []struct {
		addr          string
		allowLoopback bool
		want          string
	}{
		{"127.0.0.1", false, "loopback"},
		{"127.1.2.3", false, "loopback"},
		{"::1", false, "loopback"},
		{"::ffff:127.0.0.1", false, "loopback"},
		{"127.0.0.1", true, ""},
		{"::1", true, ""},
		{"169.254.169.254", true, "link-local"},
		{"169.254.0.1", false, "link-local"},
		{"fe80::1", true, "link-local"},
		{"fe80::1%eth0", true, "link-local"},
		{"::ffff:169.254.169.254", true, "link-local"},
		{"64:ff9b::a9fe:a9fe", true, "link-local"},
		{"64:ff9b::7f00:1", false, "loopback"},
		{"fd00:ec2::254", true, "a cloud metadata address"},
		{"100.100.100.200", true, "a cloud metadata address"},
		{"0.0.0.0", true, "unspecified"},
		{"0.1.2.3", true, "unspecified"},
		{"::", true, "unspecified"},
		{"224.0.0.1", true, "multicast"},
		{"ff02::1", true, "multicast"},
		{"10.0.0.1", false, ""},
		{"192.168.1.1", false, ""},
		{"8.8.8.8", false, ""},
		{"2001:db8::1", false, ""},
		{"fd00::1", false, ""},
	}
	for _, tt := range tests {
		if got := forbiddenUpstream(netip.MustParseAddr(tt.addr), tt.allowLoopback); got != tt.want {
			t.Errorf("forbiddenUpstream(%s, loopback allowed %v) = %q, want %q", tt.addr, tt.allowLoopback, got, tt.want)
		}
	}
}

package proxy

import (
	"net/http"
	"testing"
)

// TestCanonicalPaths sends raw request targets and checks which backend
// receives them and what request target it sees.
func TestCanonicalPaths(t *testing.T) {
	h := newHarness(t, Config{})
	foo := newRecorder(t, "foo")
	root := newRecorder(t, "root")
	h.swap(newRouter(prefix("/foo", 0), prefix("/", 1)),
		backendOf(t, "ns/foo:80", foo.addr()), backendOf(t, "ns/root:80", root.addr()))
	tests := []struct {
		target  string
		backend *recorder
		wantURI string
	}{
		{"/foo", foo, "/foo"},
		{"/x/../foo", foo, "/foo"},
		{"//foo", foo, "/foo"},
		{"/fo%6F", foo, "/foo"},
		{"/%66oo/./bar", foo, "/foo/bar"},
		{"/%2e%2e/foo", foo, "/foo"},
		{"/foo/../../../etc/passwd", root, "/etc/passwd"},
		// An encoded slash stays encoded and is no separator: it matches
		// neither /foo nor crosses into it.
		{"/foo%2Fbar", root, "/foo%2Fbar"},
		{"/foo%2fbar", root, "/foo%2Fbar"},
		{"/x%2F..%2Ffoo", root, "/x%2F..%2Ffoo"},
		// The query is forwarded byte for byte, never canonicalised.
		{"/fo%6F?a=%20b&c=d/../e&x", foo, "/foo?a=%20b&c=d/../e&x"},
		{"/foo?", foo, "/foo?"},
		{"/foo?%zz", foo, "/foo?%zz"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			res, _ := rawGet(t, h.addr(), tt.target, "example.com")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			got := tt.backend.next(t)
			if got.uri != tt.wantURI {
				t.Fatalf("backend %s saw %q, want %q", tt.backend.name, got.uri, tt.wantURI)
			}
		})
	}
	if n := len(foo.reqs) + len(root.reqs); n != 0 {
		t.Fatalf("%d requests reached an unexpected backend", n)
	}
}

func TestBadPathsAre400(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Config
		targets []string
	}{
		{"default", Config{}, []string{"/%00", "/a%00b"}},
		{"RejectEncodedSlash", Config{RejectEncodedSlash: true}, []string{"/foo%2Fbar", "/foo%2fbar", "/foo%5Cbar"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			rec := newRecorder(t, "x")
			h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
			for _, target := range tt.targets {
				res, body := rawGet(t, h.addr(), target, "x")
				if res.StatusCode != http.StatusBadRequest || body != "400 Bad Request\n" {
					t.Errorf("%s: got %d %q, want Torii's 400", target, res.StatusCode, body)
				}
			}
			if n := rec.hits.Load(); n != 0 {
				t.Fatalf("backend received %d bad requests", n)
			}
			// Malformed escapes never reach the handler: net/http's
			// own parser answers 400 first.
			for _, target := range []string{"/a%zz", "/a%2"} {
				if res, _ := rawGet(t, h.addr(), target, "x"); res.StatusCode != http.StatusBadRequest {
					t.Errorf("%s: got %d, want 400", target, res.StatusCode)
				}
			}
			// Plain paths still work with the option on.
			if res, _ := rawGet(t, h.addr(), "/ok/path", "x"); res.StatusCode != http.StatusOK {
				t.Fatalf("/ok/path: status %d", res.StatusCode)
			}
		})
	}
}

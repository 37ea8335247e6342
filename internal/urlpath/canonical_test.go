package urlpath

import (
	"errors"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
		opts     Options
	}{
		{in: "/", want: "/"},
		{in: "/foo", want: "/foo"},
		{in: "/foo/", want: "/foo/"},
		{in: "//foo", want: "/foo"},
		{in: "/foo//bar///", want: "/foo/bar/"},
		{in: "/x/../foo", want: "/foo"},
		{in: "/a/./b", want: "/a/b"},
		{in: "/a/b/..", want: "/a/"},
		{in: "/a/b/.", want: "/a/b/"},
		{in: "/..", want: "/"},
		{in: "/../../etc/passwd", want: "/etc/passwd"},
		{in: "/.hidden/..x", want: "/.hidden/..x"},
		{in: "/fo%6F", want: "/foo"},
		{in: "/%2e%2e/admin", want: "/admin"},
		{in: "/a/%2E/b", want: "/a/b"},
		{in: "/foo%2fbar", want: "/foo%2Fbar"},
		{in: "/foo%2Fbar", want: "/foo%2Fbar"},
		{in: "/foo%5cbar", want: "/foo%5Cbar"},
		{in: "/foo\\bar", want: "/foo%5Cbar"},
		{in: "/a%2F..%2Fb", want: "/a%2F..%2Fb"},
		{in: "/caf%C3%A9", want: "/caf%C3%A9"},
		{in: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		{in: "/a b", want: "/a%20b"},
		{in: "/a%20b", want: "/a%20b"},
		{in: "/q%3Fx", want: "/q%3Fx"},
		{in: "/p%25", want: "/p%25"},
		{in: "/sub-delims!$&'()*+,;=:@", want: "/sub-delims!$&'()*+,;=:@"},
		{in: "/%00", err: ErrEncodedNUL},
		{in: "/a%0", err: ErrInvalidEscape},
		{in: "/a%zz", err: ErrInvalidEscape},
		{in: "/a\x00", err: ErrRawControl},
		{in: "/a\nb", err: ErrRawControl},
		{in: "foo", err: ErrNotAbsolute},
		{in: "", err: ErrNotAbsolute},
		{in: "*", err: ErrNotAbsolute},
		{in: "/foo%2Fbar", err: ErrEncodedSlash, opts: Options{RejectEncodedSlash: true}},
		{in: "/foo%5Cbar", err: ErrEncodedSlash, opts: Options{RejectEncodedSlash: true}},
		{in: "/foo\\bar", err: ErrEncodedSlash, opts: Options{RejectEncodedSlash: true}},
		{in: "/foo/bar", want: "/foo/bar", opts: Options{RejectEncodedSlash: true}},
	}
	for _, tt := range tests {
		got, err := Canonical(tt.in, tt.opts)
		if !errors.Is(err, tt.err) {
			t.Errorf("Canonical(%q) error = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("Canonical(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCanonicalIsIdempotent(t *testing.T) {
	for _, in := range []string{"/a//b/../c/%2e/", "/%41%2f%5c", "/x y/./z/.."} {
		once, err := Canonical(in, Options{})
		if err != nil {
			t.Fatalf("Canonical(%q): %v", in, err)
		}
		twice, err := Canonical(once, Options{})
		if err != nil || twice != once {
			t.Errorf("Canonical(Canonical(%q)) = %q, %v; want %q", in, twice, err, once)
		}
	}
}

func TestCanonicalFastPathDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Canonical("/api/v1/users/42", Options{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("canonical path allocated %v times, want 0", allocs)
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2E/x", "//a//", "/%00", "/a%2F", "/\\", "/é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Canonical(in, Options{})
		if err != nil {
			return
		}
		again, err := Canonical(out, Options{})
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
		if !isCanonical(out, Options{}) {
			t.Fatalf("output %q of %q is not canonical", out, in)
		}
	})
}

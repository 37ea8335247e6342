package feature

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The suite runs once with the HTTP/1 fast path (the default) and once with
// TORII_TEST_HTTP1_FAST_PATH=0 (hack/test.sh): this test proves that each
// run serves HTTP/1 the way it claims, so the second run is not the first
// one again.
func TestHTTP1PathFollowsConfig(t *testing.T) {
	tr := start(t, nil)
	fast := os.Getenv("TORII_TEST_HTTP1_FAST_PATH") != "0"
	c, err := net.DialTimeout("tcp", tr.http, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: nowhere.example\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Read the answer to the server's close, so that the connection is
	// done with on the server's side too.
	answer, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.1 ") {
		t.Fatalf("answer %q: %v", answer, err)
	}
	if !fast {
		// The listener counts a connection just after closing it; a
		// fast path wrongly on would show within this time.
		time.Sleep(100 * time.Millisecond)
		if served, _ := tr.srv.FastPathStats(); served != 0 {
			t.Fatalf("fast path served %d connections with it turned off", served)
		}
		return
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		served, handedOff := tr.srv.FastPathStats()
		switch {
		case served == 1 && handedOff == 0:
			return
		case time.Now().After(deadline):
			t.Fatalf("fast path on: served %d connections, handed off %d; want 1 served, none handed off", served, handedOff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

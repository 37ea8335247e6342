package listener

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads return its data in chunks of the
// given sizes (cycled), then io.EOF. Writes are discarded.
type scriptConn struct {
	data  []byte
	sizes []int
	next  int

	mu        sync.Mutex
	deadlines []time.Time // read deadlines in the order they were set
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data))
	if len(c.sizes) > 0 {
		n = min(n, max(c.sizes[c.next%len(c.sizes)], 1))
		c.next++
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *scriptConn) SetDeadline(t time.Time) error {
	return c.SetReadDeadline(t)
}
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (c *scriptConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadlines = append(c.deadlines, t)
	return nil
}

// newTestGuard returns a guard reading stream in chunks of readSizes.
func newTestGuard(stream []byte, readSizes []int, maxHead int) (*guardConn, *scriptConn) {
	sc := &scriptConn{data: stream, sizes: readSizes}
	raw := &trackedConn{Conn: sc, srv: &Server{}}
	return newGuard(raw, raw, &bufPool{}, maxHead, 0), sc
}

// readGuard reads from g with caller buffers of bufSizes (cycled) until an
// error or until limit bytes were read.
func readGuard(g *guardConn, bufSizes []int, limit int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 64<<10)
	for i := 0; len(out) < limit; i++ {
		n, err := g.Read(buf[:min(bufSizes[i%len(bufSizes)], limit-len(out))])
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

const (
	getReq    = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	postReq   = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	chunkReq  = "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
	clteReq   = "POST /evil HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	upgradeWS = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
)

func TestGuardPassesValidStreamUnchanged(t *testing.T) {
	stream := getReq + postReq + "\r\n" + chunkReq + getReq
	for _, reads := range [][]int{{1}, {3}, {17}, {4096}, {1, 4096, 2}} {
		for _, bufs := range [][]int{{1}, {5}, {4096}, {1, 600, 32 << 10}} {
			g, _ := newTestGuard([]byte(stream), reads, 1024)
			out, err := readGuard(g, bufs, 1<<20)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("reads %v bufs %v: err = %v", reads, bufs, err)
			}
			if string(out) != stream {
				t.Fatalf("reads %v bufs %v: released %q", reads, bufs, out)
			}
			if g.in.heads != 4 {
				t.Fatalf("reads %v bufs %v: %d heads seen, want 4", reads, bufs, g.in.heads)
			}
		}
	}
}

func TestGuardReplacesRefusedHeadInOrder(t *testing.T) {
	stream := getReq + postReq + clteReq + getReq
	for _, reads := range [][]int{{1}, {4096}} {
		g, _ := newTestGuard([]byte(stream), reads, 1024)
		// A one-byte read first, as net/http's background read does.
		out, err := readGuard(g, []int{1, 4096}, 1<<20)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("err = %v", err)
		}
		if want := getReq + postReq + rejectHead; string(out) != want {
			t.Fatalf("released %q, want %q", out, want)
		}
		if !g.linger.Load() {
			t.Fatal("refused connection will not linger on close")
		}
	}
}

func TestGuardOversizedHead(t *testing.T) {
	big := "GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("b", 300) + "\r\n\r\n"
	for _, reads := range [][]int{{1}, {64}, {4096}} {
		g, _ := newTestGuard([]byte(getReq+big), reads, 200)
		out, err := readGuard(g, []int{4096}, 2000)
		if err != nil {
			t.Fatal(err)
		}
		prefix := getReq + oversizeHead
		if !strings.HasPrefix(string(out), prefix) || strings.Trim(string(out[len(prefix):]), "a") != "" {
			t.Fatalf("released %q", out)
		}
	}
}

func TestGuardMalformedBodyIsSticky(t *testing.T) {
	stream := "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n" + getReq
	g, _ := newTestGuard([]byte(stream), nil, 1024)
	out, err := readGuard(g, []int{4096}, 1<<20)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("err = %v, want a read *net.OpError", err)
	}
	if strings.Contains(string(out), "zz") || strings.Contains(string(out), "/a") {
		t.Fatalf("released bytes past the error: %q", out)
	}
	for range 3 {
		if _, err2 := g.Read(make([]byte, 10)); err2 != err {
			t.Fatalf("later read returned %v, want the same error", err2)
		}
	}
}

func TestGuardHoldsBytesAfterUpgrade(t *testing.T) {
	after := clteReq // looks like a smuggling attempt, but is tunnel data
	t.Run("hijacked", func(t *testing.T) {
		g, _ := newTestGuard([]byte(upgradeWS+after), nil, 1024)
		buf := make([]byte, 4096)
		n, err := g.Read(buf)
		if err != nil || string(buf[:n]) != upgradeWS {
			t.Fatalf("first read %q, %v", buf[:n], err)
		}
		// Until net/http decides, nothing more comes out.
		if n, err := g.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("held read returned %q, %v", buf[:n], err)
		}
		g.noteHijacked()
		out, err := readGuard(g, []int{7}, 1<<20)
		if !errors.Is(err, io.EOF) || string(out) != after {
			t.Fatalf("after hijack released %q, %v", out, err)
		}
	})
	t.Run("not switched", func(t *testing.T) {
		g, _ := newTestGuard([]byte(upgradeWS+after), nil, 1024)
		buf := make([]byte, 4096)
		if n, err := g.Read(buf); err != nil || string(buf[:n]) != upgradeWS {
			t.Fatalf("first read %q, %v", buf[:n], err)
		}
		g.noteIdle()
		out, err := readGuard(g, []int{4096}, 1<<20)
		if !errors.Is(err, io.EOF) || string(out) != rejectHead {
			t.Fatalf("after idle released %q, %v", out, err)
		}
	})
	t.Run("idle of an earlier request", func(t *testing.T) {
		// Pipelined: the guard reaches the upgrade while net/http still
		// serves the GET before it. That GET completing must not resume.
		g, _ := newTestGuard([]byte(getReq+upgradeWS+after), nil, 1024)
		out, err := readGuard(g, []int{4096}, len(getReq)+len(upgradeWS))
		if err != nil || string(out) != getReq+upgradeWS {
			t.Fatalf("released %q, %v", out, err)
		}
		g.noteIdle()
		buf := make([]byte, 4096)
		if n, err := g.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("held read returned %q, %v", buf[:n], err)
		}
		g.noteIdle()
		if n, _ := g.Read(buf); string(buf[:n]) != rejectHead[:n] || n == 0 {
			t.Fatalf("after the upgrade request's idle released %q", buf[:n])
		}
	})
}

func TestGuardStrayCRLFAfterPOST(t *testing.T) {
	// net/http skips up to four CR/LF bytes after a POST only.
	ok := postReq + "\r\n\r\n" + getReq
	g, _ := newTestGuard([]byte(ok), nil, 1024)
	if out, err := readGuard(g, []int{4096}, 1<<20); string(out) != ok || !errors.Is(err, io.EOF) {
		t.Fatalf("released %q, %v", out, err)
	}
	bad := getReq + "\r\n" + getReq
	g, _ = newTestGuard([]byte(bad), nil, 1024)
	if out, _ := readGuard(g, []int{4096}, 1<<20); string(out) != getReq+rejectHead {
		t.Fatalf("released %q", out)
	}
	tooMany := postReq + "\r\n\r\n\r\n" + getReq
	g, _ = newTestGuard([]byte(tooMany), nil, 1024)
	if out, _ := readGuard(g, []int{4096}, 1<<20); string(out) != postReq+"\r\n\r\n"+rejectHead {
		t.Fatalf("released %q", out)
	}
}

func TestGuardHeadTimeout(t *testing.T) {
	stream := []byte(getReq + getReq)
	g, sc := newTestGuard(stream, []int{5, 1 << 20}, 1024)
	g.headTimeout = time.Minute
	want := time.Now().Add(time.Hour)
	g.SetReadDeadline(want)
	before := time.Now()
	out, err := readGuard(g, []int{4096}, len(stream))
	if err != nil || !bytes.Equal(out, stream) {
		t.Fatalf("released %q, %v", out, err)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	// net/http's deadline, the head deadline while the first head was
	// incomplete, then net/http's again.
	if len(sc.deadlines) != 3 || !sc.deadlines[0].Equal(want) || !sc.deadlines[2].Equal(want) {
		t.Fatalf("deadlines %v", sc.deadlines)
	}
	if d := sc.deadlines[1].Sub(before); d < time.Minute || d > time.Minute+10*time.Second {
		t.Fatalf("head deadline %v after start, want about a minute", d)
	}
}

func TestGuardDetectPreface(t *testing.T) {
	tests := []struct {
		in    string
		reads []int
		h2    bool
	}{
		{h2Preface + "\x00\x00\x00\x04", []int{1}, true},
		{h2Preface, []int{100}, true},
		{"GET / HTTP/1.1\r\n\r\n", []int{100}, false},
		{"POST / HTTP/1.1\r\n\r\n", []int{1}, false},
		{"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", []int{3}, false},
	}
	for _, tt := range tests {
		g, _ := newTestGuard([]byte(tt.in), tt.reads, 1024)
		h2, err := g.detectPreface()
		if err != nil || h2 != tt.h2 {
			t.Errorf("%q: h2 = %v, %v", tt.in, h2, err)
			continue
		}
		// Whatever was read is replayed or inspected, never lost.
		var out []byte
		if h2 {
			out, _ = io.ReadAll(g.replay())
		} else {
			out, _ = readGuard(g, []int{4096}, 1<<20)
		}
		if tt.h2 || strings.HasPrefix(tt.in, "GET") || strings.HasPrefix(tt.in, "POST") {
			if string(out) != tt.in {
				t.Errorf("%q: released %q", tt.in, out)
			}
		}
	}
	g, _ := newTestGuard([]byte("PRI"), nil, 1024)
	if _, err := g.detectPreface(); !errors.Is(err, io.EOF) {
		t.Errorf("short preface: err = %v, want EOF", err)
	}
}

// TestGuardLingersAfterFailedBodyRead: a connection whose body read failed
// midway closes lingering, so the client's unread upload does not turn the
// close into a reset that could destroy the answer already sent.
func TestGuardLingersAfterFailedBodyRead(t *testing.T) {
	head := "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n"
	for _, tt := range []struct {
		stream string
		linger bool
	}{
		{head + "partial", true},
		{getReq, false},
		{head + strings.Repeat("x", 100), false},
	} {
		g, _ := newTestGuard([]byte(tt.stream), nil, 1024)
		if _, err := readGuard(g, []int{4096}, 1<<20); err == nil {
			t.Fatal("script ended without an error")
		}
		if got := g.linger.Load(); got != tt.linger {
			t.Errorf("%q: linger = %v, want %v", tt.stream, got, tt.linger)
		}
	}
}

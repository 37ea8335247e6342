package listener

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// countingConn counts the writes that reach the connection under test.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// readAllAsync reads c until EOF or error and sends what it got.
func readAllAsync(c net.Conn) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		got <- b
	}()
	return got
}

func receive(t *testing.T, got <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-got:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("the peer received nothing within 10s")
		return nil
	}
}

// returnsWithin runs f and reports whether it returned within d.
func returnsWithin(d time.Duration, f func()) (<-chan struct{}, bool) {
	done := make(chan struct{})
	go func() {
		f()
		close(done)
	}()
	select {
	case <-done:
		return done, true
	case <-time.After(d):
		return done, false
	}
}

func TestWriteBehindBatchesWhileThePeerIsBusy(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	counted := &countingConn{Conn: server}
	c := newWriteBehindConn(counted, time.Minute)

	// net.Pipe has no buffer: the first batch's write waits until the peer
	// reads, and every Write meanwhile must return at once and join the
	// next batch.
	var want bytes.Buffer
	for i := range 100 {
		piece := fmt.Sprintf("frame %03d;", i)
		want.WriteString(piece)
		if _, ok := returnsWithin(5*time.Second, func() {
			if _, err := c.Write([]byte(piece)); err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}); !ok {
			t.Fatalf("write %d waited for the peer", i)
		}
	}
	got := readAllAsync(client)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := receive(t, got); !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %q, want %q", b, want.Bytes())
	}
	// One write for the first piece, one for the 99 queued behind it; the
	// writer may also have been quick enough to split once more.
	if n := counted.writes.Load(); n > 3 {
		t.Errorf("100 writes reached the socket as %d writes, want at most 3", n)
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v, want net.ErrClosed", err)
	}
}

func TestWriteBehindBlocksWhenTheQueueIsFull(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newWriteBehindConn(server, time.Minute)
	defer c.Close()

	chunk := bytes.Repeat([]byte("x"), writeBehindLimit)
	// The first chunk is taken by the writer, which blocks on the pipe;
	// the second fills the queue; the third must wait for room.
	if _, ok := returnsWithin(5*time.Second, func() { _, _ = c.Write(chunk) }); !ok {
		t.Fatal("the first write blocked on an empty queue")
	}
	waitTaken(t, c.(*writeBehindConn))
	if _, ok := returnsWithin(5*time.Second, func() { _, _ = c.Write(chunk) }); !ok {
		t.Fatal("a write blocked with room in the queue")
	}
	third, ok := returnsWithin(100*time.Millisecond, func() { _, _ = c.Write([]byte("!")) })
	if ok {
		t.Fatal("a write past writeBehindLimit returned while the peer read nothing")
	}
	got := make([]byte, 2*writeBehindLimit+1)
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	select {
	case <-third:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked write did not return once the peer read")
	}
	if got[len(got)-1] != '!' || bytes.Count(got, []byte("x")) != 2*writeBehindLimit {
		t.Fatal("bytes lost or reordered across the full queue")
	}
}

// waitTaken waits until the writer goroutine has taken everything queued.
func waitTaken(t *testing.T, c *writeBehindConn) {
	t.Helper()
	for deadline := time.Now().Add(ioTimeout); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.mu.Lock()
		taken := c.pending == nil
		c.mu.Unlock()
		if taken {
			return
		}
	}
	t.Fatal("the writer did not take the queued bytes")
}

func TestWriteBehindReportsAFailedWrite(t *testing.T) {
	server, client := net.Pipe()
	c := newWriteBehindConn(server, time.Minute)
	defer c.Close()
	client.Close()

	// The write that fails has already returned; a later one reports it.
	var err error
	for deadline := time.Now().Add(ioTimeout); err == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		_, err = c.Write([]byte("frame"))
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("writes to a closed peer: %v, want io.ErrClosedPipe", err)
	}
}

func TestWriteBehindSendTimeout(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newWriteBehindConn(server, 50*time.Millisecond)
	defer c.Close()

	// The peer never reads: the writer's write must fail after the send
	// timeout, and a Write report it.
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write([]byte("frame"))
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes to a peer that reads nothing: %v, want os.ErrDeadlineExceeded", err)
	}
}

// TestWriteBehindRenewsTheDeadline: the send timeout bounds a pause, not the
// connection's life; a peer that reads everything keeps its connection
// however far apart the writes are.
func TestWriteBehindRenewsTheDeadline(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	// Writes 1.5 timeouts apart, and under a second apart: a writer that
	// renewed only once its deadline had fallen a whole second behind (as
	// this one once did) fails the second write. The timeout is also what
	// the reading goroutine gets to take each write off the pipe.
	const sendTimeout = 600 * time.Millisecond
	const gap = sendTimeout * 3 / 2
	c := newWriteBehindConn(server, sendTimeout)
	got := readAllAsync(client)
	var want bytes.Buffer
	for i := range 3 {
		piece := fmt.Sprintf("frame %d;", i)
		want.WriteString(piece)
		if _, err := c.Write([]byte(piece)); err != nil {
			t.Fatalf("write %d, %v after the previous one: %v", i, gap, err)
		}
		time.Sleep(gap)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := receive(t, got); !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %q, want %q", b, want.Bytes())
	}
}

// TestWriteBehindFailureClosesTheConnection: the HTTP/2 server may have
// nothing more to write after the write that failed (a stream waiting for a
// window update that will not come); the connection must close all the same,
// so that the server's read fails and it lets go.
func TestWriteBehindFailureClosesTheConnection(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newWriteBehindConn(server, 50*time.Millisecond).(*writeBehindConn)
	defer c.Close()
	if _, err := c.Write([]byte("HEADERS")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(ioTimeout); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		failed := c.err != nil
		c.mu.Unlock()
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write to a peer that reads nothing did not time out")
		}
	}
	_ = client.SetReadDeadline(time.Now().Add(ioTimeout))
	if n, err := client.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Fatalf("the peer's read after the failed write: %d bytes, %v; want EOF (closed)", n, err)
	}
}

func TestWriteBehindCloseIsBoundedWhenThePeerReadsNothing(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	c := newWriteBehindConn(server, time.Hour)
	if _, err := c.Write([]byte("GOAWAY")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, ok := returnsWithin(writeBehindCloseTimeout+5*time.Second, func() { c.Close() }); !ok {
		t.Fatal("Close waited on a peer that reads nothing")
	}
	if d := time.Since(start); d < writeBehindCloseTimeout/2 {
		t.Errorf("Close returned after %v without giving the queued bytes a chance", d)
	}
}

func TestWriteBehindKeepsConnectionState(t *testing.T) {
	serverCfg, clientCfg := tlsSetup(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := tls.Server(a, serverCfg)
	go func() { _ = tls.Client(b, clientCfg).Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := newWriteBehindConn(tc, time.Minute)
	st, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		t.Fatal("the wrapped *tls.Conn lost its ConnectionState method")
	}
	if st.ConnectionState().Version != tc.ConnectionState().Version || !st.ConnectionState().HandshakeComplete {
		t.Error("ConnectionState is not the *tls.Conn's")
	}
}

// TestHTTP2ClientSendTimeout: a client that opens huge flow-control windows
// and then reads nothing must not hold an HTTP/2 connection (and the
// server's goroutines and buffers with it) forever.
func TestHTTP2ClientSendTimeout(t *testing.T) {
	const sendTimeout = 300 * time.Millisecond
	handlerDone := make(chan int64, 1)
	ts := startServer(t, Config{
		ClientSendTimeout: sendTimeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			var sent int64
			// Bounded: 1 GiB is far more than loopback socket buffers hold.
			for range 1024 {
				if _, err := w.Write(chunk); err != nil {
					break
				}
				sent += int64(len(chunk))
			}
			handlerDone <- sent
		}),
	})
	h := dialH2C(t, ts.HTTPAddr().String())
	if err := h.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	h.request(t, 1) // reads up to the response headers, then nothing more

	select {
	case sent := <-handlerDone:
		if sent >= 1<<30 {
			t.Fatalf("the handler wrote all %d bytes to a client that reads nothing", sent)
		}
	case <-time.After(ioTimeout):
		t.Fatal("a client that reads nothing held the connection past the send timeout")
	}
	// The connection is closed: after the bytes in flight, reading ends.
	_ = h.c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.Copy(io.Discard, h.c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the rest: %v, want EOF or a reset", err)
	}
}

// TestHTTP2FlushReachesClient: what a handler flushes must reach the client
// while the handler waits, not when the next write or the end of the
// stream pushes the write-behind queue along.
func TestHTTP2FlushReachesClient(t *testing.T) {
	serverTLS, clientTLS := tlsSetup(t)
	gotFirst := make(chan struct{})
	ts := startServer(t, Config{
		HTTPSAddr: "127.0.0.1:0",
		TLSConfig: serverTLS,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "first\n")
			http.NewResponseController(w).Flush()
			select {
			case <-gotFirst:
				io.WriteString(w, "second\n")
			case <-time.After(ioTimeout):
			}
		}),
	})
	client := &http.Client{Timeout: 2 * ioTimeout, Transport: &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}}
	res, err := client.Get("https://" + ts.HTTPSAddr().String() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", res.Proto)
	}
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first chunk: %q, %v", line, err)
	}
	close(gotFirst)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
}

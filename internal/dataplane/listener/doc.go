// Package listener runs Torii's client-facing HTTP and HTTPS servers.
//
// Both listeners speak HTTP/1.1 and HTTP/2: over TLS, ALPN "h2" selects
// HTTP/2; on the plain listener, a connection that opens with the HTTP/2
// preface gets HTTP/2 with prior knowledge (h2c). An "Upgrade: h2c" request is
// never honoured; it reaches the handler as an ordinary HTTP/1.1 request.
// HTTP/2 connections are served by golang.org/x/net/http2, HTTP/1 connections
// by net/http through a channel-backed listener, after the TLS handshake,
// which runs off the accept loop with ReadHeaderTimeout as its deadline.
//
// The HTTP/2 server writes through a write-behind connection: its flushes
// are queued and a goroutine of the connection writes whatever has
// accumulated as one TLS record and one system call, as an event loop does
// once per turn. A proxied response's HEADERS and DATA, and the answers of
// streams that finish together, so share a write (3.0 writes per request
// became 1.6, counting the upstream one). A peer that accepts no bytes for
// ClientSendTimeout has its connection closed.
//
// # Request-smuggling guard
//
// net/http accepts some ambiguously framed requests: with both
// Content-Length and Transfer-Encoding: chunked it silently drops
// Content-Length, and on HTTP/1.0 it ignores Transfer-Encoding. A front proxy
// that frames such a request differently can smuggle a second request past
// it. Every HTTP/1 connection, plain or TLS, is therefore read through a
// guard that releases bytes to net/http only after inspecting them. It holds
// each request head until it is complete (up to MaxHeaderBytes+4096 bytes),
// checks it strictly, and then follows the body (Content-Length, or chunk
// sizes, data, extensions and trailers) to find where the next head starts on
// keep-alive and pipelined connections. It refuses heads with
//
//   - both Content-Length and Transfer-Encoding;
//   - a Transfer-Encoding other than a single "chunked", or any on HTTP/1.0;
//   - several differing Content-Length values, or an invalid one;
//   - obs-fold, whitespace before a colon, a non-token header name;
//   - NUL, a bare CR or another control byte;
//   - a malformed request line or a version other than HTTP/1.x.
//
// To refuse, the guard never writes to the socket, where net/http may still
// be writing an earlier response. It hands net/http a malformed request line
// in place of the head, which net/http answers with "400 Bad Request" and
// Connection: close, in order. A head over the size limit is replaced by one
// that net/http answers with 431. A malformed chunked body makes every later
// read fail, so the handler's body read fails and the connection closes
// without the rest being parsed as a request.
//
// After a request that may switch protocols (Upgrade to anything but h2c
// with Connection: upgrade, or CONNECT) the guard holds further bytes until
// net/http reports the connection hijacked (they then flow unchanged, as a
// tunnel) or ready for the next request (they are inspected as its head).
//
// Because HTTP/1 over TLS reaches net/http through the guard rather than as a
// *tls.Conn, the guard has a ConnectionState method, from which net/http
// sets Request.TLS as it would for a *tls.Conn. (HTTP/2 over TLS is served
// on the *tls.Conn itself.)
//
// Config.OnReject is told of every refusal, with a Reject* reason.
//
// # Fast path
//
// With Config.FastPath set, HTTP/1 connections go to it instead of to
// net/http (see package fastpath). It reads requests by the guard's rules
// (CheckHead, ChunkedDecoder) and gives a connection back with
// FastConn.Handoff, with the bytes it has read, whenever a request is one it
// does not serve itself: the guard and net/http then handle the connection
// from that request on, exactly as without the fast path. FastPath
// connections take part in the drain: idle ones close when it begins, busy
// ones after their current request.
//
// # Shutdown
//
// Serve stops accepting when its context is done, closes idle keep-alive
// connections, sends GOAWAY on HTTP/2 connections, waits up to DrainTimeout
// for in-flight requests and then closes whatever is left. Hijacked
// connections belong to their handlers and are neither awaited nor closed.
package listener

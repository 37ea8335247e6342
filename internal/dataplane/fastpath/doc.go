// Package fastpath is Torii's HTTP/1.1 fast path: a purpose-built server and
// upstream client for the common keep-alive HTTP/1.1 request, which spend a
// fraction of the CPU that net/http's server, the proxy handler and
// net/http's Transport spend per request, and allocate nothing per request.
// It serves HTTP/1 by default; `torii serve --http1-fast-path=false`
// (server.Config DisableHTTP1FastPath) leaves every request to net/http.
//
// # Design
//
// The listener (package listener, Config.FastPath) gives the fast path every
// HTTP/1 connection, plain or TLS (after the handshake, when ALPN chose
// http/1.1 or nothing), on the goroutine the listener already runs for the
// connection. HTTP/2 (ALPN h2, the h2c preface) never comes here. On that one
// goroutine, per request:
//
//  1. The head is read into the connection's buffer (4 KiB, growing to the
//     listener's head limit) and checked with the guard's own rules
//     (listener.CheckHead): what the guard would refuse, the fast path never
//     serves, and it frames bodies as the guard does.
//  2. The head is parsed in place into slices of the buffer. The path is
//     canonicalised (urlpath) and routed through the proxy's live routing
//     table (Proxy.Lookup), so both paths route identically.
//  3. The upstream request head is written straight into a pooled buffer:
//     the canonical path, the client's Host, its fields minus hop-by-hop
//     ones and those its Connection header names, X-Forwarded-For/-Host/
//     -Port/-Proto/-Scheme, X-Scheme, X-Real-IP and X-Request-ID set exactly
//     as the proxy sets them (client values overwritten), and the framing
//     net/http's Transport would choose. Header names are canonicalised as
//     net/http does; the order of fields is the client's.
//  4. An upstream connection comes from a per-endpoint LIFO idle pool
//     (bounded by MaxIdleConnsPerHost; closed after the shorter of
//     IdleConnTimeout and UpstreamReadTimeout idle, by a reaper goroutine
//     per Server). The head and whatever of the body was already read go out
//     in one write; the rest of the body streams from the client (a chunked
//     body decoded by the guard's rules and re-chunked, without extensions
//     or trailers, as the Transport sends it).
//  5. The response head is read and parsed strictly (see parseResponseHead)
//     and the answer is written as net/http's server would write the
//     proxy's answer: its status line, the upstream's fields minus
//     hop-by-hop ones, Torii's Server, a Date when the upstream sent none, a
//     sniffed Content-Type where net/http would sniff, Content-Length kept,
//     otherwise chunked (re-chunked, trailers passed on). A small answer
//     leaves in one write; a large or streamed one is relayed through a
//     pooled 32 KiB buffer, flushed after every upstream read.
//  6. Both connections are kept when the framing allows. Timeouts are the
//     proxy's (connect, response header, upstream read/send idle, client
//     body/send idle, the listener's read-header and idle timeouts), as
//     deadlines renewed only when off by more than min(timeout/16, 1s), so a
//     busy connection rarely touches a timer. Retries, statuses, error pages
//     and metrics are the proxy's, byte for byte and label for label.
//
// No goroutine is started per request, with two exceptions on slow paths:
// when an upstream has not answered within a second, a goroutine watches
// the client's socket (peeking, never reading) so that a client that leaves
// ends the wait, as net/http's background read does for the proxy (plain
// HTTP only); and a stalled upload checks every second, without reading it,
// whether the upstream has answered already, so an early 413 is relayed at
// once.
//
// # HTTP/2 and handed-off requests: Transport
//
// HTTP/2 streams and the HTTP/1 requests the fast path hands off are served
// by net/http and the proxy handler, but their upstream side can still be
// the fast path's: Transport is an http.RoundTripper the server installs in
// the proxy (proxy.Proxy.WrapRoundTripper). A body-less GET or HEAD without
// an upgrade or expectation is written by the handler's goroutine straight
// onto a pooled connection of this package and its answer parsed with the
// same strict parser; anything else goes to the proxy's http.Transport.
// That spares the two goroutines net/http's Transport runs per upstream
// connection and the hand-offs between them, about a third of the CPU of
// an HTTP/2 request.
//
// # What goes to net/http
//
// Anything unusual is handed to the existing path on the same connection,
// before anything is consumed or sent for it: the listener's guard and
// net/http then read the already-read bytes first (listener.FastConn.Handoff),
// and the connection stays with them. So every refusal is answered exactly as
// before (400, 405, 431; Connection: close; the same OnReject reasons and
// metrics), and so are
//
//   - heads the guard refuses (framing, malformed lines, control bytes,
//     obs-fold, bare CR, oversize) and heads net/http would treat specially:
//     a bare LF line ending, a blank line before the request line;
//   - versions other than HTTP/1.1 (HTTP/1.0 included), targets not in
//     origin form (absolute form, "*", authority form), CONNECT and TRACE;
//   - any Upgrade (WebSocket, h2c), any Expect (100-continue), a Trailer
//     declaration, a chunked body on a method that usually has none;
//   - a missing, repeated, empty or unusual Host (anything beyond the bytes
//     net/http accepts, IPv6 zones and non-ASCII names included);
//   - a path that does not canonicalise (%00, malformed escapes, an encoded
//     slash with RejectEncodedSlash) and a query needing escaping.
//
// # Deliberate differences
//
// Where the fast path differs from the net/http path it is stricter:
//
//   - A chunked request body found malformed in what was read with the head
//     is refused (400, connection closed) before anything reaches the
//     upstream; net/http has sent the head upstream by then.
//   - Upstream answers with both Content-Length and Transfer-Encoding, a
//     Transfer-Encoding other than one "chunked" (or any on HTTP/1.0),
//     differing or invalid Content-Lengths, obs-fold, bare LF or CR, control
//     bytes, a status under 100, or a head over 1 MiB are answered 502 and
//     their connection is closed; net/http's Transport accepts some of them.
//     Bytes after the end of an answer make its connection unusable.
//   - An upstream body that fails before any of the answer was written (a
//     malformed first chunk, a short body of an answer to be sniffed) gets
//     a 502 instead of a closed connection.
//
// # Limits and risk
//
//   - Every pooled upstream connection is checked with a non-blocking peek
//     before reuse (about a microsecond): one the upstream closed, or one
//     carrying bytes nobody asked for, is dropped, so such bytes can never
//     be read as the next answer. An upstream that closes a connection
//     after that check and before the request reaches it fails the
//     request, which is retried once on a new connection when it can be
//     replayed (GET, HEAD, OPTIONS, or an Idempotency-Key) or nothing of it
//     was sent. net/http's Transport has the same window.
//   - A request body streams before the answer is read: an upstream that
//     answers while still reading the body and fills the socket buffers
//     before it is done (full duplex) waits for UpstreamSendTimeout.
//   - Over TLS a client that leaves while the upstream is silent is noticed
//     only at the next write or timeout.
//   - The fast path is new code on the request path of an internet-facing
//     proxy. Its parsers are fuzzed against the guard's and net/http's
//     (FuzzRequestHead, FuzzResponse), and the differential tests in this
//     package send the same bytes through both paths and compare what the
//     client, the backend and the metrics see.
package fastpath

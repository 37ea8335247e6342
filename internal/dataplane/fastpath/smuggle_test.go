package fastpath

import (
	"reflect"
	"strings"
	"testing"
)

// Request smuggling attempts on the raw socket. Each must be refused exactly
// as the guard and net/http refuse it without the fast path (the two runs
// are compared whole: answers, connection state, what reached the backend,
// metrics), and the refusals are asserted outright as well: the status, the
// connection closed, and nothing at the backend.

type smuggle struct {
	name   string
	raw    string
	status int // 0: accepted (only compared)
	open   bool
	// partial: the body is refused only after more than the fast path
	// reads with the head, so its start may have gone upstream; the
	// upstream request must then have failed (a truncated body).
	partial bool
}

func TestRequestSmuggling(t *testing.T) {
	const post = "POST /s HTTP/1.1\r\nHost: app.example\r\n"
	// A request a desynchronised backend would take for the next one.
	const inner = "GET /admin HTTP/1.1\r\nHost: app.example\r\n\r\n"
	cases := []smuggle{
		// Content-Length with Transfer-Encoding, in both orders.
		{name: "CL.TE", raw: post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", status: 400},
		{name: "TE.CL", raw: post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n" + inner + "\r\n0\r\n\r\n", status: 400},
		{name: "CL.TE with zero length", raw: post + "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		// Transfer-Encoding variants.
		{name: "TE chunked, identity", raw: post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE identity, chunked", raw: post + "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE chunked twice in one", raw: post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE two headers", raw: post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE xchunked", raw: post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE chunkedx", raw: post + "Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE gzip", raw: post + "Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE identity", raw: post + "Transfer-Encoding: identity\r\nContent-Length: 1\r\n\r\nx", status: 400},
		{name: "TE quoted", raw: post + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE space before colon", raw: post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE tab before colon", raw: post + "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE vertical tab", raw: post + "Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE form feed", raw: post + "Transfer-Encoding:\x0cchunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE NUL", raw: post + "Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE obs-fold", raw: post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE on HTTP/1.0", raw: "POST /s HTTP/1.0\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "TE underscore name", raw: post + "Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		// Accepted variants: the same in both paths.
		{name: "TE Chunked", raw: post + "Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{name: "TE CHUNKED with spaces", raw: post + "Transfer-Encoding:   CHUNKED  \r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{name: "te lower-case name", raw: post + "transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		// Content-Length variants.
		{name: "two CLs", raw: post + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", status: 400},
		{name: "two CLs one header", raw: post + "Content-Length: 1, 2\r\n\r\nab", status: 400},
		{name: "same CL twice", raw: post + "Content-Length: 2\r\nContent-Length: 2\r\n\r\nab"},
		{name: "same CL list", raw: post + "Content-Length: 2, 2\r\n\r\nab", status: 400},
		{name: "CL plus sign", raw: post + "Content-Length: +2\r\n\r\nab", status: 400},
		{name: "CL minus", raw: post + "Content-Length: -1\r\n\r\nab", status: 400},
		{name: "CL inner space", raw: post + "Content-Length: 1 2\r\n\r\nab", status: 400},
		{name: "CL hex", raw: post + "Content-Length: 0x2\r\n\r\nab", status: 400},
		{name: "CL empty", raw: post + "Content-Length:\r\n\r\nab", status: 400},
		{name: "CL huge", raw: post + "Content-Length: 99999999999999999999\r\n\r\nab", status: 400},
		{name: "CL leading zeros", raw: post + "Content-Length: 002\r\n\r\nab"},
		{name: "CL padded", raw: post + "Content-Length:  2 \t\r\n\r\nab"},
		{name: "CL space before colon", raw: post + "Content-Length : 2\r\n\r\nab", status: 400},
		// Chunked bodies.
		{name: "chunk size not hex", raw: post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk size negative", raw: post + "Transfer-Encoding: chunked\r\n\r\n-1\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk size 0x", raw: post + "Transfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk size spaced", raw: post + "Transfer-Encoding: chunked\r\n\r\n1 0\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk size 17 digits", raw: post + "Transfer-Encoding: chunked\r\n\r\n00000000000000002\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk size bare LF", raw: post + "Transfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk size bare CR", raw: post + "Transfer-Encoding: chunked\r\n\r\n2\rab\r\n0\r\n\r\n", status: 400},
		{name: "chunk data too long", raw: post + "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", status: 400},
		{name: "chunk data bare LF", raw: post + "Transfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n", status: 400},
		{name: "chunk ext NUL", raw: post + "Transfer-Encoding: chunked\r\n\r\n2;a=\x00\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk ext bare LF", raw: post + "Transfer-Encoding: chunked\r\n\r\n2;a\nb\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk ext too long", raw: post + "Transfer-Encoding: chunked\r\n\r\n2;" + strings.Repeat("a", 5000) + "\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "chunk ext quoted", raw: post + "Transfer-Encoding: chunked\r\n\r\n2;a=\"b;c\"\r\nab\r\n0\r\n\r\n"},
		{name: "chunk space before ext", raw: post + "Transfer-Encoding: chunked\r\n\r\n2 ;a\r\nab\r\n0\r\n\r\n", status: 400},
		{name: "tiny chunk flood", raw: post + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("e", 100)+"\r\na\r\n", 200) + "0\r\n\r\n", status: 400, partial: true},
		{name: "trailer obs-fold", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", status: 400},
		{name: "trailer bare LF", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n", status: 400},
		{name: "trailer too long", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", status: 400},
		{name: "smuggled after chunked", raw: post + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + inner},
		// Heads.
		{name: "obs-fold", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-A: a\r\n b\r\n\r\n", status: 400},
		{name: "obs-fold tab", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-A: a\r\n\tb\r\n\r\n", status: 400},
		{name: "first header folded", raw: "GET /s HTTP/1.1\r\n Host: app.example\r\n\r\n", status: 400},
		{name: "bare CR in header", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-A: a\rb\r\n\r\n", status: 400},
		{name: "bare CR line end", raw: "GET /s HTTP/1.1\r\nHost: app.example\rX-A: b\r\n\r\n", status: 400},
		{name: "NUL in header", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-A: a\x00b\r\n\r\n", status: 400},
		{name: "NUL in name", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX\x00A: b\r\n\r\n", status: 400},
		{name: "DEL in header", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-A: a\x7fb\r\n\r\n", status: 400},
		{name: "no colon", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-A b\r\n\r\n", status: 400},
		{name: "empty name", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\n: b\r\n\r\n", status: 400},
		{name: "non-token name", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX(A): b\r\n\r\n", status: 400},
		{name: "non-ASCII name", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-\xc3\xa9: b\r\n\r\n", status: 400},
		{name: "missing host", raw: "GET /s HTTP/1.1\r\n\r\n", status: 400, open: false},
		{name: "two hosts", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nHost: other.example\r\n\r\n", status: 400},
		{name: "host with space", raw: "GET /s HTTP/1.1\r\nHost: app example\r\n\r\n", status: 400},
		{name: "host with slash", raw: "GET /s HTTP/1.1\r\nHost: app.example/x\r\n\r\n", status: 400},
		{name: "oversize head", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", status: 431},
		{name: "head at the limit", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("a", 60<<10) + "\r\n\r\n"},
		// Request lines.
		{name: "double space", raw: "GET  /s HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "trailing space", raw: "GET /s HTTP/1.1 \r\nHost: app.example\r\n\r\n", status: 400},
		{name: "extra token", raw: "GET /s HTTP/1.1 x\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "tab separators", raw: "GET\t/s\tHTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "HTTP/2.0 version", raw: "GET /s HTTP/2.0\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "HTTP/1.10 version", raw: "GET /s HTTP/1.10\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "lower-case version", raw: "GET /s http/1.1\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "HTTP/0.9", raw: "GET /s\r\n\r\n", status: 400},
		{name: "method with slash", raw: "G/T /s HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "NUL in target", raw: "GET /s\x00 HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "encoded NUL", raw: "GET /s%00 HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400, open: true},
		{name: "bad escape", raw: "GET /s%zz HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "control byte in query", raw: "GET /s?a\x01 HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400},
		{name: "h2 preface mid-connection", raw: "GET /s HTTP/1.1\r\nHost: app.example\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{name: "absolute form other host", raw: "GET http://other.example/s HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		{name: "absolute form https", raw: "GET https://app.example/s?x HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		{name: "absolute form no path", raw: "GET http://app.example HTTP/1.1\r\nHost: app.example\r\n\r\n"},
		{name: "authority form", raw: "GET app.example:80 HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 400, open: true},
		{name: "connect", raw: "CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n", status: 405, open: true},
		{name: "trace", raw: "TRACE /s HTTP/1.1\r\nHost: app.example\r\n\r\n", status: 405, open: true},
		// Refusals after a served request keep the order of answers.
		{name: "bad request after good", raw: "GET /1 HTTP/1.1\r\nHost: app.example\r\n\r\n" + post + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			methods := []string{"POST"}
			if !strings.HasPrefix(tc.raw, "POST") {
				methods[0] = strings.SplitN(tc.raw, " ", 2)[0]
			}
			n := strings.Count(tc.raw, " HTTP/1.1\r\n") + strings.Count(tc.raw, " HTTP/1.0\r\n")
			for len(methods) < n {
				methods = append(methods, "GET")
			}
			sc := scenario{name: tc.name, raw: tc.raw, methods: methods}
			if tc.status == 0 {
				compareScenario(t, sc)
				return
			}
			// A refused request must not reach the backend. Without the
			// fast path the head of a request whose chunked body turns out
			// malformed has already gone upstream (its body then fails);
			// the fast path checks what it has read before it sends
			// anything, so that is the one difference allowed.
			want, got := runScenario(t, false, sc), runScenario(t, true, sc)
			want.Backend = nil
			gotBackend := got.Backend
			got.Backend = nil
			if !reflect.DeepEqual(want, got) {
				t.Errorf("fast path differs from net/http\n--- net/http:\n%s\n--- fast path:\n%s", dump(want), dump(got))
			}
			if tc.status > 0 && (len(got.Responses) == 0 || !strings.Contains(got.Responses[0], " "+itoa(tc.status)+" ")) {
				t.Errorf("fast path: first answer %q, want status %d", got.Responses, tc.status)
			}
			if got.Closed == tc.open {
				t.Errorf("fast path: connection closed = %v, want %v", got.Closed, !tc.open)
			}
			for _, r := range gotBackend {
				if !tc.partial || !strings.Contains(r, "body error:") {
					t.Errorf("fast path: the backend received a request: %q", r)
				}
			}
		})
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

package listener

import (
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	const rl = "GET / HTTP/1.1\r\nHost: x\r\n"
	tests := []struct {
		name string
		head string
		ok   bool
		want headInfo
	}{
		{"plain GET", rl + "\r\n", true, headInfo{}},
		{"bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n", true, headInfo{}},
		{"content-length", "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", true, headInfo{length: 12, post: true}},
		{"content-length case and OWS", rl + "content-LENGTH: \t7 \r\n\r\n", true, headInfo{length: 7}},
		{"identical content-lengths", rl + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", true, headInfo{length: 5}},
		{"chunked", rl + "Transfer-Encoding: chunked\r\n\r\n", true, headInfo{chunked: true}},
		{"chunked any case", rl + "transfer-encoding: ChUnKeD\r\n\r\n", true, headInfo{chunked: true}},
		{"HTTP/1.0 with length", "PUT /x HTTP/1.0\r\nContent-Length: 3\r\n\r\n", true, headInfo{length: 3}},
		{"websocket upgrade", rl + "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", true, headInfo{tunnel: true}},
		{"upgrade split over headers", rl + "Upgrade: h2c\r\nConnection: close\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", true, headInfo{tunnel: true}},
		{"h2c upgrade is no tunnel", rl + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", true, headInfo{}},
		{"upgrade without connection token", rl + "Upgrade: websocket\r\n\r\n", true, headInfo{}},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", true, headInfo{tunnel: true}},
		{"lower-case post is not POST", "post / HTTP/1.1\r\n\r\n", true, headInfo{}},
		{"obs-text value", rl + "X-Name: caf\xc3\xa9\r\n\r\n", true, headInfo{}},
		{"HTTP/1.9", "GET / HTTP/1.9\r\n\r\n", true, headInfo{}},

		{"CL and TE", rl + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false, headInfo{}},
		{"TE and CL", rl + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false, headInfo{}},
		{"TE gzip", rl + "Transfer-Encoding: gzip\r\n\r\n", false, headInfo{}},
		{"TE gzip, chunked", rl + "Transfer-Encoding: gzip, chunked\r\n\r\n", false, headInfo{}},
		{"TE chunked twice in one", rl + "Transfer-Encoding: chunked, chunked\r\n\r\n", false, headInfo{}},
		{"TE twice", rl + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false, headInfo{}},
		{"TE identity", rl + "Transfer-Encoding: identity\r\n\r\n", false, headInfo{}},
		{"TE empty", rl + "Transfer-Encoding:\r\n\r\n", false, headInfo{}},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", false, headInfo{}},
		{"different CLs", rl + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", false, headInfo{}},
		{"CL 5 and 05", rl + "Content-Length: 5\r\nContent-Length: 05\r\n\r\n", false, headInfo{}},
		{"CL list", rl + "Content-Length: 5, 5\r\n\r\n", false, headInfo{}},
		{"CL sign", rl + "Content-Length: +5\r\n\r\n", false, headInfo{}},
		{"CL negative", rl + "Content-Length: -1\r\n\r\n", false, headInfo{}},
		{"CL hex", rl + "Content-Length: 0x10\r\n\r\n", false, headInfo{}},
		{"CL empty", rl + "Content-Length: \r\n\r\n", false, headInfo{}},
		{"CL overflow", rl + "Content-Length: 9223372036854775808\r\n\r\n", false, headInfo{}},
		{"CL max", rl + "Content-Length: 9223372036854775807\r\n\r\n", true, headInfo{length: 1<<63 - 1}},
		{"obs-fold", rl + "X-A: 1\r\n continued\r\n\r\n", false, headInfo{}},
		{"obs-fold tab", rl + "X-A: 1\r\n\tcontinued\r\n\r\n", false, headInfo{}},
		{"space before colon", rl + "Content-Length : 5\r\n\r\n", false, headInfo{}},
		{"tab before colon", rl + "Transfer-Encoding\t: chunked\r\n\r\n", false, headInfo{}},
		{"non-token name", rl + "X(a): 1\r\n\r\n", false, headInfo{}},
		{"empty name", rl + ": 1\r\n\r\n", false, headInfo{}},
		{"no colon", rl + "Content-Length 5\r\n\r\n", false, headInfo{}},
		{"NUL in value", rl + "X-A: a\x00b\r\n\r\n", false, headInfo{}},
		{"bare CR in value", rl + "X-A: a\rb\r\n\r\n", false, headInfo{}},
		{"bare CR line end", rl + "X-A: a\r\r\n\r\n", false, headInfo{}},
		{"CR in request line", "GET /\r HTTP/1.1\r\n\r\n", false, headInfo{}},
		{"control byte in value", rl + "X-A: \x01\r\n\r\n", false, headInfo{}},
		{"DEL in value", rl + "X-A: \x7f\r\n\r\n", false, headInfo{}},
		{"empty request line", "\r\nGET / HTTP/1.1\r\n\r\n", false, headInfo{}},
		{"leading space", " GET / HTTP/1.1\r\n\r\n", false, headInfo{}},
		{"two spaces", "GET  / HTTP/1.1\r\n\r\n", false, headInfo{}},
		{"trailing space", "GET / HTTP/1.1 \r\n\r\n", false, headInfo{}},
		{"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", false, headInfo{}},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\n", false, headInfo{}},
		{"HTTP/0.9 style", "GET /\r\n\r\n", false, headInfo{}},
		{"lower-case version", "GET / http/1.1\r\n\r\n", false, headInfo{}},
		{"method with slash", "GE/T / HTTP/1.1\r\n\r\n", false, headInfo{}},
		{"tab separator", "GET\t/ HTTP/1.1\r\n\r\n", false, headInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseHead([]byte(tt.head))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHeadEnd(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\n\r\nrest", 18},
		{"GET / HTTP/1.1\n\nrest", 16},
		{"GET / HTTP/1.1\r\nA: b\n\r\nrest", 23},
		{"\r\nGET", 2},
		{"\nGET", 1},
		{"GET / HTTP/1.1\r\nA: b\r\n", -1},
		{"GET / HTTP/1.1\r\n\r", -1},
		{"GET / HTTP/1.1\r\n\r\r\n\r\n", 21},
	}
	for _, tt := range tests {
		var in inspector
		if got := in.headEnd([]byte(tt.in)); got != tt.want {
			t.Errorf("headEnd(%q) = %d, want %d", tt.in, got, tt.want)
		}
		// Fed one byte at a time, the search must reach the same end.
		in = inspector{}
		got := -1
		for n := 1; n <= len(tt.in) && got < 0; n++ {
			got = in.headEnd([]byte(tt.in[:n]))
		}
		if got != tt.want {
			t.Errorf("headEnd(%q) byte by byte = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestChunkTracker(t *testing.T) {
	tests := []struct {
		name string
		body string
		end  int // offset where the body ends; -1 if incomplete, -2 if an error
	}{
		{"simple", "5\r\nhello\r\n0\r\n\r\nNEXT", 15},
		{"hex sizes", "a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", 35},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", 20},
		{"extensions", "5;name=value;flag\r\nhello\r\n0;last=\"x y\"\r\n\r\n", 42},
		{"trailing whitespace", "5 \t\r\nhello\r\n0\r\n\r\n", 17},
		{"trailers", "1\r\nx\r\n0\r\nX-Sum: 42\r\nX-B:\r\n\r\n", 28},
		{"incomplete data", "5\r\nhel", -1},
		{"incomplete trailer", "0\r\nX-A: 1\r\n", -1},
		{"missing size", "\r\nhello\r\n", -2},
		{"bare LF size line", "5\nhello\r\n0\r\n\r\n", -2},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n", -2},
		{"data overrun", "5\r\nhelloX\r\n0\r\n\r\n", -2},
		{"space before semicolon", "5 ;ext\r\nhello\r\n0\r\n\r\n", -2},
		{"leading space", " 5\r\nhello\r\n0\r\n\r\n", -2},
		{"sign", "+5\r\nhello\r\n0\r\n\r\n", -2},
		{"17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", -2},
		{"LF in extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", -2},
		{"NUL in extension", "5;a\x00\r\nhello\r\n0\r\n\r\n", -2},
		{"CR in extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", -2},
		{"trailer obs-fold", "0\r\nX-A: 1\r\n 2\r\n\r\n", -2},
		{"trailer space before colon", "0\r\nX-A : 1\r\n\r\n", -2},
		{"trailer bare LF", "0\r\nX-A: 1\n\r\n", -2},
		{"final bare LF", "0\r\n\n", -2},
		{"trailer NUL", "0\r\nX-A: \x00\r\n\r\n", -2},
		{"line too long", "5;" + strings.Repeat("e", maxChunkLine) + "\r\nhello\r\n0\r\n\r\n", -2},
		{"trailer too long", "0\r\nX-A: " + strings.Repeat("v", maxTrailer) + "\r\n\r\n", -2},
		{"too much overhead", strings.Repeat("1;"+strings.Repeat("e", 100)+"\r\nx\r\n", 200) + "0\r\n\r\n", -2},
		// The trailer section reaches maxTrailer+1 bytes at its final LF.
		{"trailer too long at the final LF", "0\r\nX: " + strings.Repeat("t", maxTrailer-6) + "\r\n\r\n", -2},
	}
	// Where the error is found: advance must consume everything before the
	// failing byte and not the byte itself, or it would be released.
	failAt := map[string]int{
		"missing size":                     0,
		"data overrun":                     8,
		"final bare LF":                    3,
		"trailer NUL":                      8,
		"trailer too long":                 3 + maxTrailer,
		"trailer too long at the final LF": 3 + maxTrailer,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errAt := -1
			for _, step := range []int{1, 2, 7, len(tt.body)} {
				var c chunkTracker
				end := -1
				b := []byte(tt.body)
				for off := 0; off < len(b) && end == -1; {
					chunk := b[off:min(off+step, len(b))]
					n, done, err := c.advance(chunk)
					switch {
					case err != nil:
						end = -2
						if errAt >= 0 && off+n != errAt {
							t.Fatalf("step %d: error after %d bytes, %d with other steps", step, off+n, errAt)
						}
						errAt = off + n
						if want, ok := failAt[tt.name]; ok && errAt != want {
							t.Fatalf("step %d: error after %d bytes, want %d (the failing byte is b[%d] = %q)", step, errAt, want, want, b[want])
						}
					case done:
						end = off + n
					case n != len(chunk):
						t.Fatalf("step %d: consumed %d of %d bytes without finishing", step, n, len(chunk))
					}
					off += n
				}
				if end != tt.end {
					t.Fatalf("step %d: end = %d, want %d", step, end, tt.end)
				}
			}
		})
	}
}

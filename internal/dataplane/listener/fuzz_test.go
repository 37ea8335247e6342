package listener

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// FuzzGuard checks the guard against net/http itself.
//
// Any byte stream: the guard must not panic, must release the stream
// unchanged up to the point where it substitutes (a refused or oversized
// head) or stops (a malformed body), and every request net/http parses from
// what it released must start exactly where the guard saw a head, with its
// body ending exactly where the guard saw it end. A body net/http refuses
// must never be one the guard accepted.
//
// Valid pipelined streams generated from the input: the guard must release
// every byte unchanged and net/http must read every request and body.
func FuzzGuard(f *testing.F) {
	seeds := []string{
		getReq + postReq + chunkReq,
		clteReq,
		upgradeWS + clteReq,
		postReq + "\r\n" + getReq,
		"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n" + getReq,
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + getReq,
		"CONNECT a:443 HTTP/1.1\r\n\r\n" + getReq,
		"GET / HTTP/1.1\r\nX: " + strings.Repeat("v", 300) + "\r\n\r\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		// Framing overhead and trailer sizes near net/http's limits.
		// Each chunk adds 86 bytes of excess; net/http refuses past 16384.
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1;"+strings.Repeat("e", 100)+"\r\nx\r\n", 190) + "0\r\n\r\n" + getReq,
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1;"+strings.Repeat("e", 100)+"\r\nx\r\n", 191) + "0\r\n\r\n" + getReq,
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + strings.Repeat("t", 3990) + "\r\n\r\n" + getReq,
		"",
	}
	for i, s := range seeds {
		f.Add(byte(i*37), []byte(s))
	}
	f.Fuzz(func(t *testing.T, ctl byte, data []byte) {
		checkArbitraryStream(t, ctl, data)
		stream, bodies := generateValidStream(data)
		checkValidStream(t, ctl, stream, bodies)
	})
}

// guardRun is the outcome of reading a stream through a guard.
type guardRun struct {
	g      *guardConn
	out    []byte
	err    error
	heads  map[int64]int // head start offset -> request index
	bodies []int64       // body end offsets, by request index
}

func runFuzzGuard(ctl byte, stream []byte, maxHead int) guardRun {
	readSizes := [][]int{{4096}, {1}, {1, 7, 64, 3}, {13, 600}}[ctl&3]
	bufSizes := [][]int{{4096}, {1, 4096}, {3}, {32 << 10, 1, 512}}[ctl>>2&3]
	g, _ := newTestGuard(stream, readSizes, maxHead)
	if ctl&32 != 0 {
		// Every request completes at once: tunnels resume immediately.
		g.idle.Store(1 << 62)
	}
	r := guardRun{g: g, heads: map[int64]int{}}
	g.in.onHead = func(pos int64) { r.heads[pos] = len(r.heads) }
	g.in.onBody = func(pos int64) { r.bodies = append(r.bodies, pos) }
	// The oversize filler is endless; net/http would stop at its limit.
	r.out, r.err = readGuard(g, bufSizes, len(stream)+maxHead+4096)
	return r
}

func checkArbitraryStream(t *testing.T, ctl byte, stream []byte) {
	maxHead := 8192
	if ctl&16 != 0 {
		maxHead = 128
	}
	r := runFuzzGuard(ctl, stream, maxHead)

	// The guard only ever truncates, then substitutes.
	released := r.out
	switch r.g.state {
	case stateRejected:
		if !bytes.HasSuffix(r.out, []byte(rejectHead)) {
			t.Fatalf("refused stream does not end with the substitute head: %q", r.out)
		}
		released = r.out[:len(r.out)-len(rejectHead)]
	case stateOversize:
		i := bytes.LastIndex(r.out, []byte(oversizeHead))
		if i < 0 || strings.Trim(string(r.out[i+len(oversizeHead):]), "a") != "" {
			t.Fatalf("oversized head not replaced by filler: %q", r.out)
		}
		released = r.out[:i]
	case stateFailed:
		var want error = r.g.err
		if r.err != want {
			t.Fatalf("failed guard returned %v, want its sticky error", r.err)
		}
	}
	if !bytes.HasPrefix(stream, released) {
		t.Fatalf("released bytes are not a prefix of the input:\nin  %q\nout %q", stream, released)
	}
	compareWithNetHTTP(t, r)
}

// compareWithNetHTTP reads r.out the way net/http's server reads a
// connection and checks that it frames requests exactly where the guard did.
func compareWithNetHTTP(t *testing.T, r guardRun) []string {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(r.out)}
	br := bufio.NewReader(cr)
	var bodies []string
	post := false
	for {
		if post {
			// net/http's server tolerates stray CR/LF after a POST body.
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			br.Discard(n)
		}
		pos := cr.n - int64(br.Buffered())
		req, err := http.ReadRequest(br)
		if err != nil {
			return bodies
		}
		idx, ok := r.heads[pos]
		if !ok {
			t.Fatalf("net/http parsed %s %s at offset %d, where the guard saw no head (heads %v)", req.Method, req.RequestURI, pos, r.heads)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			if idx < len(r.bodies) {
				t.Fatalf("net/http refused the body of request %d, which the guard accepted: %v", idx, err)
			}
			return bodies
		}
		end := cr.n - int64(br.Buffered())
		if idx >= len(r.bodies) || r.bodies[idx] != end {
			t.Fatalf("request %d: net/http's body ends at %d, the guard's at %v", idx, end, r.bodies)
		}
		bodies = append(bodies, string(body))
		post = req.Method == "POST"
	}
}

func checkValidStream(t *testing.T, ctl byte, stream []byte, bodies []string) {
	r := runFuzzGuard(ctl|32, stream, 8192)
	if !errors.Is(r.err, io.EOF) || !bytes.Equal(r.out, stream) {
		t.Fatalf("valid stream changed (err %v, state %d):\nin  %q\nout %q", r.err, r.g.state, stream, r.out)
	}
	if len(r.heads) != len(bodies) {
		t.Fatalf("guard saw %d heads, want %d:\n%q", len(r.heads), len(bodies), stream)
	}
	got := compareWithNetHTTP(t, r)
	if fmt.Sprint(got) != fmt.Sprint(bodies) {
		t.Fatalf("net/http read bodies %q, want %q", got, bodies)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// generateValidStream builds a pipelined sequence of well-formed requests
// from data and returns it with the bodies each request carries.
func generateValidStream(data []byte) ([]byte, []string) {
	src := byteSource{b: data}
	var (
		out    bytes.Buffer
		bodies []string
	)
	requests := 1 + len(data)%6
	for range requests {
		method := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"}[src.next()%7]
		http10 := src.next()%5 == 0
		eol := "\r\n"
		if src.next()%7 == 0 {
			eol = "\n" // net/http and the guard accept bare LF in heads
		}
		version := "HTTP/1.1"
		if http10 {
			version = "HTTP/1.0"
		}
		fmt.Fprintf(&out, "%s /%s %s%s", method, src.word(10), version, eol)
		fmt.Fprintf(&out, "Host: h%s%s", src.word(3), eol)
		for range src.next() % 3 {
			name := []string{"X-Trace", "accept", "User-Agent", "x_under", "Connection", "Upgrade"}[src.next()%6]
			value := src.fieldValue(12)
			if name == "Connection" {
				value = []string{"keep-alive", "Upgrade, HTTP2-Settings", "close"}[src.next()%3]
			}
			if name == "Upgrade" {
				value = "h2c"
			}
			fmt.Fprintf(&out, "%s:%s%s", name, value, eol)
		}
		var body bytes.Buffer
		switch kind := src.next() % 3; {
		case kind == 1 || (kind == 2 && http10):
			n := int(src.next() % 40)
			for range n {
				body.WriteByte(src.next())
			}
			cl := []string{"Content-Length", "content-length", "CONTENT-LENGTH"}[src.next()%3]
			fmt.Fprintf(&out, "%s: %d%s", cl, n, eol)
			if src.next()%4 == 0 {
				fmt.Fprintf(&out, "%s:%d \t%s", cl, n, eol)
			}
			out.WriteString(eol)
			out.Write(body.Bytes())
		case kind == 2:
			fmt.Fprintf(&out, "Transfer-Encoding: %s%s%s", []string{"chunked", "Chunked", "CHUNKED"}[src.next()%3], eol, eol)
			for range src.next() % 4 {
				n := 1 + int(src.next()%20)
				out.WriteString(src.chunkSize(n))
				out.WriteString("\r\n")
				for range n {
					c := src.next()
					body.WriteByte(c)
					out.WriteByte(c)
				}
				out.WriteString("\r\n")
			}
			out.WriteString(src.chunkSize(0) + "\r\n")
			for range src.next() % 3 {
				fmt.Fprintf(&out, "X-T%s:%s\r\n", src.word(3), src.fieldValue(8))
			}
			out.WriteString("\r\n")
		default:
			out.WriteString(eol)
		}
		bodies = append(bodies, body.String())
		if method == "POST" && src.next()%3 == 0 {
			out.WriteString([]string{"\r\n", "\n", "\r\n\r\n"}[src.next()%3])
		}
	}
	return out.Bytes(), bodies
}

// byteSource deals out the fuzz input cyclically as pseudo-random choices.
type byteSource struct {
	b []byte
	i int
}

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[s.i%len(s.b)]
	s.i++
	return c
}

func (s *byteSource) word(max byte) string {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	for range s.next() % max {
		b.WriteByte(alnum[int(s.next())%len(alnum)])
	}
	return b.String()
}

func (s *byteSource) fieldValue(max byte) string {
	var b strings.Builder
	b.WriteString([]string{"", " ", "\t", "  "}[s.next()%4])
	for range s.next() % max {
		c := s.next()
		if !isFieldByte(c) {
			c = 'v'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// chunkSize renders n in hex with random case, leading zeros, extensions
// or trailing whitespace.
func (s *byteSource) chunkSize(n int) string {
	hex := fmt.Sprintf("%x", n)
	if s.next()%2 == 0 {
		hex = strings.ToUpper(hex)
	}
	hex = strings.Repeat("0", int(s.next()%3)) + hex
	switch s.next() % 5 {
	case 0:
		return hex + ";" + s.word(5) + "=" + s.word(4)
	case 1:
		return hex + ";" + s.word(5) + ";q=\"a b\""
	case 2:
		return hex + " \t"
	}
	return hex
}

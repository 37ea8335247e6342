package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestStreamingReachesClientBeforeUpstreamFinishes has the backend wait,
// after its first chunk, until the client has received that chunk. A proxy
// that buffered the response would deadlock until the client timeout.
func TestStreamingReachesClientBeforeUpstreamFinishes(t *testing.T) {
	for _, tt := range []struct {
		name          string
		contentType   string
		contentLength string
	}{
		{"chunked", "text/plain", ""},
		{"event-stream with length", "text/event-stream", "13"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gotFirst := make(chan struct{})
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.contentLength != "" {
					w.Header().Set("Content-Length", tt.contentLength)
				}
				io.WriteString(w, "first\n")
				http.NewResponseController(w).Flush()
				select {
				case <-gotFirst:
				case <-time.After(testTimeout):
					return
				}
				io.WriteString(w, "second\n")
			}))
			t.Cleanup(backend.Close)
			h := newHarness(t, Config{})
			h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/s:80", serverAddr(backend)))
			res, err := h.client().Get(h.front.URL + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "first\n" {
				t.Fatalf("first chunk: %q, %v", line, err)
			}
			close(gotFirst)
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "second\n" {
				t.Fatalf("rest: %q, %v", rest, err)
			}
		})
	}
}

// gatedReader yields first, then blocks until gate closes, then yields
// rest. It proves an upload is streamed: the gate only opens once the
// backend has received first.
type gatedReader struct {
	first, rest io.Reader
	gate        <-chan struct{}
	opened      bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	n, err := g.first.Read(p)
	if n > 0 || !errors.Is(err, io.EOF) {
		return n, err
	}
	if !g.opened {
		select {
		case <-g.gate:
			g.opened = true
		case <-time.After(testTimeout):
			return 0, errors.New("upload was not streamed: backend never saw the first part")
		}
	}
	return g.rest.Read(p)
}

func TestLargeUploadIsStreamed(t *testing.T) {
	const firstPart, restPart = 1 << 20, 7 << 20
	gate := make(chan struct{})
	type result struct {
		n             int64
		contentLength int64
		err           error
	}
	results := make(chan result, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		var n int64
		var err error
		for {
			var k int
			k, err = r.Body.Read(buf)
			if n < firstPart && n+int64(k) >= firstPart {
				close(gate)
			}
			n += int64(k)
			if err != nil {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		results <- result{n, r.ContentLength, err}
	}))
	t.Cleanup(backend.Close)
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/up:80", serverAddr(backend)))
	body := &gatedReader{
		first: strings.NewReader(strings.Repeat("a", firstPart)),
		rest:  strings.NewReader(strings.Repeat("b", restPart)),
		gate:  gate,
	}
	req, err := http.NewRequest("PUT", h.front.URL+"/upload", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = firstPart + restPart
	res, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	select {
	case r := <-results:
		if r.err != nil || r.n != firstPart+restPart || r.contentLength != firstPart+restPart {
			t.Fatalf("backend read %d bytes (Content-Length %d), err %v", r.n, r.contentLength, r.err)
		}
	case <-time.After(testTimeout):
		t.Fatal("backend never finished")
	}
}

func TestTrailersRelayed(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	t.Cleanup(backend.Close)
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/t:80", serverAddr(backend)))
	req, _ := http.NewRequest("GET", h.front.URL+"/", nil)
	req.Header.Set("TE", "trailers")
	res, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "body" {
		t.Fatalf("body %q, %v", b, err)
	}
	if got := res.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("declared trailer = %q, want abc (trailers %v)", got, res.Trailer)
	}
	if got := res.Trailer.Get("X-Late"); got != "late" {
		t.Errorf("undeclared trailer = %q, want late (trailers %v)", got, res.Trailer)
	}
}

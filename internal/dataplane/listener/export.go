package listener

// This file exports the guard's parsing rules for the HTTP/1 fast path
// (package fastpath), so that both read requests by exactly the same rules:
// a head the guard would refuse is never served by the fast path, and a body
// is framed the same way by both.

// HeadInfo is the framing of a request head accepted by CheckHead.
type HeadInfo struct {
	// Length is the Content-Length body size, 0 when there is none.
	Length int64
	// Chunked is set for Transfer-Encoding: chunked (and then Length is 0).
	Chunked bool
	// Tunnel is set when the connection may switch protocols after this
	// request: an Upgrade to anything but h2c with Connection: upgrade, or
	// CONNECT.
	Tunnel bool
}

// CheckHead applies the guard's rules to a complete request head (request
// line, header lines and the blank line ending them). When ok is false the
// guard would refuse the head and reason is the Reject* constant it would
// report; see the package documentation for the rules.
func CheckHead(h []byte) (info HeadInfo, reason string, ok bool) {
	hi, ok := parseHead(h)
	if !ok {
		return HeadInfo{}, hi.refusal, false
	}
	return HeadInfo{Length: hi.length, Chunked: hi.chunked, Tunnel: hi.tunnel}, "", true
}

// ChunkPart tells what the bytes a ChunkedDecoder consumed were.
type ChunkPart uint8

const (
	// ChunkFraming is a chunk-size line (with any extension) or the CRLF
	// after chunk data.
	ChunkFraming ChunkPart = iota
	// ChunkData is chunk data.
	ChunkData
	// ChunkTrailer is the trailer section after the last chunk: trailer
	// fields and the final CRLF.
	ChunkTrailer
)

// ChunkedDecoder decodes a chunked body by the guard's rules (chunk sizes of
// 1 to 16 hex digits, CRLF line endings only, extensions without control
// bytes, trailers of tokens and field values, and net/http's limits on line
// length, trailer size and framing overhead). The zero value is ready to
// decode a body.
type ChunkedDecoder struct {
	t chunkTracker
}

// Decode consumes bytes from the front of b, all of one part: n bytes were
// consumed, part says what they were, and done is set when they completed
// the body (the final CRLF); the decoder is then ready for another body. A
// malformed body returns an error, with n counting the bytes before the one
// that failed. Decode returns n == 0 only for an empty b or an error.
func (d *ChunkedDecoder) Decode(b []byte) (n int, part ChunkPart, done bool, err error) {
	if len(b) == 0 {
		return 0, ChunkFraming, false, nil
	}
	t := &d.t
	if t.st == csData {
		k := uint64(len(b))
		if k > t.size {
			k = t.size
		}
		t.size -= k
		if t.size == 0 {
			t.st = csDataCR
		}
		return int(k), ChunkData, false, nil
	}
	part = partOf(t.st)
	// Framing bytes are few (a size line, a CRLF, a trailer section), so
	// they go through the tracker one at a time, which stops exactly where
	// the data or the trailer section starts.
	for n < len(b) && partOf(t.st) == part && t.st != csData {
		k, fin, err := t.advance(b[n : n+1])
		if err != nil {
			return n, part, false, err
		}
		n += k
		if fin {
			return n, part, true, nil
		}
	}
	return n, part, false, nil
}

func partOf(st chunkState) ChunkPart {
	switch st {
	case csData:
		return ChunkData
	case csTrailerStart, csTrailerName, csTrailerValue, csTrailerLF, csEndLF:
		return ChunkTrailer
	}
	return ChunkFraming
}

// The HTTP/1 syntax primitives the guard is built on, for the fast path's
// own parsers, so both judge bytes by one definition.

// IsTokenChar reports whether c is an RFC 9110 token character.
func IsTokenChar(c byte) bool { return isTchar(c) }

// IsFieldByte reports whether c may appear in a field value.
func IsFieldByte(c byte) bool { return isFieldByte(c) }

// EqualFoldLower compares b with lower, an ASCII lower-case constant,
// ignoring ASCII case.
func EqualFoldLower(b []byte, lower string) bool { return equalFoldLower(b, lower) }

// TrimOWS strips optional whitespace (SP and HTAB) from both ends of b.
func TrimOWS(b []byte) []byte { return trimOWS(b) }

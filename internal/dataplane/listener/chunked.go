package listener

import "errors"

// Limits mirroring net/http's chunked reader (net/http/internal/chunked.go
// and body.readTrailer), which reads through a 4 KiB bufio.Reader. The
// tracker must refuse at least everything net/http refuses: net/http can
// keep a connection open after a failed body read (with a full-duplex
// handler), and would then parse the rest of the body as the next request.
// The line limits sit a little under net/http's 4096 so that an off-by-one
// on either side cannot open a gap.
const (
	// maxChunkLine bounds a chunk-size line, CRLF included; net/http fails
	// with bufio.ErrBufferFull past its buffer size.
	maxChunkLine = 4000
	// maxTrailer bounds the trailer section, final CRLF included; net/http
	// refuses a trailer whose end it cannot peek within its buffer.
	maxTrailer = 4000
	// maxChunkExcess is net/http's limit on framing overhead beyond what
	// the data it carries justifies, against tiny-chunk floods.
	maxChunkExcess = 16 << 10
)

var (
	errChunkSize    = errors.New("malformed chunk size line")
	errChunkLine    = errors.New("chunk size line too long")
	errChunkData    = errors.New("chunk data not followed by CRLF")
	errChunkTrailer = errors.New("malformed chunked trailer")
	errChunkExcess  = errors.New("chunked encoding has too much framing overhead")
)

type chunkState uint8

const (
	csSize         chunkState = iota // hex digits of chunk-size
	csSizeOWS                        // whitespace after chunk-size
	csExt                            // chunk extensions after ';'
	csSizeLF                         // LF ending the chunk-size line
	csData                           // chunk data
	csDataCR                         // CR after chunk data
	csDataLF                         // LF after chunk data
	csTrailerStart                   // start of a trailer line, or the final CRLF
	csTrailerName                    // trailer field name
	csTrailerValue                   // trailer field value
	csTrailerLF                      // LF ending a trailer line
	csEndLF                          // LF of the final CRLF
)

// chunkTracker follows a chunked body byte by byte, skipping chunk data by
// count, to find where it ends. It accepts
//
//	chunk-size [ ";" ext | 1*OWS ] CRLF   (1 to 16 hex digits; ext without CTLs)
//	data CRLF                             (for a non-zero size)
//	*( field-name ":" field-value CRLF )  (trailers, after the zero-size chunk)
//	CRLF
//
// which is a subset of what net/http accepts, with the same boundaries.
type chunkTracker struct {
	st      chunkState
	digits  int
	size    uint64 // chunk-size being parsed, then data bytes left
	line    int    // bytes of the current chunk-size line so far
	excess  int64  // net/http's overhead accounting, reproduced exactly
	trailer int    // bytes of the trailer section so far
}

// advance consumes body bytes from b. It returns how many bytes it consumed
// and whether the body ended exactly there, or a framing error found at b[n]:
// the byte that fails is not counted, so it is never released. (A trailer
// refused at its final LF, say, must not reach net/http whole: net/http's
// limit is a little higher and it would accept the body.)
func (c *chunkTracker) advance(b []byte) (n int, done bool, err error) {
	n, done, err = c.scan(b)
	if err != nil {
		n--
	}
	return n, done, err
}

// scan is advance, except that on error n counts the failing byte b[n-1].
func (c *chunkTracker) scan(b []byte) (n int, done bool, err error) {
	for n < len(b) {
		if c.st == csData {
			k := uint64(len(b) - n)
			if k > c.size {
				k = c.size
			}
			n += int(k)
			if c.size -= k; c.size == 0 {
				c.st = csDataCR
			}
			continue
		}
		ch := b[n]
		n++
		switch c.st {
		case csSize, csSizeOWS, csExt, csSizeLF:
			if c.line++; c.line > maxChunkLine {
				return n, false, errChunkLine
			}
		case csTrailerStart, csTrailerName, csTrailerValue, csTrailerLF, csEndLF:
			if c.trailer++; c.trailer > maxTrailer {
				return n, false, errChunkTrailer
			}
		}
		switch c.st {
		case csSize:
			if v, ok := unhex(ch); ok {
				if c.digits == 16 {
					return n, false, errChunkSize
				}
				c.size = c.size<<4 | uint64(v)
				c.digits++
				continue
			}
			if c.digits == 0 {
				return n, false, errChunkSize
			}
			switch ch {
			case ';':
				c.st = csExt
			case ' ', '\t':
				c.st = csSizeOWS
			case '\r':
				c.st = csSizeLF
			default:
				return n, false, errChunkSize
			}
		case csSizeOWS:
			// net/http trims trailing whitespace before cutting at ';', so
			// "5 ;x" is an error there; only whitespace may follow.
			switch ch {
			case ' ', '\t':
			case '\r':
				c.st = csSizeLF
			default:
				return n, false, errChunkSize
			}
		case csExt:
			if ch == '\r' {
				c.st = csSizeLF
			} else if !isFieldByte(ch) {
				return n, false, errChunkSize
			}
		case csSizeLF:
			if ch != '\n' {
				return n, false, errChunkSize
			}
			// The same arithmetic as net/http's chunkedReader.beginChunk,
			// overflow included, so both refuse the same bodies.
			c.excess += int64(c.line)
			c.excess -= 16 + 2*int64(c.size)
			c.excess = max(c.excess, 0)
			if c.excess > maxChunkExcess {
				return n, false, errChunkExcess
			}
			c.line, c.digits = 0, 0
			if c.size == 0 {
				c.st = csTrailerStart
			} else {
				c.st = csData
			}
		case csDataCR:
			if ch != '\r' {
				return n, false, errChunkData
			}
			c.st = csDataLF
		case csDataLF:
			if ch != '\n' {
				return n, false, errChunkData
			}
			c.st = csSize
		case csTrailerStart:
			switch {
			case ch == '\r':
				c.st = csEndLF
			case isTchar(ch):
				c.st = csTrailerName
			default:
				// Includes obs-fold and a bare LF.
				return n, false, errChunkTrailer
			}
		case csTrailerName:
			if ch == ':' {
				c.st = csTrailerValue
			} else if !isTchar(ch) {
				return n, false, errChunkTrailer
			}
		case csTrailerValue:
			if ch == '\r' {
				c.st = csTrailerLF
			} else if !isFieldByte(ch) {
				return n, false, errChunkTrailer
			}
		case csTrailerLF:
			if ch != '\n' {
				return n, false, errChunkTrailer
			}
			c.st = csTrailerStart
		case csEndLF:
			if ch != '\n' {
				return n, false, errChunkTrailer
			}
			*c = chunkTracker{}
			return n, true, nil
		}
	}
	return n, false, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

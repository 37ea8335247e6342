package listener

import "bytes"

// frameMode is what the inspector expects next in the byte stream.
type frameMode uint8

const (
	modeHead    frameMode = iota // a request head
	modeLength                   // Content-Length body bytes
	modeChunked                  // a chunked body
	modeHold                     // bytes after a request that may switch protocols
)

// stopReason tells the guard why inspect stopped before the end of its input.
type stopReason uint8

const (
	stopEnd       stopReason = iota // all input consumed
	stopNeedHead                    // the rest is the start of an incomplete head
	stopHold                        // the rest follows a possible protocol switch
	stopReject                      // the rest starts a head that must be refused
	stopOversize                    // the rest starts a head over the size limit
	stopBodyError                   // the body is malformed; err says how
)

// inspector is the guard's framing state machine. It knows nothing of
// connections: it is fed bytes in stream order and says how many of them may
// go to net/http. Heads are checked whole; bodies are followed as they
// stream, so a body never needs buffering.
type inspector struct {
	// maxHead is the largest head accepted, blank line included.
	maxHead int

	mode  frameMode
	left  int64        // modeLength: body bytes still to come
	chunk chunkTracker // modeChunked
	err   error        // the body error behind stopBodyError
	// refusal is the Reject* reason behind stopReject.
	refusal string
	skip    int  // stray CR/LF bytes net/http discards before the next head
	post    bool // the last head was a POST
	tunnel  bool // the last head may switch protocols

	// lineStart and searched carry the search for the end of an incomplete
	// head across calls, relative to the head's first byte, so that a head
	// arriving in pieces is scanned once.
	lineStart, searched int

	// heads counts accepted heads; holdAfter is the count at which modeHold
	// began, and so which request must complete before inspection resumes.
	heads, holdAfter int64

	// pos is the stream offset of the next byte to inspect.
	pos int64
	// onHead and onBody, when set, are told the stream offsets where each
	// accepted head starts and each body ends. Tests use them to compare
	// the guard's framing with net/http's.
	onHead, onBody func(pos int64)
}

// inspect advances over b, which continues the stream where the last call
// stopped (an incomplete head is passed again from its first byte, with more
// bytes after it). It returns how many leading bytes of b are cleared for
// release and why it stopped if that is not all of them.
func (in *inspector) inspect(b []byte) (int, stopReason) {
	n, why := in.scan(b)
	in.pos += int64(n)
	return n, why
}

func (in *inspector) scan(b []byte) (int, stopReason) {
	i := 0
	for i < len(b) {
		switch in.mode {
		case modeHead:
			if in.skip > 0 {
				// net/http discards up to four CR or LF bytes after a POST,
				// for old clients that sent CRLF after the body.
				for in.skip > 0 && i < len(b) && (b[i] == '\r' || b[i] == '\n') {
					i++
					in.skip--
				}
				if i == len(b) {
					return i, stopEnd
				}
				in.skip = 0
			}
			h := b[i:]
			end := in.headEnd(h)
			if end < 0 {
				if len(h) > in.maxHead {
					return i, stopOversize
				}
				return i, stopNeedHead
			}
			if end > in.maxHead {
				return i, stopOversize
			}
			info, ok := parseHead(h[:end])
			if !ok {
				in.refusal = info.refusal
				return i, stopReject
			}
			if in.onHead != nil {
				in.onHead(in.pos + int64(i))
			}
			i += end
			in.heads++
			in.post, in.tunnel = info.post, info.tunnel
			switch {
			case info.chunked:
				in.mode = modeChunked
			case info.length > 0:
				in.mode, in.left = modeLength, info.length
			default:
				in.bodyDone(i)
			}
		case modeLength:
			k := min(int64(len(b)-i), in.left)
			i += int(k)
			if in.left -= k; in.left == 0 {
				in.bodyDone(i)
			}
		case modeChunked:
			k, done, err := in.chunk.advance(b[i:])
			i += k
			if err != nil {
				in.err = err
				return i, stopBodyError
			}
			if done {
				in.bodyDone(i)
			}
		case modeHold:
			return i, stopHold
		}
	}
	return i, stopEnd
}

// bodyDone moves on after a request's body, which ended at offset i of the
// current input: to the next head, or to holding the bytes after a request
// that may switch protocols.
func (in *inspector) bodyDone(i int) {
	if in.onBody != nil {
		in.onBody(in.pos + int64(i))
	}
	in.next()
}

func (in *inspector) next() {
	if in.tunnel {
		in.mode, in.holdAfter = modeHold, in.heads
		return
	}
	in.mode, in.skip = modeHead, 0
	if in.post {
		in.skip = 4
	}
}

// resume leaves modeHold once the request that might have switched protocols
// turned out not to: the held bytes are the next head.
func (in *inspector) resume() {
	in.tunnel = false
	in.next()
}

// headEnd returns the length of the head at the start of h through the
// empty line that ends it, or -1 if h does not hold all of it yet. Like
// net/http, a line ends with LF or CRLF.
func (in *inspector) headEnd(h []byte) int {
	for {
		j := bytes.IndexByte(h[in.searched:], '\n')
		if j < 0 {
			in.searched = len(h)
			return -1
		}
		lf := in.searched + j
		if n := lf - in.lineStart; n == 0 || (n == 1 && h[in.lineStart] == '\r') {
			in.lineStart, in.searched = 0, 0
			return lf + 1
		}
		in.lineStart, in.searched = lf+1, lf+1
	}
}

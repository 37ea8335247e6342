package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"sync/atomic"
)

// maxRequestIDLen bounds an accepted client X-Request-ID, so a client cannot
// make every log line and upstream header carry kilobytes of its choosing.
const maxRequestIDLen = 128

// validRequestID reports whether a client-supplied X-Request-ID is kept:
// 1 to 128 characters from [A-Za-z0-9._:+/=-], which covers UUIDs, hex, and
// base64, and excludes anything that could break a log line or header.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '+', c == '/', c == '=', c == '-':
		default:
			return false
		}
	}
	return true
}

// requestIDs generates 32-hex-character request IDs. Each ID is a 64-bit
// counter pushed through two bijective mixers keyed by per-process random
// seeds: the IDs of one process never repeat (the counter would have to wrap),
// those of different processes differ with overwhelming probability, and
// neighbouring requests get unrelated-looking IDs. This costs a few
// nanoseconds where crypto/rand would cost a system call or a lock; request
// IDs need uniqueness, not secrecy.
type requestIDs struct {
	seed0, seed1 uint64
	counter      atomic.Uint64
}

func (g *requestIDs) init() {
	var b [24]byte
	// crypto/rand.Read never fails on supported platforms (it panics
	// instead), so its error needs no handling.
	_, _ = rand.Read(b[:])
	g.seed0 = binary.LittleEndian.Uint64(b[0:])
	g.seed1 = binary.LittleEndian.Uint64(b[8:])
	g.counter.Store(binary.LittleEndian.Uint64(b[16:]))
}

// next returns a fresh ID. Its only allocation is the returned string.
func (g *requestIDs) next() string {
	var buf [32]byte
	g.fill(&buf)
	return string(buf[:])
}

// appendNext appends a fresh ID to b.
func (g *requestIDs) appendNext(b []byte) []byte {
	var buf [32]byte
	g.fill(&buf)
	return append(b, buf[:]...)
}

func (g *requestIDs) fill(buf *[32]byte) {
	n := g.counter.Add(1)
	putHex64(buf[:16], mix64(n^g.seed0))
	putHex64(buf[16:], mix64(n+g.seed1))
}

// mix64 is a bijection on 64-bit integers with good avalanche (the
// well-known SplitMix64 finaliser): distinct inputs give distinct outputs.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func putHex64(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		dst[i] = digits[v&15]
		v >>= 4
	}
}

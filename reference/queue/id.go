package queue

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// idAlphabet is the base32hex alphabet of RFC 4648 section 7. Its symbols
// are in ASCII order, so IDs sort as the numbers they encode.
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUV"

const (
	idLen    = 20 // 100 bits: 64 of Unix nanoseconds, 36 random
	maxIDLen = 64 // for IDs chosen by the caller of Put
)

// idGenerator makes IDs whose time part strictly increases within one
// process, so IDs from one generator are unique and sort in the order they
// were made even when the clock does not advance or steps back.
type idGenerator struct {
	mu   sync.Mutex
	last uint64
}

// next returns a new 20-character ID: the Unix time in nanoseconds as 64
// bits, then 36 random bits, in base32hex.
func (g *idGenerator) next() string {
	nanos := uint64(time.Now().UnixNano())
	g.mu.Lock()
	if nanos <= g.last {
		nanos = g.last + 1
	}
	g.last = nanos
	g.mu.Unlock()

	var b [8]byte
	rand.Read(b[:])
	random := binary.BigEndian.Uint64(b[:]) >> (64 - 36)

	// The first 12 symbols take the top 60 bits of the time. The last 8
	// take its low 4 bits followed by the 36 random bits.
	high := nanos >> 4
	low := (nanos&0xf)<<36 | random
	var id [idLen]byte
	for i := 11; i >= 0; i-- {
		id[i] = idAlphabet[high&31]
		high >>= 5
	}
	for i := idLen - 1; i >= 12; i-- {
		id[i] = idAlphabet[low&31]
		low >>= 5
	}
	return string(id[:])
}

// validID reports whether id can be used as a file name in msg/: 1 to
// maxIDLen letters, digits, '.', '_' or '-', not starting with '.'.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen || id[0] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

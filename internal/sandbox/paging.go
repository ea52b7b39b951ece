package sandbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/url"
	"strings"
	"time"
)

// dataQuery is an ordered, randomly addressable row sequence: days newest first (the API lists
// "in reverse chronological order"), then subscriptions in world order, then the rows of the
// (subscription, day). Ordinals count every row of that sequence; a $filter skips rows but not
// ordinals, so a continuation is just the ordinal to resume from.
type dataQuery struct {
	w        *world
	subs     []*subscription
	from, to time.Time // inclusive days, UTC midnight; empty when from > to
	metric   Metric
	perDay   int
	match    func(*row) bool // nil = every row
}

func (q *dataQuery) empty() bool { return q.from.IsZero() || q.from.After(q.to) || len(q.subs) == 0 }

// total is the number of rows without the filter.
func (q *dataQuery) total() int64 {
	if q.empty() {
		return 0
	}
	var n int64
	for d := q.to; !d.Before(q.from); d = d.AddDate(0, 0, -1) {
		for _, s := range q.subs {
			n += int64(q.w.rowsOn(s, d, q.metric, q.perDay))
		}
	}
	return n
}

// scan calls fn for each row from ordinal start on (matching rows only when the query has a
// filter), until fn returns false or the rows end.
func (q *dataQuery) scan(start int64, fn func(ord int64, r *row) bool) {
	if q.empty() {
		return
	}
	var r row
	var ord int64
	for d := q.to; !d.Before(q.from); d = d.AddDate(0, 0, -1) {
		for _, s := range q.subs {
			n := int64(q.w.rowsOn(s, d, q.metric, q.perDay))
			if ord+n <= start {
				ord += n
				continue
			}
			k := int64(0)
			if start > ord {
				k = start - ord
			}
			for ; k < n; k++ {
				q.w.genRow(&r, s, d, int(k), q.metric, q.perDay)
				if q.match != nil && !q.match(&r) {
					continue
				}
				if !fn(ord+k, &r) {
					return
				}
			}
			ord += n
		}
	}
}

// Skiptoken: 12 bytes (ordinal, page index) XORed with a keystream of the query id, followed by
// 16 bytes of HMAC-SHA256 over the id, the canonical query and those 12 bytes; upper-case hex.
// A token is only valid with the id and query it was issued for; anything rebuilt or edited
// fails with 400 "id query parameter is not a valid Guid", the error clients report for
// hand-built links.

const skiptokenVersion = "v1"

// pageCursor is the position a skiptoken carries.
type pageCursor struct {
	ord  int64
	page int
}

func (s *Server) keystream(id string) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write([]byte("keystream\x00" + id))
	return m.Sum(nil)[:12]
}

func (s *Server) tokenMAC(id, canon string, plain []byte) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(canon))
	m.Write([]byte{0})
	m.Write(plain)
	return m.Sum(nil)[:16]
}

func (s *Server) encodeToken(id, canon string, c pageCursor) string {
	var plain [12]byte
	binary.BigEndian.PutUint64(plain[:8], uint64(c.ord))
	binary.BigEndian.PutUint32(plain[8:], uint32(c.page))
	mac := s.tokenMAC(id, canon, plain[:])
	ks := s.keystream(id)
	var raw [28]byte
	for i := range plain {
		raw[i] = plain[i] ^ ks[i]
	}
	copy(raw[12:], mac)
	return strings.ToUpper(hex.EncodeToString(raw[:]))
}

func (s *Server) decodeToken(id, canon, tok string) (pageCursor, bool) {
	raw, err := hex.DecodeString(tok)
	if err != nil || len(raw) != 28 {
		return pageCursor{}, false
	}
	ks := s.keystream(id)
	var plain [12]byte
	for i := range plain {
		plain[i] = raw[i] ^ ks[i]
	}
	if !hmac.Equal(raw[12:], s.tokenMAC(id, canon, plain[:])) {
		return pageCursor{}, false
	}
	return pageCursor{ord: int64(binary.BigEndian.Uint64(plain[:8])), page: int(binary.BigEndian.Uint32(plain[8:]))}, true
}

// continuationParams are the query parameters the service adds to nextLink.
var continuationParams = map[string]bool{"$skiptoken": true, "skiptokenver": true, "id": true}

// canonicalQuery identifies a query for token signing: the lower-case path and the sorted
// parameters other than the continuation ones.
func canonicalQuery(path string, q url.Values) string {
	c := url.Values{}
	for k, v := range q {
		if !continuationParams[k] {
			c[k] = v
		}
	}
	return strings.ToLower(path) + "?" + c.Encode()
}

// stripContinuation removes the continuation parameters from a raw query, keeping the rest
// byte for byte.
func stripContinuation(raw string) string {
	var keep []string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, _, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil && continuationParams[uk] {
			continue
		}
		keep = append(keep, part)
	}
	return strings.Join(keep, "&")
}

// nextLink builds the absolute continuation URL: the original request (same host, path and
// query) plus $skiptoken, skiptokenver and id, as the real service does.
func (s *Server) nextLink(base, escapedPath, rawQuery, id, canon string, c pageCursor) string {
	q := stripContinuation(rawQuery)
	if q != "" {
		q += "&"
	}
	return base + escapedPath + "?" + q + "$skiptoken=" + s.encodeToken(id, canon, c) + "&skiptokenver=" + skiptokenVersion + "&id=" + id
}

// isGUID reports whether v is a GUID in 8-4-4-4-12 hex form.
func isGUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := v[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		isHex := '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
		if !isHex {
			return false
		}
	}
	return true
}

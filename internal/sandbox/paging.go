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
// (subscription, day). A row's position is (day, subscription index, row index); a $filter
// skips rows but not positions, so a continuation is just the position to resume from, and it
// stays valid when "today" (and so the first day of the sequence) moves between pages.
type dataQuery struct {
	w        *world
	subs     []*subscription
	from, to time.Time // inclusive days, UTC midnight; empty when from > to
	metric   Metric
	perDay   int
	match    func(*row) bool // nil = every row
}

// position addresses one row of a dataQuery; the zero value is the first row.
type position struct {
	day int64 // days since 1970-01-01 (0 = the query's last day)
	sub int   // index into dataQuery.subs
	k   int   // row index within (subscription, day)
}

func dayNumber(t time.Time) int64 { return t.Unix() / 86400 }

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

// scanFrom calls fn for each row from position p on (matching rows only when the query has a
// filter), until fn returns false or the rows end.
func (q *dataQuery) scanFrom(p position, fn func(p position, r *row) bool) {
	if q.empty() {
		return
	}
	start := q.to
	if p.day != 0 && p.day < dayNumber(q.to) {
		start = time.Unix(p.day*86400, 0).UTC()
	} else if p.day > dayNumber(q.to) {
		p = position{} // beyond the range (it shrank): start over at its newest day
	}
	var r row
	for d := start; !d.Before(q.from); d = d.AddDate(0, 0, -1) {
		dn := dayNumber(d)
		for si := p.sub; si < len(q.subs); si++ {
			s := q.subs[si]
			n := q.w.rowsOn(s, d, q.metric, q.perDay)
			for k := p.k; k < n; k++ {
				q.w.genRow(&r, s, d, k, q.metric, q.perDay)
				if q.match != nil && !q.match(&r) {
					continue
				}
				if !fn(position{day: dn, sub: si, k: k}, &r) {
					return
				}
			}
			p.k = 0
		}
		p.sub = 0
	}
}

// scan calls fn for each row from ordinal start on (ordinals count every row of the sequence,
// filter or not), until fn returns false or the rows end.
func (q *dataQuery) scan(start int64, fn func(ord int64, r *row) bool) {
	if q.empty() {
		return
	}
	var p position
	var ord int64
	found := false
	for d := q.to; !d.Before(q.from) && !found; d = d.AddDate(0, 0, -1) {
		for si, s := range q.subs {
			n := int64(q.w.rowsOn(s, d, q.metric, q.perDay))
			if ord+n > start {
				p, found = position{day: dayNumber(d), sub: si, k: int(start - ord)}, true
				ord = start
				break
			}
			ord += n
		}
	}
	if !found {
		return
	}
	// Ordinals of the rows after p: count rows (filtered ones included) as positions advance.
	last := p
	q.scanFrom(p, func(cur position, r *row) bool {
		ord += q.between(last, cur)
		last = cur
		return fn(ord, r)
	})
}

// between counts the rows from a (inclusive) to b (exclusive), a not after b in sequence order.
func (q *dataQuery) between(a, b position) int64 {
	if a == b {
		return 0
	}
	if a.day == b.day && a.sub == b.sub {
		return int64(b.k - a.k)
	}
	var n int64
	d := time.Unix(a.day*86400, 0).UTC()
	for {
		dn := dayNumber(d)
		for si := 0; si < len(q.subs); si++ {
			if dn == a.day && si < a.sub {
				continue
			}
			if dn == b.day && si == b.sub {
				n += int64(b.k)
				if dn == a.day && si == a.sub {
					n -= int64(a.k)
				}
				return n
			}
			c := int64(q.w.rowsOn(q.subs[si], d, q.metric, q.perDay))
			if dn == a.day && si == a.sub {
				c -= int64(a.k)
			}
			n += c
		}
		d = d.AddDate(0, 0, -1)
	}
}

// Skiptoken: 16 bytes (day, subscription index, row index, page index) XORed with a keystream of the query id, followed by
// 16 bytes of HMAC-SHA256 over the id, the canonical query and those 12 bytes; upper-case hex.
// A token is only valid with the id and query it was issued for; anything rebuilt or edited
// fails with 400 "id query parameter is not a valid Guid", the error clients report for
// hand-built links.

const skiptokenVersion = "v1"

// pageCursor is what a skiptoken carries: where the page starts and its index.
type pageCursor struct {
	pos  position
	page int
}

const tokenPlain = 16

func (s *Server) keystream(id string) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write([]byte("keystream\x00" + id))
	return m.Sum(nil)[:tokenPlain]
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
	var plain [tokenPlain]byte
	binary.BigEndian.PutUint32(plain[0:], uint32(c.pos.day))
	binary.BigEndian.PutUint32(plain[4:], uint32(c.pos.sub))
	binary.BigEndian.PutUint32(plain[8:], uint32(c.pos.k))
	binary.BigEndian.PutUint32(plain[12:], uint32(c.page))
	mac := s.tokenMAC(id, canon, plain[:])
	ks := s.keystream(id)
	var raw [tokenPlain + 16]byte
	for i := range plain {
		raw[i] = plain[i] ^ ks[i]
	}
	copy(raw[tokenPlain:], mac)
	return strings.ToUpper(hex.EncodeToString(raw[:]))
}

func (s *Server) decodeToken(id, canon, tok string) (pageCursor, bool) {
	raw, err := hex.DecodeString(tok)
	if err != nil || len(raw) != tokenPlain+16 {
		return pageCursor{}, false
	}
	ks := s.keystream(id)
	var plain [tokenPlain]byte
	for i := range plain {
		plain[i] = raw[i] ^ ks[i]
	}
	if !hmac.Equal(raw[tokenPlain:], s.tokenMAC(id, canon, plain[:])) {
		return pageCursor{}, false
	}
	u := func(i int) int { return int(binary.BigEndian.Uint32(plain[i:])) }
	return pageCursor{pos: position{day: int64(u(0)), sub: u(4), k: u(8)}, page: u(12)}, true
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

package consumption

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/usage-export/usage-export/internal/paging"
)

// MemberHandler is a paging.Handler that also takes each record's members as the page decoder
// validates them, so a caller that needs a few fields does not scan the record a second time.
// For each record, RecordMember is called for every top-level member and every member of the
// top-level "properties" object, in document order, with the name's text (escapes kept, no
// quotes) and the raw value, before Record is called with the whole record. A record that turns
// out to be invalid after some of its members were reported ends the listing with an error
// instead of a Record call. The slices are valid only during the call.
type MemberHandler interface {
	paging.Handler
	RecordMember(name, value []byte, inProperties bool)
}

// MemberFilter is a MemberHandler that needs only the members named in MemberNames (called once
// per page): the decoder may then leave out the others. It still reports every member so named,
// and may report some others.
type MemberFilter interface {
	MemberHandler
	MemberNames() []string
}

// nameFilter is a quick, conservative test of member names against a set: a bit per name length
// and first byte (modulo 64). It passes every name in the set, names of 64 bytes or more, and
// the few others that share a length and a first byte with one; the zero value passes all.
type nameFilter struct {
	on   bool
	bits [64]uint64
}

func newNameFilter(h paging.Handler) nameFilter {
	mf, ok := h.(MemberFilter)
	if !ok {
		return nameFilter{}
	}
	f := nameFilter{on: true}
	for _, n := range mf.MemberNames() {
		if len(n) == 0 || len(n) >= len(f.bits) {
			return nameFilter{} // not worth a filter
		}
		f.bits[len(n)] |= 1 << (n[0] & 63)
	}
	return f
}

// pass reports whether name may be in the set.
func (f *nameFilter) pass(name []byte) bool {
	return !f.on || len(name) >= len(f.bits) || len(name) > 0 && f.bits[len(name)]>>(name[0]&63)&1 != 0
}

// Top-level member names of a page (UsageDetailsListResult).
const (
	memberValue    = "value"
	memberNextLink = "nextLink"
)

// Page decoder sizes.
const (
	// pageBufferSize is the decoder's initial window on the body: many records at a time, so
	// the body is read in large slices. It grows only for a record larger than itself.
	pageBufferSize = 64 << 10
	// maxPooledBuffer: a window grown beyond this (for a huge record) is not kept for reuse.
	maxPooledBuffer = 1 << 20
	// maxDepth bounds nesting, as jsontext does.
	maxDepth = 10000
)

// parsers reuses page decoders and their windows across pages.
var parsers = sync.Pool{New: func() any { return &pageParser{buf: make([]byte, 0, pageBufferSize)} }}

// ParsePage reads one usageDetails page, {"value":[records…],"nextLink":"…"}, from r and calls
// h.Record(ctx, …) for each record as soon as it is decoded; it never holds more than one record
// (plus the read-ahead window). It accepts value and nextLink in either order, skips unknown
// members, treats a null value as empty and an absent, null or empty nextLink as the end. It
// returns the nextLink and the number of records delivered; on error, n records were already
// delivered. PageDone is not called (List does that).
//
// The page is validated as strict JSON (RFC 8259: grammar, escapes, UTF-8 including escaped
// surrogate pairs, nesting up to 10000 levels) in the same pass that finds each record's bytes
// (a record that straddles the end of the read window is not scanned again: the scan resumes
// where it stopped); duplicate member names are allowed (records are passed through byte for
// byte). So every record handed on is valid JSON text, and a page is accepted only if it is
// valid JSON.
func ParsePage(ctx context.Context, r io.Reader, h paging.Handler) (nextLink string, n int, err error) {
	p := parsers.Get().(*pageParser)
	p.reset(r)
	defer func() {
		p.reset(nil)
		if cap(p.buf) <= maxPooledBuffer {
			parsers.Put(p)
		}
	}()
	return p.page(ctx, h)
}

// ParsePageBytes is ParsePage over a page held whole in memory: the same decoder, scanning body
// in place, so each record handed to h is a slice of body (still valid only during the call, by
// the Handler contract).
func ParsePageBytes(ctx context.Context, body []byte, h paging.Handler) (nextLink string, n int, err error) {
	p := parsers.Get().(*pageParser)
	own := p.buf
	p.reset(nil)
	p.buf, p.eof = body[:len(body):len(body)], true // fill never reads or grows past the end
	defer func() {
		p.reset(nil)
		p.buf = own[:0]
		parsers.Put(p)
	}()
	return p.page(ctx, h)
}

// pageParser reads a page through a window on the body: buf[pos:] is read but not consumed.
// Every value is scanned from its first byte at pos; when the window ends inside it, the window
// is refilled (the value moved to the front) and the scan resumes where it stopped.
type pageParser struct {
	r    io.Reader
	buf  []byte
	pos  int
	base int64 // body offset of buf[0], for error messages
	eof  bool
	rerr error // read error other than io.EOF, returned again on every later read
	sc   valueScanner
}

func (p *pageParser) reset(r io.Reader) {
	p.r, p.buf, p.pos, p.base, p.eof, p.rerr = r, p.buf[:0], 0, 0, false, nil
}

// fill reads more of the body after the unconsumed bytes, moving them to the front of the
// window first and growing the window when they fill it. It returns io.EOF at the clean end of
// the body, or the reader's error.
func (p *pageParser) fill() error {
	if p.rerr != nil {
		return p.rerr
	}
	if p.eof {
		return io.EOF
	}
	if p.pos > 0 {
		n := copy(p.buf, p.buf[p.pos:])
		p.base += int64(p.pos)
		p.buf, p.pos = p.buf[:n], 0
	}
	if len(p.buf) == cap(p.buf) {
		grown := make([]byte, len(p.buf), 2*cap(p.buf))
		copy(grown, p.buf)
		p.buf = grown
	}
	for {
		n, err := p.r.Read(p.buf[len(p.buf):cap(p.buf)])
		p.buf = p.buf[:len(p.buf)+n]
		switch {
		case err == io.EOF:
			p.eof = true
		case err != nil:
			p.rerr = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			if p.eof {
				return io.EOF
			}
			return err
		}
	}
}

// peek skips whitespace and returns the next byte without consuming it.
func (p *pageParser) peek() (byte, error) {
	for {
		for p.pos < len(p.buf) {
			switch c := p.buf[p.pos]; c {
			case ' ', '\t', '\n', '\r':
				p.pos++
			default:
				return c, nil
			}
		}
		if err := p.fill(); err != nil {
			return 0, err
		}
	}
}

// value consumes the JSON value that starts at pos (peek first), nested in outer containers,
// and returns its bytes, valid until the next read. A body that ends inside it gives
// io.ErrUnexpectedEOF.
func (p *pageParser) value(outer int) ([]byte, error) {
	p.sc.begin(outer)
	for {
		end, err := p.sc.scan(p.buf[p.pos:])
		if err == nil {
			v := p.buf[p.pos : p.pos+end]
			p.pos += end
			return v, nil
		}
		if err != errShort {
			switch e := err.(type) {
			case *syntaxError:
				e.Offset += p.base + int64(p.pos)
			case *utf8Error:
				e.Offset += p.base + int64(p.pos)
			}
			return nil, err
		}
		if err := p.fill(); err != nil {
			return nil, eofIsUnexpected(err)
		}
	}
}

// syntax returns a syntax error for byte c at pos.
func (p *pageParser) syntax(c byte, where string) error {
	return &syntaxError{Char: c, Where: where, Offset: p.base + int64(p.pos)}
}

// wrongKind explains a value of the wrong kind; a value that is not even valid JSON gets its
// syntax error instead.
func (p *pageParser) wrongKind(c byte, want string, outer int) error {
	if _, err := p.value(outer); err != nil {
		return err
	}
	return fmt.Errorf("want %s, got %s", want, kindName(c))
}

func (p *pageParser) page(ctx context.Context, h paging.Handler) (nextLink string, n int, err error) {
	c, err := p.peek()
	if err != nil {
		return "", 0, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
	}
	if c != '{' {
		return "", 0, fmt.Errorf("reading page: %w", p.wrongKind(c, "a JSON object", 0))
	}
	p.pos++
	for first := true; ; first = false {
		c, err := p.peek()
		if err != nil {
			return "", n, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
		}
		if c == '}' {
			p.pos++
			break
		}
		if !first {
			if c != ',' {
				return "", n, fmt.Errorf("reading page: %w", p.syntax(c, "after object value (expecting ',' or '}')"))
			}
			p.pos++
			if c, err = p.peek(); err != nil {
				return "", n, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
			}
		}
		if c != '"' {
			return "", n, fmt.Errorf("reading page: %w", p.syntax(c, "where a member name is due"))
		}
		raw, err := p.value(1)
		if err != nil {
			return "", n, fmt.Errorf("reading page: %w", err)
		}
		name := unescapeString(raw)
		if c, err = p.peek(); err != nil {
			return "", n, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
		}
		if c != ':' {
			return "", n, fmt.Errorf("reading page: %w", p.syntax(c, "after object name (expecting ':')"))
		}
		p.pos++
		if c, err = p.peek(); err != nil {
			return "", n, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
		}
		switch name {
		case memberValue:
			if err := p.records(ctx, c, h, &n); err != nil {
				return "", n, err
			}
		case memberNextLink:
			switch c {
			case 'n', '"':
				raw, err := p.value(1)
				if err != nil {
					return "", n, fmt.Errorf("reading nextLink: %w", err)
				}
				nextLink = ""
				if c == '"' {
					nextLink = unescapeString(raw)
				}
			default:
				return "", n, fmt.Errorf("reading nextLink: %w", p.wrongKind(c, "a string", 1))
			}
		default:
			if _, err := p.value(1); err != nil {
				return "", n, fmt.Errorf("reading page member %q: %w", name, err)
			}
		}
	}
	if c, err := p.peek(); err != io.EOF {
		if err == nil {
			err = p.syntax(c, "after top-level value")
		}
		return "", n, fmt.Errorf("reading page: data after the page object: %w", err)
	}
	return nextLink, n, nil
}

// records streams the elements of the value array (or accepts null) into h; c is the first byte
// of the member's value.
func (p *pageParser) records(ctx context.Context, c byte, h paging.Handler, n *int) error {
	mh, _ := h.(MemberHandler)
	p.sc.names = newNameFilter(h)
	switch c {
	case 'n':
		if _, err := p.value(1); err != nil {
			return fmt.Errorf("reading value: %w", err)
		}
		return nil
	case '[':
		p.pos++
	default:
		return fmt.Errorf("reading value: %w", p.wrongKind(c, "an array", 1))
	}
	for first := true; ; first = false {
		c, err := p.peek()
		if err != nil {
			return fmt.Errorf("reading record %d: %w", *n, eofIsUnexpected(err))
		}
		if c == ']' {
			p.pos++
			return nil
		}
		if !first {
			if c != ',' {
				return fmt.Errorf("reading record %d: %w", *n, p.syntax(c, "after array element (expecting ',' or ']')"))
			}
			p.pos++
			if c, err = p.peek(); err != nil {
				return fmt.Errorf("reading record %d: %w", *n, eofIsUnexpected(err))
			}
		}
		if c != '{' {
			return fmt.Errorf("reading record %d: %w", *n, p.wrongKind(c, "a JSON object", 2))
		}
		p.sc.mh = mh
		raw, err := p.value(2)
		p.sc.mh = nil
		if err != nil {
			return fmt.Errorf("reading record %d: %w", *n, err)
		}
		if err := h.Record(ctx, raw); err != nil {
			return &handlerError{fmt.Errorf("handling record %d: %w", *n, err)}
		}
		*n++
	}
}

// handlerError marks an error returned by the Handler, so List can tell it from a broken body.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// eofIsUnexpected turns a bare io.EOF (the body ended where a token was due) into
// io.ErrUnexpectedEOF, so a truncated page never looks like a clean end.
func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// syntaxError is invalid JSON in a page.
type syntaxError struct {
	Char   byte
	Where  string
	Offset int64 // body offset of the byte
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid character %q %s at offset %d", e.Char, e.Where, e.Offset)
}

// utf8Error is a string with bytes that are not UTF-8 (or an unpaired escaped surrogate).
type utf8Error struct{ Offset int64 }

func (e *utf8Error) Error() string { return fmt.Sprintf("invalid UTF-8 at offset %d", e.Offset) }

// errShort means the bytes end inside the value; the scanner keeps its state for more bytes.
var errShort = errors.New("short value")

// kindName names a value by its first byte, for "want X, got Y" messages.
func kindName(c byte) string {
	switch c {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "number"
}

// Scanner modes: what the next token must be. A value is scanned token by token; at every
// token boundary its state is (position, mode, container stack), so a scan that runs out of
// bytes resumes at the start of the unfinished token once more bytes are there.
const (
	modeValue    uint8 = iota // a value
	modeArrStart              // ']' or a value, just after '['
	modeObjStart              // '}' or a name, just after '{'
	modeName                  // a name, after ',' in an object
	modeColon                 // ':' after a name
	modeAfter                 // ',' or the container's end, after a value
)

// valueScanner validates one JSON value whose first byte is at b[0] (no leading whitespace).
type valueScanner struct {
	i     int
	mode  uint8
	depth int      // containers open inside the value
	outer int      // containers open around the value (the page object, the value array)
	obj   bool     // the innermost open container is an object
	stack []uint64 // one bit per open container: 1 object, 0 array

	// Member reports (a record scanned for a MemberHandler): the name and value start of the
	// member being read at depth 1 (the record) and 2 (an object inside it), as offsets into the
	// value, which stay valid when the window moves.
	mh             MemberHandler
	names          nameFilter // the members mh wants
	nameLo, nameHi [3]int
	valLo          [3]int
	inProps        bool // the depth-2 object being read is the record's "properties"
}

// begin starts a value nested in outer containers.
func (s *valueScanner) begin(outer int) {
	s.i, s.mode, s.depth, s.outer, s.inProps = 0, modeValue, 0, outer, false
}

// report hands the member of the object at the current depth whose value ends at end to mh.
func (s *valueScanner) report(b []byte, end int) {
	d := s.depth
	if d == 2 && !s.inProps || !s.names.pass(b[s.nameLo[d]:s.nameHi[d]]) {
		return
	}
	s.mh.RecordMember(b[s.nameLo[d]:s.nameHi[d]], b[s.valLo[d]:end], d == 2)
}

// reports tells whether the value ending now is a member value to report.
func (s *valueScanner) reports() bool {
	return s.mh != nil && s.obj && (s.depth == 1 || s.depth == 2)
}

func (s *valueScanner) push(object bool) bool {
	if s.outer+s.depth >= maxDepth {
		return false
	}
	w, bit := s.depth/64, uint(s.depth%64)
	for len(s.stack) <= w {
		s.stack = append(s.stack, 0)
	}
	if object {
		s.stack[w] |= 1 << bit
	} else {
		s.stack[w] &^= 1 << bit
	}
	s.depth++
	s.obj = object
	return true
}

// pop closes the innermost container.
func (s *valueScanner) pop() {
	s.depth--
	if d := s.depth - 1; d >= 0 {
		s.obj = s.stack[d/64]&(1<<uint(d%64)) != 0
	}
}

// scan continues the value in b (the whole value so far, from its first byte). It returns the
// value's length once complete, errShort when b ends first, or a *syntaxError or *utf8Error
// whose offset is relative to b. Names, scalars, ':' and ',' are read in the loop (they are
// nearly every token); container ends, first elements and errors by punctuation.
func (s *valueScanner) scan(b []byte) (int, error) {
	i, mode := s.i, s.mode
	var err error
	for {
		if mode == modeAfter && s.depth == 0 {
			return i, nil
		}
		if i < len(b) && b[i] <= ' ' { // compact JSON has no whitespace between tokens: one test for the usual case
			i = skipWS(b, i)
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case mode == modeColon && c == ':':
			i, mode = i+1, modeValue
			continue
		case mode == modeAfter && c == ',':
			i, mode = i+1, modeValue
			if s.obj {
				mode = modeName
			}
			continue
		case mode != modeValue && mode != modeName:
			if i, mode, err = s.punctuation(b, i, mode); err != nil {
				return 0, err
			}
			continue
		}
		var j int
		if mode == modeName {
			if c != '"' {
				return 0, &syntaxError{c, "where a member name is due", int64(i)}
			}
			if j, err = scanString(b, i); err != nil {
				break
			}
			if s.mh != nil && s.depth <= 2 {
				s.nameLo[s.depth], s.nameHi[s.depth] = i+1, j-1
			}
			i, mode = j, modeColon
			continue
		}
		// modeValue: c starts a value.
		if s.reports() {
			s.valLo[s.depth] = i
		}
		switch c {
		case '"':
			j, err = scanString(b, i)
		case '{', '[':
			if i, mode, err = s.open(b, i); err != nil {
				return 0, err
			}
			continue
		case 't':
			j, err = scanLiteral(b, i, "true")
		case 'f':
			j, err = scanLiteral(b, i, "false")
		case 'n':
			j, err = scanLiteral(b, i, "null")
		default:
			j, err = scanNumber(b, i)
		}
		if err != nil {
			break
		}
		i, mode = j, modeAfter
		if s.reports() {
			s.report(b, i)
		}
	}
	if err != nil && err != errShort {
		return 0, err
	}
	// Out of bytes: resume at the start of the unfinished token.
	s.i, s.mode = i, mode
	return 0, errShort
}

// skipWS returns the index of the first byte at or after i that is not JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// punctuation reads the token due at b[i] in mode modeArrStart, modeObjStart, modeColon or
// modeAfter (':', ',' or a container's end, or a syntax error) and returns the index and mode
// after it. Just after '[' or '{' any other byte starts the first element: the mode turns to
// modeValue or modeName at the same index.
func (s *valueScanner) punctuation(b []byte, i int, mode uint8) (int, uint8, error) {
	c := b[i]
	switch mode {
	case modeArrStart, modeObjStart: // an empty container closes at once
		if c == ']' && mode == modeArrStart || c == '}' && mode == modeObjStart {
			return s.close(b, i), modeAfter, nil
		}
		if s.obj {
			return i, modeName, nil
		}
		return i, modeValue, nil
	case modeColon:
		if c != ':' {
			return 0, 0, &syntaxError{c, "after object name (expecting ':')", int64(i)}
		}
		return i + 1, modeValue, nil
	}
	// modeAfter
	switch obj := s.obj; {
	case c == ',' && obj:
		return i + 1, modeName, nil
	case c == ',':
		return i + 1, modeValue, nil
	case c == '}' && obj, c == ']' && !obj:
		return s.close(b, i), modeAfter, nil
	case obj:
		return 0, 0, &syntaxError{c, "after object value (expecting ',' or '}')", int64(i)}
	default:
		return 0, 0, &syntaxError{c, "after array element (expecting ',' or ']')", int64(i)}
	}
}

// close ends the innermost container at b[i] and returns the index after it.
func (s *valueScanner) close(b []byte, i int) int {
	s.pop()
	i++
	if s.reports() {
		s.report(b, i)
	}
	return i
}

// open opens the container whose '{' or '[' is at b[i].
func (s *valueScanner) open(b []byte, i int) (int, uint8, error) {
	c := b[i]
	if s.mh != nil && s.depth == 1 {
		s.inProps = c == '{' && string(b[s.nameLo[1]:s.nameHi[1]]) == "properties"
	}
	if !s.push(c == '{') {
		return 0, 0, &syntaxError{c, fmt.Sprintf("nested deeper than %d levels", maxDepth), int64(i)}
	}
	if c == '{' {
		return i + 1, modeObjStart, nil
	}
	return i + 1, modeArrStart, nil
}

// scanLiteral checks the literal lit (true, false, null) at b[i].
func scanLiteral(b []byte, i int, lit string) (int, error) {
	for k := 1; k < len(lit); k++ {
		if i+k >= len(b) {
			return 0, errShort
		}
		if b[i+k] != lit[k] {
			return 0, &syntaxError{b[i+k], "in literal " + lit + " (expecting '" + lit[k:k+1] + "')", int64(i + k)}
		}
	}
	return i + len(lit), nil
}

// scanNumber scans the number at b[i] (RFC 8259 grammar) and returns the index after it. A
// number that reaches the end of b may continue: errShort.
func scanNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
		if i >= len(b) {
			return 0, errShort
		}
		if b[i] < '0' || b[i] > '9' {
			return 0, &syntaxError{b[i], "in number (expecting a digit)", int64(i)}
		}
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, &syntaxError{c, "at start of value", int64(i)}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) {
			return 0, errShort
		}
		if b[i] < '0' || b[i] > '9' {
			return 0, &syntaxError{b[i], "in number (expecting a digit after '.')", int64(i)}
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) {
			return 0, errShort
		}
		if b[i] < '0' || b[i] > '9' {
			return 0, &syntaxError{b[i], "in number (expecting an exponent digit)", int64(i)}
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i >= len(b) {
		return 0, errShort
	}
	return i, nil
}

// SWAR constants: every byte 0x01, 0x80, '"', '\\', 0x20.
const (
	swarOnes      = 0x0101010101010101
	swarHighs     = 0x8080808080808080
	swarQuote     = swarOnes * '"'
	swarBackslash = swarOnes * '\\'
	swarSpace     = swarOnes * 0x20
)

// scanString validates the string at b[i] (on its '"') and returns the index after it. Plain
// bytes are checked eight at a time: a word with no quote, backslash, control byte or non-ASCII
// byte is skipped whole.
func scanString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		for j+8 <= len(b) {
			if t := special8(binary.LittleEndian.Uint64(b[j:])); t != 0 {
				j += bits.TrailingZeros64(t) / 8
				break
			}
			j += 8
		}
		if j >= len(b) {
			return 0, errShort
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c == '\\':
			k, err := scanEscape(b, j)
			if err != nil {
				return 0, err
			}
			j = k
		case c < 0x20:
			return 0, &syntaxError{c, "in string (control characters must be escaped)", int64(j)}
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				if !utf8.FullRune(b[j:]) {
					return 0, errShort
				}
				return 0, &utf8Error{int64(j)}
			}
			j += size
		}
	}
}

// special8 has the high bit set in the lowest byte of x that is a quote, a backslash, a control
// byte or non-ASCII, if there is one (bytes above it may be flagged too).
func special8(x uint64) uint64 {
	q, bs := x^swarQuote, x^swarBackslash
	return ((q-swarOnes)&^q | (bs-swarOnes)&^bs | (x-swarSpace)&^x | x) & swarHighs
}

// scanEscape validates the escape sequence at b[j] (on its '\') and returns the index after it.
// An escaped surrogate half must be followed by the escaped other half, as UTF-16 pairs them.
func scanEscape(b []byte, j int) (int, error) {
	if j+1 >= len(b) {
		return 0, errShort
	}
	switch b[j+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return j + 2, nil
	case 'u':
	default:
		return 0, &syntaxError{b[j+1], "in string escape code", int64(j + 1)}
	}
	r1, err := hex4(b, j+2)
	if err != nil {
		return 0, err
	}
	if !utf16.IsSurrogate(r1) {
		return j + 6, nil
	}
	k := j + 6
	for m, want := range []byte{'\\', 'u'} {
		if k+m >= len(b) {
			return 0, errShort
		}
		if b[k+m] != want {
			return 0, &utf8Error{int64(j)}
		}
	}
	r2, err := hex4(b, k+2)
	if err != nil {
		return 0, err
	}
	if utf16.DecodeRune(r1, r2) == utf8.RuneError {
		return 0, &utf8Error{int64(j)}
	}
	return k + 6, nil
}

// hex4 reads the four hex digits of a \u escape at b[i:i+4].
func hex4(b []byte, i int) (rune, error) {
	var r rune
	for k := i; k < i+4; k++ {
		if k >= len(b) {
			return 0, errShort
		}
		c := b[k]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, &syntaxError{c, "in \\u hexadecimal character escape", int64(k)}
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}

// unescaped is the byte a one-letter escape stands for.
func unescaped(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\', '/'
}

// unescapeString returns the text of a validated JSON string token (quotes included).
func unescapeString(tok []byte) string {
	s := tok[1 : len(tok)-1]
	k := 0
	for k < len(s) && s[k] != '\\' {
		k++
	}
	if k == len(s) {
		return string(s)
	}
	out := make([]byte, 0, len(s))
	out = append(out, s[:k]...)
	for i := k; i < len(s); {
		if s[i] != '\\' {
			out = append(out, s[i])
			i++
			continue
		}
		switch c := s[i+1]; c {
		case 'u':
			r, _ := hex4(s, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(s, i+2)
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, unescaped(c))
			i += 2
		}
	}
	return string(out)
}

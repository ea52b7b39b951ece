package consumption

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// The record fast path. Nearly every record of a page lies whole inside the decoder's window and
// is valid, so the decoder first tries fastScanner: a recursive-descent validator over the window
// as it is, with no resumable state and no error values, one function per grammar rule, so that
// the branch predictor learns the shape of the records. It accepts exactly what valueScanner
// accepts (RFC 8259, UTF-8, escapes and surrogate pairs) or gives up, without saying why, when
// the window ends inside the record, the record is invalid, or it nests deeper than
// fastMaxDepth. valueScanner then scans the record again from its first byte: it reads on
// across windows, and it is the one that explains an invalid record, so errors are exactly those
// of the slow path. Members the fast path has already reported are the first ones the slow path
// would report, in the same order, so the slow path skips that many: each member is reported
// once. TestFastScanAgrees holds the two together.

// fastMaxDepth bounds the fast path's recursion; deeper records take the slow path (which
// allows maxDepth).
const fastMaxDepth = 32

// fastScanner validates one record and reports its members to mh (nil: none) as valueScanner
// does: the record's members, and the members of its top-level "properties" object.
type fastScanner struct {
	mh       MemberHandler
	names    nameFilter // the members mh wants
	reported int        // members reported for the current record
}

// record scans the object at b[0] and returns its length, or -1 to leave it to the slow path.
func (f *fastScanner) record(b []byte) int {
	f.reported = 0
	if len(b) == 0 || b[0] != '{' {
		return -1
	}
	return f.object(b, 0, 1, false)
}

// skipWS returns the index of the first byte at or after i that is not JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// object scans the object whose '{' is at b[i], at nesting depth (the record is 1); props marks
// the record's top-level "properties" object. Offsets reported are relative to b, which starts
// at the record.
//
// object and array write out the same value dispatch and separator handling rather than share
// helpers: those run for every member of every record, and the calls (Go does not inline them)
// cost 15-20 % of the fast path (BenchmarkParsePageScanner, 800 pages, medians of 7 runs).
func (f *fastScanner) object(b []byte, i, depth int, props bool) int {
	mh := f.mh
	if depth != 1 && !props {
		mh = nil
	}
	i++
	if i < len(b) && b[i] <= ' ' {
		i = skipWS(b, i)
	}
	if i >= len(b) {
		return -1
	}
	if b[i] == '}' {
		return i + 1
	}
	for {
		if b[i] != '"' {
			return -1
		}
		nameLo := i + 1
		if i = fastString(b, i); i < 0 {
			return -1
		}
		nameHi := i - 1
		if i < len(b) && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i++
		if i < len(b) && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i >= len(b) {
			return -1
		}
		valLo := i
		switch c := b[i]; c {
		case '"':
			i = fastString(b, i)
		case '{':
			if depth >= fastMaxDepth {
				return -1
			}
			i = f.object(b, i, depth+1, depth == 1 && string(b[nameLo:nameHi]) == "properties")
		case '[':
			if depth >= fastMaxDepth {
				return -1
			}
			i = f.array(b, i, depth+1)
		default:
			i = fastScalar(b, i, c)
		}
		if i < 0 {
			return -1
		}
		if mh != nil && f.names.pass(b[nameLo:nameHi]) {
			mh.RecordMember(b[nameLo:nameHi], b[valLo:i], props)
			f.reported++
		}
		if i < len(b) && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i++
			if i < len(b) && b[i] <= ' ' {
				i = skipWS(b, i)
			}
			if i >= len(b) {
				return -1
			}
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// array scans the array whose '[' is at b[i].
func (f *fastScanner) array(b []byte, i, depth int) int {
	i++
	if i < len(b) && b[i] <= ' ' {
		i = skipWS(b, i)
	}
	if i >= len(b) {
		return -1
	}
	if b[i] == ']' {
		return i + 1
	}
	for {
		switch c := b[i]; c {
		case '"':
			i = fastString(b, i)
		case '{':
			if depth >= fastMaxDepth {
				return -1
			}
			i = f.object(b, i, depth+1, false)
		case '[':
			if depth >= fastMaxDepth {
				return -1
			}
			i = f.array(b, i, depth+1)
		default:
			i = fastScalar(b, i, c)
		}
		if i < 0 {
			return -1
		}
		if i < len(b) && b[i] <= ' ' {
			i = skipWS(b, i)
		}
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i++
			if i < len(b) && b[i] <= ' ' {
				i = skipWS(b, i)
			}
			if i >= len(b) {
				return -1
			}
		case ']':
			return i + 1
		default:
			return -1
		}
	}
}

// fastScalar scans the number or literal starting with c at b[i].
func fastScalar(b []byte, i int, c byte) int {
	switch c {
	case 't':
		return fastLiteral(b, i, "true")
	case 'f':
		return fastLiteral(b, i, "false")
	case 'n':
		return fastLiteral(b, i, "null")
	}
	j, err := scanNumber(b, i)
	if err != nil {
		return -1
	}
	return j
}

func fastLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// fastString scans the string at b[i] (on its '"') and returns the index after it, or -1.
// Eight bytes at a time as scanString, with one-letter escapes taken in the loop.
func fastString(b []byte, i int) int {
	j := i + 1
	for {
		for j+8 <= len(b) {
			if t := special8(binary.LittleEndian.Uint64(b[j:])); t != 0 {
				j += bits.TrailingZeros64(t) / 8
				goto special
			}
			j += 8
		}
		for j < len(b) && b[j] >= 0x20 && b[j] != '"' && b[j] != '\\' && b[j] < utf8.RuneSelf {
			j++
		}
		if j >= len(b) {
			return -1
		}
	special:
		switch c := b[j]; {
		case c == '"':
			return j + 1
		case c == '\\':
			if j+1 >= len(b) {
				return -1
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			default:
				k, err := scanEscape(b, j)
				if err != nil {
					return -1
				}
				j = k
			}
		case c < 0x20:
			return -1
		default: // non-ASCII
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				return -1
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

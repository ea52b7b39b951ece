// Package record reads the few fields the exporter needs from a raw usage record without decoding
// the rest.
package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// Fields are the extracted values, as the raw bytes of the JSON value (strings unquoted).
// Slices are reused by the next Extract call on the same Fields.
type Fields struct {
	Kind     []byte // "legacy", "modern", other, or empty when absent
	Date     []byte // usage date text: date (legacy/modern/CSV) or usageStart (2018-06-30)
	Currency []byte // billingCurrency, billingCurrencyCode or currency
	Cost     []byte // number text of cost, costInBillingCurrency or pretaxCost
	CostUSD  []byte // number text of costInUSD (modern), else empty
	// CostField names the field Cost came from.
	CostField string

	SubscriptionID []byte // subscriptionId / subscriptionGuid
	Department     []byte // departmentName (2018-06-30), invoiceSection (legacy EA: the department) or invoiceSectionName (EA Cost Details)
	Account        []byte // accountName (EA enrollment account)
	BillingProfile []byte // billingProfileId
	InvoiceSection []byte // invoiceSectionId (modern)
	InvoiceID      []byte // invoiceId (modern; empty until the period is invoiced)
}

// ErrNotObject is returned when the record is not a JSON object.
var ErrNotObject = errors.New("record is not a JSON object")

// Cost fields in the order of preference, per shape.
const (
	FieldCost                  = "cost"                  // legacy
	FieldCostInBillingCurrency = "costInBillingCurrency" // modern and Cost Details
	FieldPretaxCost            = "pretaxCost"            // 2018-06-30
	FieldCostInUSD             = "costInUSD"             // modern
)

// MemberNames are the names of the members Member uses (at the top level or in "properties"):
// a caller that scans records may hand Member only these. TestMemberNames holds the list to
// Member.
var MemberNames = []string{
	"kind", "properties",
	"date", "usageStart",
	"billingCurrency", "billingCurrencyCode", "currency",
	FieldCost, FieldCostInBillingCurrency, FieldPretaxCost, FieldCostInUSD,
	"subscriptionId", "subscriptionGuid",
	"departmentName", "invoiceSection", "invoiceSectionName",
	"accountName", "billingProfileId", "invoiceSectionId", "invoiceId",
}

// Reset empties f for the next record (Extract does it itself; Member callers do it first).
func (f *Fields) Reset() {
	f.Kind, f.Date, f.Currency = f.Kind[:0], f.Date[:0], f.Currency[:0]
	f.Cost, f.CostUSD, f.CostField = f.Cost[:0], f.CostUSD[:0], ""
	f.SubscriptionID, f.Department, f.Account = f.SubscriptionID[:0], f.Department[:0], f.Account[:0]
	f.BillingProfile, f.InvoiceSection, f.InvoiceID = f.BillingProfile[:0], f.InvoiceSection[:0], f.InvoiceID[:0]
}

// Extract reads the fields of raw into f. Unknown members are skipped; missing ones stay empty.
// It is Reset followed by Member for every top-level member of raw and every member of its
// top-level "properties" object, in document order.
//
// raw is expected to be valid JSON text, as consumption.ParsePage delivers it (it validates every
// record) and as the Cost Details converter writes it. Extract walks the record's structure in
// one pass without re-validating it: it checks the object syntax it walks (names, colons,
// commas, brackets, unterminated strings) and returns an error for a malformed record, but it
// does not check number grammar, escapes or UTF-8 inside values. It never panics.
func (f *Fields) Extract(raw []byte) error {
	f.Reset()
	s := scanner{b: raw}
	s.ws()
	if s.i >= len(s.b) {
		return fmt.Errorf("reading record: %w", io.ErrUnexpectedEOF)
	}
	if s.b[s.i] != '{' {
		return ErrNotObject
	}
	s.i++
	for first := true; ; first = false {
		key, ok, err := s.member(first)
		if err != nil {
			return fmt.Errorf("reading record member: %w", err)
		}
		if !ok {
			break
		}
		if string(key) == "properties" && s.b[s.i] == '{' {
			s.i++
			for pfirst := true; ; pfirst = false {
				pkey, ok, err := s.member(pfirst)
				if err != nil {
					return fmt.Errorf("reading properties: %w", err)
				}
				if !ok {
					break
				}
				v, err := s.value()
				if err != nil {
					return fmt.Errorf("reading %q: %w", pkey, err)
				}
				f.Member(pkey, v, true)
			}
			continue
		}
		v, err := s.value()
		if err != nil {
			return fmt.Errorf("reading %q: %w", key, err)
		}
		f.Member(key, v, false)
	}
	s.ws()
	if s.i < len(s.b) {
		return fmt.Errorf("reading record end: %w", errSyntax(s.b[s.i], "after the record"))
	}
	return nil
}

// Member applies one member of a record to f: a top-level member (inProperties false) or a
// member of the top-level "properties" object (inProperties true), its name's text without the
// quotes (escapes kept) and its raw JSON value. Members must come in document order (a later
// value replaces an earlier one, except that a legacy cost is never replaced); a top-level
// "properties" object is ignored, as its members come separately. It is how a caller that has
// already scanned the record (consumption.MemberHandler) fills f without a second pass.
func (f *Fields) Member(name, value []byte, inProperties bool) {
	if !inProperties {
		switch {
		case len(value) > 0 && value[0] == '{' && string(name) == "properties":
			return
		case string(name) == "kind":
			f.Kind = append(f.Kind, unquote(value)...)
			return
		}
		// Flat objects (Cost Details rows) carry the properties at the top level.
	}
	f.field(name, value)
}

// field keeps the value of the member named key if it is one of ours.
func (f *Fields) field(key, v []byte) {
	var dst *[]byte
	switch string(key) {
	case "date", "usageStart":
		dst = &f.Date
	case "billingCurrency", "billingCurrencyCode", "currency":
		dst = &f.Currency
	case FieldCost, FieldCostInBillingCurrency, FieldPretaxCost:
		if len(f.Cost) > 0 && f.CostField == FieldCost {
			break // legacy cost wins over anything else
		}
		f.CostField = costFieldName(key)
		f.Cost = f.Cost[:0]
		dst = &f.Cost
	case FieldCostInUSD:
		dst = &f.CostUSD
	case "subscriptionId", "subscriptionGuid":
		dst = &f.SubscriptionID
	case "departmentName", "invoiceSection", "invoiceSectionName":
		dst = &f.Department
	case "accountName":
		dst = &f.Account
	case "billingProfileId":
		dst = &f.BillingProfile
	case "invoiceSectionId":
		dst = &f.InvoiceSection
	case "invoiceId":
		dst = &f.InvoiceID
	}
	if dst == nil || len(v) == 0 || v[0] == 'n' { // not ours, or null
		return
	}
	*dst = append((*dst)[:0], unquote(v)...)
}

// costFieldName returns the constant naming key (without allocating a string per record).
func costFieldName(key []byte) string {
	switch string(key) {
	case FieldCost:
		return FieldCost
	case FieldCostInBillingCurrency:
		return FieldCostInBillingCurrency
	}
	return FieldPretaxCost
}

// scanner walks JSON text that is expected to be valid (see Extract). Every method leaves i on
// the first byte it has not consumed and checks bounds, so malformed input gives an error, never
// a panic.
type scanner struct {
	b []byte
	i int
}

// errSyntax describes an unexpected byte.
func errSyntax(c byte, where string) error {
	return fmt.Errorf("invalid character %q %s", c, where)
}

// ws skips whitespace.
func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// member moves to the next member of the object whose '{' (first) or previous value was just
// consumed. It returns the member's name (unquoted, escapes kept) with i on the first byte of
// its value, or ok false once the closing '}' is consumed.
func (s *scanner) member(first bool) (name []byte, ok bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, io.ErrUnexpectedEOF
	}
	switch c := s.b[s.i]; {
	case c == '}':
		s.i++
		return nil, false, nil
	case first:
	case c == ',':
		s.i++
		s.ws()
		if s.i >= len(s.b) {
			return nil, false, io.ErrUnexpectedEOF
		}
	default:
		return nil, false, errSyntax(c, "after an object member")
	}
	if c := s.b[s.i]; c != '"' {
		return nil, false, errSyntax(c, "where a member name is due")
	}
	name, err = s.str()
	if err != nil {
		return nil, false, err
	}
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, io.ErrUnexpectedEOF
	}
	if c := s.b[s.i]; c != ':' {
		return nil, false, errSyntax(c, "after a member name")
	}
	s.i++
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, io.ErrUnexpectedEOF
	}
	return name, true, nil
}

// str consumes the string starting at i (on its '"') and returns its content, escapes kept.
func (s *scanner) str() ([]byte, error) {
	start := s.i + 1
	j := start
	for {
		k := indexQuote(s.b[j:])
		if k < 0 {
			return nil, io.ErrUnexpectedEOF
		}
		j += k
		// The quote is escaped when an odd number of backslashes precedes it.
		n := 0
		for p := j - 1; p >= start && s.b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			s.i = j + 1
			return s.b[start:j], nil
		}
		j++
	}
}

// SWAR constants: every byte 0x01, every byte 0x80, every byte '"'.
const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
	swarQuote = swarOnes * '"'
)

// indexQuote returns the index of the first '"' in b, or -1. Most JSON strings are shorter than
// the call overhead of bytes.IndexByte pays for, so it tests eight bytes at a time in a
// register first (a zero byte of x^swarQuote is a quote; the lowest flagged byte is exact).
func indexQuote(b []byte) int {
	i := 0
	for ; i+8 <= len(b) && i < 64; i += 8 {
		y := binary.LittleEndian.Uint64(b[i:]) ^ swarQuote
		if t := (y - swarOnes) &^ y & swarHighs; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	if k := bytes.IndexByte(b[i:], '"'); k >= 0 {
		return i + k
	}
	return -1
}

// literal marks the bytes of numbers and of true, false and null.
var literal = [256]bool{
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'-': true, '+': true, '.': true, 'e': true, 'E': true,
	'a': true, 'f': true, 'l': true, 'n': true, 'r': true, 's': true, 't': true, 'u': true,
}

// skip consumes the value starting at i.
func (s *scanner) skip() error {
	if s.i >= len(s.b) {
		return io.ErrUnexpectedEOF
	}
	switch c := s.b[s.i]; c {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		s.i++
		for depth := 1; depth > 0; {
			if s.i >= len(s.b) {
				return io.ErrUnexpectedEOF
			}
			switch s.b[s.i] {
			case '"':
				if _, err := s.str(); err != nil {
					return err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
		}
		return nil
	default:
		j := s.i
		for j < len(s.b) && literal[s.b[j]] {
			j++
		}
		if j == s.i {
			return errSyntax(c, "where a value is due")
		}
		s.i = j
		return nil
	}
}

// value consumes the value starting at i and returns its raw bytes.
func (s *scanner) value() ([]byte, error) {
	start := s.i
	if err := s.skip(); err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

// unquote strips the quotes of a JSON string value. Escapes are left as they are: none of the
// fields read here (dates, codes, ids, numbers) contain escapes in practice, and the values are
// only compared and parsed as ASCII.
func unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// Day parses the usage day of a date field: RFC 3339 ("2019-04-09T00:00:00.0000000Z"),
// a bare date ("2019-04-09") or the US form Cost Details CSV files use ("04/09/2019").
func Day(date []byte) (time.Time, error) {
	switch {
	case len(date) >= 10 && date[4] == '-' && date[7] == '-':
		if t, ok := fastDay(date[0:4], date[5:7], date[8:10]); ok {
			return t, nil
		}
		return time.Parse(time.DateOnly, string(date[:10]))
	case len(date) >= 10 && date[2] == '/' && date[5] == '/':
		if t, ok := fastDay(date[6:10], date[0:2], date[3:5]); ok {
			return t, nil
		}
		return time.Parse("01/02/2006", string(date[:10]))
	}
	return time.Time{}, fmt.Errorf("unrecognised usage date %q", date)
}

// fastDay builds the UTC day from its digits without time.Parse (which costs a string and a
// layout walk per record). It reports false for anything time.Parse might treat otherwise
// (non-digits, a day the month does not have), which the caller then hands to time.Parse for
// its result or its error.
func fastDay(year, month, day []byte) (time.Time, bool) {
	num := func(b []byte) (int, bool) {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(year)
	m, ok2 := num(month)
	d, ok3 := num(day)
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(time.Month(m), y) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
}

// daysIn returns the number of days of month m in year y.
func daysIn(m time.Month, y int) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

package costdetails

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/klauspost/compress/gzip"
)

// byteOrderMark is the UTF-8 BOM some CSV writers (the published sample files among them) put
// before the first header.
const byteOrderMark = "\ufeff"

// HeaderKey returns the comparison key of a CSV header: without a UTF-8 byte order mark and
// surrounding spaces, the English name of a localised header "Localised name (EnglishName)"
// (cost-details-and-focus.md §3.2 #1: "Kategorie der Verbrauchseinheit (MeterCategory)"),
// lower-cased.
func HeaderKey(h string) string {
	h = strings.TrimSpace(strings.TrimPrefix(h, byteOrderMark))
	if strings.HasSuffix(h, ")") {
		if i := strings.LastIndex(h, "("); i > 0 {
			inner := strings.TrimSpace(h[i+1 : len(h)-1])
			if isIdentifier(inner) {
				h = inner
			}
		}
	}
	return strings.ToLower(h)
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// SchemaError is a CSV header set that no known schema version fits.
type SchemaError struct {
	Headers   []string // as written in the file
	Duplicate string   // a header that appears twice, if any
	Closest   string   // the schema version with the most columns present
	Missing   []string // its published headers the file lacks
}

// Error implements error.
func (e *SchemaError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown Cost Details header set (%d columns: %s)", len(e.Headers), strings.Join(e.Headers, ","))
	if e.Duplicate != "" {
		fmt.Fprintf(&b, "; header %s appears twice", e.Duplicate)
	}
	if e.Closest != "" {
		fmt.Fprintf(&b, "; closest schema %s lacks %s", e.Closest, strings.Join(e.Missing, ","))
	}
	return b.String()
}

// DetectSchema returns the schema version of a header line (see Schemas) and, for each header,
// the index of its column in that schema, or -1 for a header the schema does not have (kept in
// the costDetailsColumns member under its name as written). A header set that no schema fits
// is a *SchemaError; so is a header that appears twice.
func DetectSchema(headers []string) (*Schema, []int, error) {
	keys := make([]string, len(headers))
	seen := make(map[string]bool, len(headers))
	clean := make([]string, len(headers))
	for i, h := range headers {
		clean[i] = strings.TrimSpace(strings.TrimPrefix(h, byteOrderMark))
		keys[i] = HeaderKey(h)
		if seen[keys[i]] {
			return nil, nil, &SchemaError{Headers: clean, Duplicate: clean[i]}
		}
		seen[keys[i]] = true
	}
	var best *Schema
	var bestIdx []int
	bestOrdered := false
	closest, closestHave := "", -1
	var closestMissing []string
	for si := range Schemas {
		s := &Schemas[si]
		idx := make([]int, len(headers))
		for i := range idx {
			idx[i] = -1
		}
		var missing []string
		for ci, c := range s.Columns {
			at := slices.Index(keys, strings.ToLower(c.Header))
			for _, a := range c.Aliases {
				if at >= 0 {
					break
				}
				at = slices.Index(keys, strings.ToLower(a))
			}
			if at < 0 || idx[at] >= 0 {
				missing = append(missing, c.Header)
				continue
			}
			idx[at] = ci
		}
		if have := len(s.Columns) - len(missing); len(missing) > 0 {
			if have > closestHave {
				closest, closestHave, closestMissing = s.Name, have, missing
			}
			continue
		}
		ordered := true
		last := -1
		for _, ci := range idx {
			if ci >= 0 {
				ordered = ordered && ci > last
				last = ci
			}
		}
		if best == nil || len(s.Columns) > len(best.Columns) || (len(s.Columns) == len(best.Columns) && ordered && !bestOrdered) {
			best, bestIdx, bestOrdered = s, idx, ordered
		}
	}
	if best == nil {
		return nil, nil, &SchemaError{Headers: clean, Closest: closest, Missing: closestMissing}
	}
	return best, bestIdx, nil
}

// gzipMagic are the first two bytes of a gzip member (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// readBufferSize is the read buffer between the blob body and the CSV parser.
const readBufferSize = 64 << 10

// valueKind says how a cell is written.
type valueKind uint8

const (
	vString valueKind = iota
	vNumber
	vBool
	vDate7
	vDateZ
)

// member is one member of a line's object: a cell, or (legacy meterDetails) an object of cells.
type member struct {
	key  []byte // the quoted JSON name followed by ':'
	col  int    // the CSV column, or -1 for an object of sub
	kind valueKind
	sub  []member
}

// converter turns CSV rows into lines of the usageDetails shape. Its buffers are reused across
// rows and blobs; it is not safe for concurrent use.
type converter struct {
	schema *Schema
	head   []byte // {"kind":"…","tags":
	tags   int    // the Tags column, or -1
	props  []member
	extras []member // columns with no JSON counterpart, and unknown ones
	width  int      // cells per row
	obj    []byte   // the line being built
	br     *bufio.Reader
	gz     *gzip.Reader
}

// ConvertCSV reads one Cost Details CSV file from r — gzip-compressed or not, told by the gzip
// magic bytes — and calls emit with one line per data row, in the shape of a usageDetails record
// of the same agreement without its id, name, type and etag (docs/output-format.md):
//
//	{"kind":"legacy"|"modern","tags":{…},"properties":{…}[,"costDetailsColumns":{…}]}
//
// The schema version is detected from the header line (DetectSchema). Properties come in the
// API's order with its names; numbers are the cells' digits as written (never through a float);
// booleans are true/false; dates are ISO date-times in the API's form; additionalInfo is the
// JSON text as a string, as the API has it; Tags become the tags object. An empty number,
// boolean or date cell is null; a cell that is not a JSON number, a boolean or a date where one
// is expected stays a string, exactly as the file gives it. Invalid UTF-8 is replaced by
// U+FFFD. The line is valid only during the call.
//
// It returns the number of rows emitted; on error, that many were already emitted. A file with
// no bytes or only a header has no rows. An unknown header set is a *SchemaError; rows with a
// different number of cells than the header are an error (with the line number), as are
// malformed quotes. Memory is bounded by the longest row, never the file.
func ConvertCSV(r io.Reader, emit func(line []byte) error) (int, error) {
	var c converter
	return c.convert(r, emit)
}

func (c *converter) convert(r io.Reader, emit func(obj []byte) error) (int, error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(r, readBufferSize)
	} else {
		c.br.Reset(r)
	}
	var src io.Reader = c.br
	magic, err := c.br.Peek(len(gzipMagic))
	switch {
	case len(magic) == 0 && errors.Is(err, io.EOF):
		return 0, nil // an empty blob
	case err != nil && !errors.Is(err, io.EOF):
		return 0, fmt.Errorf("reading csv: %w", err)
	case bytes.Equal(magic, gzipMagic):
		if c.gz == nil {
			c.gz, err = gzip.NewReader(c.br)
		} else {
			err = c.gz.Reset(c.br)
		}
		if err != nil {
			return 0, fmt.Errorf("reading gzip csv: %w", err)
		}
		src = c.gz
	}

	cr := csv.NewReader(src)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading csv header: %w", err)
	}
	if err := c.setHeader(header); err != nil {
		return 0, err
	}
	n := 0
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading csv row %d: %w", n+1, err)
		}
		c.obj = c.appendLine(c.obj[:0], row)
		if err := emit(c.obj); err != nil {
			return n, err
		}
		n++
	}
}

func jsonKey(name string) []byte { return append(appendJSONString(nil, name), ':') }

// setHeader detects the schema and plans the members of a line.
func (c *converter) setHeader(header []string) error {
	if len(header) == 0 || (len(header) == 1 && strings.TrimSpace(strings.TrimPrefix(header[0], byteOrderMark)) == "") {
		return errors.New("reading csv header: no column names")
	}
	s, idx, err := DetectSchema(header)
	if err != nil {
		return fmt.Errorf("reading csv header: %w", err)
	}
	c.schema, c.width, c.tags = s, len(header), -1
	c.props, c.extras = c.props[:0], c.extras[:0]
	byProp := map[string]int{}
	for i, ci := range idx {
		if ci < 0 {
			name := strings.TrimSpace(strings.TrimPrefix(header[i], byteOrderMark))
			c.extras = append(c.extras, member{key: jsonKey(name), col: i})
			continue
		}
		col := s.Columns[ci]
		switch col.Property {
		case "":
			c.extras = append(c.extras, member{key: jsonKey(col.Header), col: i})
		case "tags":
			c.tags = i
		default:
			byProp[col.Property] = i
		}
	}
	props := legacyProperties
	if s.Kind == KindModern {
		props = modernProperties
	}
	for _, p := range props {
		if p == "meterDetails" {
			var sub []member
			for _, m := range meterDetailsMembers {
				if i, ok := byProp["meterDetails."+m]; ok {
					sub = append(sub, member{key: jsonKey(m), col: i})
				}
			}
			if len(sub) > 0 {
				c.props = append(c.props, member{key: jsonKey(p), col: -1, sub: sub})
			}
			continue
		}
		i, ok := byProp[p]
		kind := kindOf(p)
		if !ok {
			src, derived := derivedProperties[p]
			if i, ok = byProp[src]; !derived || !ok {
				continue
			}
		}
		c.props = append(c.props, member{key: jsonKey(p), col: i, kind: kind})
	}
	c.head = append(append(append(c.head[:0], `{"kind":`...), appendJSONString(nil, s.Kind)...), `,"tags":`...)
	return nil
}

func kindOf(prop string) valueKind {
	switch {
	case decimalProperties[prop]:
		return vNumber
	case booleanProperties[prop]:
		return vBool
	case date7Properties[prop]:
		return vDate7
	case dateZProperties[prop]:
		return vDateZ
	}
	return vString
}

// appendLine appends the line of one row.
func (c *converter) appendLine(b []byte, row []string) []byte {
	b = append(b, c.head...)
	var badTags string
	if c.tags >= 0 {
		var ok bool
		if b, ok = appendTags(b, row[c.tags]); !ok {
			badTags = row[c.tags]
		}
	} else {
		b = append(b, "{}"...)
	}
	b = append(b, `,"properties":`...)
	b = appendMembers(b, c.props, row)
	if len(c.extras) > 0 || badTags != "" {
		b = append(b, `,"`+ExtraColumnsMember+`":`...)
		b = appendMembers(b, c.extras, row)
		if badTags != "" {
			// A Tags cell that is not JSON members is kept as written, not lost.
			if len(c.extras) > 0 {
				b = append(b[:len(b)-1], ',')
			} else {
				b = b[:len(b)-1]
			}
			b = append(b, `"Tags":`...)
			b = appendJSONString(b, badTags)
			b = append(b, '}')
		}
	}
	return append(b, '}')
}

func appendMembers(b []byte, ms []member, row []string) []byte {
	b = append(b, '{')
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		m := &ms[i]
		b = append(b, m.key...)
		if m.col < 0 {
			b = appendMembers(b, m.sub, row)
			continue
		}
		b = appendCell(b, m.kind, row[m.col])
	}
	return append(b, '}')
}

func appendCell(b []byte, kind valueKind, cell string) []byte {
	switch kind {
	case vNumber:
		switch {
		case cell == "":
			return append(b, "null"...)
		case isJSONNumber(cell):
			return append(b, cell...)
		}
	case vBool:
		switch {
		case cell == "":
			return append(b, "null"...)
		case strings.EqualFold(cell, "true"):
			return append(b, "true"...)
		case strings.EqualFold(cell, "false"):
			return append(b, "false"...)
		}
	case vDate7, vDateZ:
		if cell == "" {
			return append(b, "null"...)
		}
		if d, ok := parseDay(cell); ok {
			b = append(b, '"')
			b = d.AppendFormat(b, time.DateOnly)
			if kind == vDate7 {
				b = append(b, "T00:00:00.0000000Z"...)
			} else {
				b = append(b, "T00:00:00Z"...)
			}
			return append(b, '"')
		}
	}
	return appendJSONString(b, cell)
}

// parseDay reads a date cell: MM/DD/YYYY (also M/D/YYYY), YYYY-MM-DD, or an ISO date-time at
// midnight UTC. Cost Details rows are daily.
func parseDay(s string) (time.Time, bool) {
	for _, layout := range []string{"01/02/2006", "1/2/2006", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.Equal(t.Truncate(24*time.Hour)) {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// appendTags appends the tags object of a Tags cell: the published form is JSON members without
// the outer braces (`"env": "prod","org": "trey"`); a cell with braces is taken as it is; an
// empty cell is {}. The object is compacted. ok is false (and {} appended) when the cell is not
// a JSON object then.
func appendTags(b []byte, cell string) ([]byte, bool) {
	t := strings.TrimSpace(cell)
	if t == "" {
		return append(b, "{}"...), true
	}
	start := len(b)
	if t[0] != '{' {
		b = append(b, '{')
		b = append(b, t...)
		b = append(b, '}')
	} else {
		b = append(b, t...)
	}
	v := jsontext.Value(b[start:])
	if err := v.Compact(); err != nil || v.Kind() != '{' {
		return append(b[:start], "{}"...), false
	}
	return append(b[:start], v...), true
}

// isJSONNumber reports whether s is a number in the JSON grammar (RFC 8259 §6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendJSONString appends s as a JSON string, as jsontext.AppendQuote writes it (RFC 8785's
// minimal escaping: '"', '\\' and control characters escaped, everything else as it is);
// invalid UTF-8 becomes U+FFFD, which is what its error reports, so the error is dropped.
func appendJSONString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}

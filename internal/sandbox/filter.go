package sandbox

import (
	"fmt"
	"strings"
	"time"
)

// The $filter subset of the usageDetails API: `term and term ...`, each term `field op 'value'`
// with op eq|lt|gt|le|ge (keywords case-insensitive). ne, or, not and parentheses are not
// supported (400), as documented.
//
// Fields (2019-10-01+): properties/usageStart, properties/usageEnd (dates, YYYY-MM-DD with an
// optional time part), properties/resourceGroup, properties/resourceName, properties/resourceId,
// properties/chargeType, properties/reservationId, properties/publisherType, tags ('key:value',
// eq only). 2018-06-30: properties/usageStart, properties/usageEnd, properties/resourceGroup,
// properties/instanceName, properties/instanceId, tags. String comparisons are
// case-insensitive.

// filter is a parsed $filter.
type filter struct {
	from, to time.Time // date bounds from usageStart/usageEnd terms (zero = none), inclusive
	preds    []func(r *row) bool
}

func (f *filter) match(r *row) bool {
	for _, p := range f.preds {
		if !p(r) {
			return false
		}
	}
	return true
}

type token struct {
	text   string
	quoted bool
}

func lexFilter(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case ' ', '\t':
			i++
		case '\'':
			text, j, err := lexQuoted(s, i)
			if err != nil {
				return nil, err
			}
			out = append(out, token{text: text, quoted: true})
			i = j
		case '(', ')':
			return nil, fmt.Errorf("parentheses are not supported")
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '\'' && s[j] != '(' && s[j] != ')' {
				j++
			}
			out = append(out, token{text: s[i:j]})
			i = j
		}
	}
	return out, nil
}

// lexQuoted reads the string literal whose opening quote is at s[i] (a doubled quote stands for
// one) and returns its text and the index after its closing quote.
func lexQuoted(s string, i int) (string, int, error) {
	var b strings.Builder
	for i++; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, fmt.Errorf("unterminated string literal")
}

// parseFilter parses expr for an api-version (flat = 2018-06-30).
func parseFilter(expr string, flat bool) (*filter, error) {
	toks, err := lexFilter(expr)
	if err != nil {
		return nil, err
	}
	f := &filter{}
	for i := 0; ; {
		if i+3 > len(toks) {
			return nil, fmt.Errorf("incomplete term at the end of the filter")
		}
		field, op, val := toks[i], strings.ToLower(toks[i+1].text), toks[i+2]
		if field.quoted || toks[i+1].quoted {
			return nil, fmt.Errorf("unexpected string literal")
		}
		switch op {
		case "eq", "lt", "gt", "le", "ge":
		case "ne":
			return nil, fmt.Errorf("the 'ne' operator is not supported")
		default:
			return nil, fmt.Errorf("unsupported operator %q", toks[i+1].text)
		}
		if !val.quoted {
			return nil, fmt.Errorf("value of %s must be a quoted string", field.text)
		}
		if err := f.addTerm(field.text, op, val.text, flat); err != nil {
			return nil, err
		}
		i += 3
		if i == len(toks) {
			break
		}
		switch strings.ToLower(toks[i].text) {
		case "and":
			i++
		case "or":
			return nil, fmt.Errorf("the 'or' operator is not supported")
		case "not":
			return nil, fmt.Errorf("the 'not' operator is not supported")
		default:
			return nil, fmt.Errorf("unexpected %q", toks[i].text)
		}
	}
	return f, nil
}

func parseFilterDate(v string) (time.Time, error) {
	d := v
	if len(d) > 10 && (d[10] == 'T' || d[10] == ' ') {
		d = d[:10]
	}
	t, err := time.Parse("2006-01-02", d)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid date %q: want YYYY-MM-DD", v)
	}
	return t, nil
}

func (f *filter) addTerm(field, op, val string, flat bool) error {
	name := strings.ToLower(field)
	switch name {
	case "properties/usagestart", "properties/usageend":
		return f.addDate(op, val)
	case "tags":
		return f.addTag(op, val)
	}
	get := fieldGetter(name, flat)
	if get == nil {
		return fmt.Errorf("filtering on %q is not supported", field)
	}
	want := strings.ToLower(val)
	f.preds = append(f.preds, func(r *row) bool {
		c := strings.Compare(strings.ToLower(get(r)), want)
		switch op {
		case "eq":
			return c == 0
		case "lt":
			return c < 0
		case "gt":
			return c > 0
		case "le":
			return c <= 0
		default:
			return c >= 0
		}
	})
	return nil
}

// addDate narrows the filter's date range by a usageStart or usageEnd term.
func (f *filter) addDate(op, val string) error {
	d, err := parseFilterDate(val)
	if err != nil {
		return err
	}
	lo, hi := d, d
	switch op {
	case "gt":
		lo = d.AddDate(0, 0, 1)
	case "lt":
		hi = d.AddDate(0, 0, -1)
	}
	if op != "le" && op != "lt" && (f.from.IsZero() || lo.After(f.from)) {
		f.from = lo
	}
	if op != "ge" && op != "gt" && (f.to.IsZero() || hi.Before(f.to)) {
		f.to = hi
	}
	return nil
}

// addTag adds a tags eq 'key:value' term: rows of a resource with that tag (both compared
// without case).
func (f *filter) addTag(op, val string) error {
	if op != "eq" {
		return fmt.Errorf("tags supports only eq")
	}
	k, v, ok := strings.Cut(val, ":")
	if !ok {
		return fmt.Errorf("tag filter value %q: want 'key:value'", val)
	}
	f.preds = append(f.preds, func(r *row) bool {
		if !r.hasResource() {
			return false
		}
		for _, kv := range r.res.tagPairs {
			if strings.EqualFold(kv[0], k) && strings.EqualFold(kv[1], v) {
				return true
			}
		}
		return false
	})
	return nil
}

// fieldGetter returns the value of a filterable field (lower-case name) of a row, in the names
// of the flat (2018-06-30) or the current schema; nil for a field that cannot be filtered on.
func fieldGetter(name string, flat bool) func(r *row) string {
	switch {
	case name == "properties/resourcegroup":
		return func(r *row) string { return resField(r, func(x *resource) string { return x.group }) }
	case !flat && name == "properties/resourcename", flat && name == "properties/instancename":
		return func(r *row) string { return resField(r, func(x *resource) string { return x.name }) }
	case !flat && name == "properties/resourceid", flat && name == "properties/instanceid":
		return func(r *row) string { return resField(r, func(x *resource) string { return x.id }) }
	case !flat && name == "properties/chargetype":
		return func(r *row) string { return r.chargeType() }
	case !flat && name == "properties/reservationid":
		return func(r *row) string {
			if r.reserved() {
				return r.sub.reservation.id
			}
			return ""
		}
	case !flat && name == "properties/publishertype":
		// azure | marketplace: every sandbox row is first-party Azure usage.
		return func(r *row) string { return "azure" }
	}
	return nil
}

func resField(r *row, get func(*resource) string) string {
	if !r.hasResource() {
		return ""
	}
	return get(r.res)
}

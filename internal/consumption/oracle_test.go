package consumption

// The page decoder's correctness against an independent JSON decoder as the oracle: the
// jsontext decoder (strict RFC 8259 and UTF-8, duplicate names allowed), which the decoder
// replaced, on the fixtures, sandbox pages of every shape, edge cases, truncations and fuzzed
// input; and the members a MemberHandler is told against a jsontext walk of each record.
// make test-faults fuzzes FuzzParsePageMatchesReference and FuzzParsePageMembers.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
	"github.com/usage-export/usage-export/internal/paging"
)

// parseResult is everything ParsePage tells its caller about an input.
type parseResult struct {
	next    string
	n       int
	records []string
	failed  bool
}

func (r parseResult) String() string {
	return fmt.Sprintf("next=%q n=%d failed=%v records=%q", r.next, r.n, r.failed, r.records)
}

func runParse(parse func(context.Context, io.Reader, paging.Handler) (string, int, error), r io.Reader) (parseResult, error) {
	var c collector
	next, n, err := parse(context.Background(), r, &c)
	res := parseResult{next: next, n: n, failed: err != nil}
	for _, rec := range c.records {
		res.records = append(res.records, string(rec))
	}
	return res, err
}

// TestParsePageMatchesReference holds the page decoder to the jsontext decoder it replaced:
// the same records, nextLink, count and success on the fuzz seed corpus (every fixture and its
// broken variants), sandbox pages, edge cases, and every truncation of a sandbox page, read
// whole and one byte at a time.
func TestParsePageMatchesReference(t *testing.T) {
	inputs := map[string][]byte{}
	for name, b := range corpusSeeds(t) {
		inputs[name] = b
	}
	for _, s := range benchdata.Shapes {
		page, err := benchdata.Page(s, 20)
		if err != nil {
			t.Fatal(err)
		}
		inputs["sandbox-"+string(s)] = page
	}
	for i, s := range parseEdgeCases {
		inputs[fmt.Sprintf("edge-%02d", i)] = []byte(s)
	}
	small, err := benchdata.Page(benchdata.Legacy2018, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range small {
		inputs[fmt.Sprintf("truncated-%05d", i)] = small[:i]
	}
	for name, in := range inputs {
		want, wantErr := runParse(referenceParsePage, bytes.NewReader(in))
		for _, one := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(in)
			if one {
				r = iotest.OneByteReader(r)
			}
			got, gotErr := runParse(ParsePage, r)
			if got.String() != want.String() {
				t.Errorf("%s (one byte reads %v):\n got %s (%v)\nwant %s (%v)", name, one, got, gotErr, want, wantErr)
			}
		}
	}
}

// FuzzParsePageMatchesReference: on any input, the page decoder and the jsontext decoder it
// replaced deliver the same records and nextLink and agree on success.
func FuzzParsePageMatchesReference(f *testing.F) {
	for _, b := range corpusSeeds(f) {
		f.Add(b)
	}
	for _, s := range parseEdgeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, wantErr := runParse(referenceParsePage, bytes.NewReader(in))
		got, gotErr := runParse(ParsePage, iotest.HalfReader(bytes.NewReader(in)))
		if got.String() != want.String() {
			t.Fatalf("%q:\n got %s (%v)\nwant %s (%v)", in, got, gotErr, want, wantErr)
		}
	})
}

var parseEdgeCases = []string{
	`{"value":[{"s":"\ud83d\ude00"}]}`,
	`{"value":[{"s":"\ud83d"}]}`,
	`{"value":[{"s":"\ude00\ud83d"}]}`,
	`{"value":[{"s":"\ud83d\u0041"}]}`,
	`{"value":[{"s":"\ud83dx"}]}`,
	`{"value":[{"s":"\u00e9\n\t\/\\\""}]}`,
	`{"value":[{"s":"\x"}]}`,
	`{"value":[{"s":"\u12G4"}]}`,
	"{\"value\":[{\"s\":\"a\tb\"}]}",
	"{\"value\":[{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]}",
	"{\"value\":[{\"s\":\"\xc3\"}]}",
	"{\"value\":[{\"s\":\"\xed\xa0\x80\"}]}",
	`{"value":[{"n":-0.5e-3,"m":1E+2,"z":0,"w":-0}]}`,
	`{"value":[{"n":-}]}`,
	`{"value":[{"n":1.}]}`,
	`{"value":[{"n":1e}]}`,
	`{"value":[{"n":.5}]}`,
	`{"value":[{"n":+1}]}`,
	`{"value":[{"n":00}]}`,
	`{"value":[{"t":true,"f":false,"z":null}]}`,
	`{"value":[{"t":tru}]}`,
	`{"value":[{"t":nul}]}`,
	`{"value":[{"a":[],"o":{},"x":[[],{}],"y":[1,[2,[3]]]}]}`,
	`{"value":[{"a":[1,]}]}`,
	`{"value":[{"a":{"b":1,}}]}`,
	`{"value":[{"a" 1}]}`,
	`{"value":[{1:2}]}`,
	`{"value":[{"a":1}{"b":2}]}`,
	`{"value":[{"a":1},]}`,
	`{"value":[,{"a":1}]}`,
	`{"value":[]  ,  "nextLink" : "x"  }  ` + "\n",
	`{"nextLink":"a","nextLink":null}`,
	`{"nextLink":"a\u0026b\ud83d\ude00"}`,
	`{"nextLink":{"a":1}}`,
	`{"nextLink":[}`,
	`{"value":{}}`,
	`{"value":"x"}`,
	`{"value":[{}],}`,
	`{"va\u006cue":[{"a":1}]}`,
	`{"value":[{"a":1}]}x`,
	`{"value":[{"a":1}]}` + "\x00",
	`   `,
	`"page"`,
	`42`,
	`[1]`,
	`{"value":[` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `]}`,
	`{"value":[{"a":` + strings.Repeat(`[`, 9998) + strings.Repeat(`]`, 9998) + `}]}`,
	`{"value":[{"a":` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `}]}`,
	`{"value":[{"a":` + strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000) + `}]}`,
}

// referenceParsePage is ParsePage as it was before the single-pass scanner: a jsontext decoder
// with duplicate names allowed and UTF-8 validated.
func referenceParsePage(ctx context.Context, r io.Reader, h paging.Handler) (nextLink string, n int, err error) {
	dec := jsontext.NewDecoder(r, jsontext.AllowDuplicateNames(true))
	tok, err := dec.ReadToken()
	if err != nil {
		return "", 0, eofIsUnexpected(err)
	}
	if tok.Kind() != '{' {
		return "", 0, fmt.Errorf("want a JSON object, got %s", tok.Kind())
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return "", n, eofIsUnexpected(err)
		}
		switch name := tok.String(); name {
		case memberValue:
			tok, err := dec.ReadToken()
			if err != nil {
				return "", n, eofIsUnexpected(err)
			}
			switch tok.Kind() {
			case 'n':
				continue
			case '[':
			default:
				return "", n, fmt.Errorf("want an array, got %s", tok.Kind())
			}
			for {
				kind := dec.PeekKind()
				if kind == ']' {
					break
				}
				raw, err := dec.ReadValue()
				if err != nil {
					return "", n, eofIsUnexpected(err)
				}
				if kind != '{' {
					return "", n, fmt.Errorf("want a JSON object, got %s", kind)
				}
				if err := h.Record(ctx, raw); err != nil {
					return "", n, err
				}
				n++
			}
			if _, err := dec.ReadToken(); err != nil {
				return "", n, eofIsUnexpected(err)
			}
		case memberNextLink:
			tok, err := dec.ReadToken()
			if err != nil {
				return "", n, eofIsUnexpected(err)
			}
			switch tok.Kind() {
			case 'n':
				nextLink = ""
			case '"':
				nextLink = tok.String()
			default:
				return "", n, fmt.Errorf("want a string, got %s", tok.Kind())
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return "", n, eofIsUnexpected(err)
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return "", n, eofIsUnexpected(err)
	}
	if tok, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("unexpected %s", tok.Kind())
		}
		return "", n, err
	}
	return nextLink, n, nil
}

// memberCollector records what a MemberHandler is told, one line per member, and closes each
// record's list when Record comes.
type memberCollector struct {
	cur     []string
	records [][]string
}

func (m *memberCollector) RecordMember(name, value []byte, inProperties bool) {
	m.cur = append(m.cur, fmt.Sprintf("%v %s=%s", inProperties, name, value))
}
func (m *memberCollector) Record(context.Context, []byte) error {
	m.records = append(m.records, m.cur)
	m.cur = nil
	return nil
}
func (m *memberCollector) PageDone(context.Context, paging.Page) error { return nil }

// referenceMembers lists a record's top-level members and the members of its top-level
// "properties" object, walked with jsontext, in the MemberHandler's form.
func referenceMembers(t *testing.T, raw []byte) []string {
	t.Helper()
	var out []string
	d := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true))
	if _, err := d.ReadToken(); err != nil {
		t.Fatal(err)
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		name = bytes.Clone(name) // the next read reuses the decoder's buffer
		if string(name) == `"properties"` && d.PeekKind() == '{' {
			d.ReadToken()
			for d.PeekKind() != '}' {
				pname, _ := d.ReadValue()
				pname = bytes.Clone(pname)
				v, err := d.ReadValue()
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("true %s=%s", pname[1:len(pname)-1], v))
			}
			d.ReadToken()
			out = append(out, fmt.Sprintf("false properties=%s", "{…}"))
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("false %s=%s", name[1:len(name)-1], v))
	}
	return out
}

// TestParsePageMembers checks the members a MemberHandler is given against a jsontext walk of
// each record: sandbox pages of every shape, read whole and one byte at a time (members then
// straddle refills of the window), and records with whitespace, nesting, escapes, duplicate and
// non-object "properties".
func TestParsePageMembers(t *testing.T) {
	var pages [][]byte
	for _, s := range benchdata.Shapes {
		page, err := benchdata.Page(s, 30)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page)
	}
	pages = append(pages, []byte(`{"value":[`+strings.Join([]string{
		`{}`,
		`{"a":1}`,
		"{ \"kind\" : \"legacy\" ,\n \"properties\" : { \"cost\" : 1.5 , \"tags\" : {\"x\":[1,{\"y\":null}]} , \"e\":[] , \"o\":{} } , \"z\" : true }",
		`{"properties":"flat","cost":2,"properties":{"date":"2024-01-01"},"properties":[{"cost":3}]}`,
		`{"tags":{"cost":"no"},"properties":{"na\"me":"v\\\"","\u0063ost":-0.0e+1}}`,
		`{"properties":{"properties":{"cost":9}},"x":{"properties":{"cost":8}}}`,
	}, ",")+`]}`))
	for i, page := range pages {
		for _, one := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(page)
			if one {
				r = iotest.OneByteReader(r)
			}
			var got memberCollector
			if _, n, err := ParsePage(context.Background(), r, &got); err != nil || n != len(got.records) {
				t.Fatalf("page %d: n %d, %d records, err %v", i, n, len(got.records), err)
			}
			var recs collector
			if _, _, err := ParsePage(context.Background(), bytes.NewReader(page), &recs); err != nil {
				t.Fatal(err)
			}
			for k, raw := range recs.records {
				want := referenceMembers(t, raw)
				// The properties object is reported too (after its members); show it as {…}.
				var g []string
				for _, m := range got.records[k] {
					if strings.HasPrefix(m, "false properties={") {
						m = "false properties={…}"
					}
					g = append(g, m)
				}
				if strings.Join(g, "\n") != strings.Join(want, "\n") {
					t.Errorf("page %d record %d (one byte reads %v):\n got %q\nwant %q", i, k, one, g, want)
				}
			}
		}
	}
}

// FuzzParsePageMembers: for any page the decoder accepts, the members it reports are those of a
// jsontext walk of each record it delivers.
func FuzzParsePageMembers(f *testing.F) {
	for _, b := range corpusSeeds(f) {
		f.Add(b)
	}
	for _, s := range parseEdgeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var got memberCollector
		_, n, err := ParsePage(context.Background(), iotest.HalfReader(bytes.NewReader(in)), &got)
		if err != nil {
			return
		}
		var recs collector
		if _, _, err := ParsePage(context.Background(), bytes.NewReader(in), &recs); err != nil || len(recs.records) != n || len(got.records) != n {
			t.Fatalf("second parse: %v, %d records, %d member lists, n %d", err, len(recs.records), len(got.records), n)
		}
		for k, raw := range recs.records {
			want := referenceMembers(t, raw)
			var g []string
			for _, m := range got.records[k] {
				if strings.HasPrefix(m, "false properties={") {
					m = "false properties={…}"
				}
				g = append(g, m)
			}
			if strings.Join(g, "\n") != strings.Join(want, "\n") {
				t.Fatalf("record %d %q:\n got %q\nwant %q", k, raw, g, want)
			}
		}
	})
}

// filterCollector is a memberCollector that asks only for some members.
type filterCollector struct {
	memberCollector
	names []string
}

func (f *filterCollector) MemberNames() []string { return f.names }

// TestMemberFilter: a MemberFilter gets, in order, every member the decoder would report whose
// name passes its filter, with pages read whole and one byte at a time (members then straddle
// refills of the window); every member it named is among them; the filter lets few others
// through.
func TestMemberFilter(t *testing.T) {
	names := []string{"kind", "properties", "date", "cost", "costInBillingCurrency", "billingCurrency", "subscriptionId"}
	var pages [][]byte
	for _, s := range benchdata.Shapes {
		page, err := benchdata.Page(s, 40)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page)
	}
	passed, total := 0, 0
	for i, page := range pages {
		var all memberCollector
		if _, _, err := ParsePage(context.Background(), bytes.NewReader(page), &all); err != nil {
			t.Fatal(err)
		}
		for _, one := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(page)
			if one {
				r = iotest.OneByteReader(r)
			}
			got := filterCollector{names: names}
			if _, _, err := ParsePage(context.Background(), r, &got); err != nil {
				t.Fatal(err)
			}
			f := newNameFilter(&got)
			for k, rec := range all.records {
				var want []string
				for _, m := range rec {
					name := strings.SplitN(strings.SplitN(m, " ", 2)[1], "=", 2)[0]
					if f.pass([]byte(name)) {
						want = append(want, m)
					} else if slices.Contains(names, name) {
						t.Fatalf("the filter rejects %q, which it was given", name)
					}
				}
				if !one {
					passed, total = passed+len(want), total+len(rec)
				}
				if fmt.Sprint(got.records[k]) != fmt.Sprint(want) {
					t.Errorf("page %d record %d (one byte reads %v):\n got %q\nwant %q", i, k, one, got.records[k], want)
				}
			}
		}
	}
	if passed*3 > total {
		t.Errorf("the filter let %d of %d members through", passed, total)
	}
}

func TestNameFilter(t *testing.T) {
	f := newNameFilter(&filterCollector{names: []string{"date", "cost", "billingCurrency"}})
	long := strings.Repeat("x", 64)
	for name, want := range map[string]bool{
		"date": true, "cost": true, "billingCurrency": true,
		"dxyz": true, "cxyz": true, // same length and first byte: let through
		"Date": false, "dat": false, "dates": false, "": false, "meterId": false, "billingCurrencyCode": false,
		long: true, // too long for the table: let through
	} {
		if got := f.pass([]byte(name)); got != want {
			t.Errorf("pass(%q) = %v, want %v", name, got, want)
		}
	}
	var none nameFilter // no MemberFilter: everything passes
	if !none.pass([]byte("anything")) || !none.pass(nil) {
		t.Errorf("the zero filter rejects names")
	}
	if f := newNameFilter(&filterCollector{names: []string{"date", long}}); f.on {
		t.Errorf("a name too long for the table should turn the filter off")
	}
}

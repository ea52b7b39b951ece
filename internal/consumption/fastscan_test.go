package consumption

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
)

// slowRecord runs the resumable scanner over b as the decoder does for a record (nested in the
// page and its value array) and returns the record's length, errShort, or the syntax error.
func slowRecord(b []byte, mh MemberHandler) (int, error) {
	var s valueScanner
	s.mh = mh
	s.begin(2)
	return s.scan(b)
}

// fastRecord runs the fast path over b.
func fastRecord(b []byte, mh MemberHandler) int {
	f := fastScanner{mh: mh}
	return f.record(b)
}

// agreement checks the fast path against the slow one on b: where the fast path accepts a
// record, the slow path accepts the same bytes with the same members; where the slow path
// rejects b or needs more of it, the fast path gives up.
func agreement(t *testing.T, name func() string, b []byte, members bool) {
	t.Helper()
	var fm, sm memberCollector
	var fh, sh MemberHandler
	if members {
		fh, sh = &fm, &sm
	}
	fn := fastRecord(b, fh)
	if len(b) == 0 || b[0] != '{' { // the decoder reports records that are not objects itself
		if fn > 0 {
			t.Fatalf("%s: fast path accepted %d bytes of a non-object: %q", name(), fn, b)
		}
		return
	}
	sn, serr := slowRecord(b, sh)
	switch {
	case fn > 0 && (serr != nil || sn != fn):
		t.Fatalf("%s: fast path accepted %d bytes, slow path %d (%v): %q", name(), fn, sn, serr, b)
	case fn > 0 && fmt.Sprint(fm.cur) != fmt.Sprint(sm.cur):
		t.Fatalf("%s: members\nfast %q\nslow %q", name(), fm.cur, sm.cur)
	case fn <= 0 && serr == nil && nesting(b[:sn]) <= fastMaxDepth:
		t.Fatalf("%s: fast path gave up on a record the slow path accepts (%d bytes): %q", name(), sn, b)
	}
}

// nesting returns the deepest nesting of containers in the valid JSON text b.
func nesting(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// TestFastScanAgrees holds the record fast path to the resumable scanner: every record of
// sandbox pages of each shape and of the published examples is taken by the fast path, with the
// same length and members as the slow path; and for every truncation of a record and every
// single-byte corruption of one (each position set to each byte that matters to the grammar),
// the fast path either agrees with the slow path or leaves the record to it.
func TestFastScanAgrees(t *testing.T) {
	var records [][]byte
	for _, s := range benchdata.Shapes {
		page, err := benchdata.Page(s, 20)
		if err != nil {
			t.Fatal(err)
		}
		var c collector
		if _, _, err := ParsePage(bytes.NewReader(page), &c); err != nil {
			t.Fatal(err)
		}
		records = append(records, c.records...)
	}
	for name, page := range corpusSeeds(t) {
		var c collector
		if _, _, err := ParsePage(bytes.NewReader(page), &c); err != nil {
			continue // the broken variants
		}
		for i, rec := range c.records {
			records = append(records, rec)
			if n := fastRecord(rec, nil); n != len(rec) && nesting(rec) <= fastMaxDepth {
				t.Errorf("%s record %d: fast path took %d of %d bytes", name, i, n, len(rec))
			}
		}
	}
	records = append(records,
		[]byte(`{}`), []byte(`{ "a" : [ 1 , -2.5e+3 , true , false , null , "x" , { } , [ ] ] }`),
		[]byte("{\n\t\"p\": \"\\u00e9\\ud83d\\ude00\\n\\\"\", \"q\": \"caf\u00e9 \U0001F600\"\r\n}"),
		[]byte(`{"properties":{"cost":1,"tags":{"a":{"b":[{"c":1}]}}},"properties":[],"properties":"x"}`),
	)
	for i, rec := range records {
		if n := fastRecord(rec, nil); n != len(rec) && nesting(rec) <= fastMaxDepth {
			t.Errorf("record %d: fast path took %d of %d bytes: %q", i, n, len(rec), rec)
		}
		agreement(t, func() string { return fmt.Sprintf("record %d", i) }, rec, true)
	}
	// Truncations and corruptions of a few records of each kind.
	specials := []byte{'"', '\\', '{', '}', '[', ']', ':', ',', ' ', '0', '-', '.', 'e', 't', 'n', 'u', 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xed, 0xff}
	for i := 0; i < len(records); i += 13 {
		rec := records[i]
		for k := range len(rec) {
			agreement(t, func() string { return fmt.Sprintf("record %d cut at %d", i, k) }, rec[:k], false)
		}
		if len(rec) > 3000 {
			continue
		}
		b := make([]byte, len(rec))
		for k := range len(rec) {
			for _, c := range specials {
				copy(b, rec)
				b[k] = c
				agreement(t, func() string { return fmt.Sprintf("record %d byte %d = %q", i, k, c) }, b, k%61 == 0)
			}
		}
	}
}

// FuzzFastScan: on any bytes, the fast path agrees with the resumable scanner or leaves the
// record to it.
func FuzzFastScan(f *testing.F) {
	f.Add([]byte(`{"kind":"legacy","properties":{"cost":1.5,"date":"2024-01-01"}}`))
	f.Add([]byte(`{"a":"\ud83d\ude00","b":[{"c":null}],"d":-0.0e+1}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		agreement(t, func() string { return "fuzz" }, in, true)
	})
}

// filterCollector is a memberCollector that asks only for some members.
type filterCollector struct {
	memberCollector
	names []string
}

func (f *filterCollector) MemberNames() []string { return f.names }

// TestMemberFilter: a MemberFilter gets, in order, every member the decoder would report whose
// name passes its filter, on both paths (pages read whole and one byte at a time); every member
// it named is among them; the filter lets few others through.
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
		if _, _, err := ParsePage(bytes.NewReader(page), &all); err != nil {
			t.Fatal(err)
		}
		for _, one := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(page)
			if one {
				r = iotest.OneByteReader(r)
			}
			got := filterCollector{names: names}
			if _, _, err := ParsePage(r, &got); err != nil {
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

package record_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
	"github.com/usage-export/usage-export/internal/record"
)

// members walks raw's top-level members and the members of its top-level "properties" object,
// calling fn with each, as a page decoder reports them.
func members(t *testing.T, raw []byte, fn func(name, value []byte, inProperties bool)) {
	t.Helper()
	d := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true))
	if _, err := d.ReadToken(); err != nil {
		t.Fatal(err)
	}
	for d.PeekKind() != '}' {
		tok, err := d.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		name := bytes.Clone(tok[1 : len(tok)-1])
		if string(name) == "properties" && d.PeekKind() == '{' {
			d.ReadToken()
			for d.PeekKind() != '}' {
				ptok, _ := d.ReadValue()
				pname := bytes.Clone(ptok[1 : len(ptok)-1])
				v, err := d.ReadValue()
				if err != nil {
					t.Fatal(err)
				}
				fn(pname, v, true)
			}
			d.ReadToken()
			fn(name, []byte("{}"), false)
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		fn(name, v, false)
	}
}

// TestMemberNames holds record.MemberNames to Member: handing Member only the members so named
// gives the same fields as handing it every member, for records of every shape (sandbox
// records, the published examples, flat Cost Details rows and records naming every field).
func TestMemberNames(t *testing.T) {
	var records [][]byte
	for _, s := range benchdata.Shapes {
		recs, err := benchdata.Records(s, 50)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, recs...)
	}
	records = append(records, fixtureRecords(t)...)
	for _, e := range extractEdgeCases {
		records = append(records, []byte(e))
	}
	var every []byte
	for i, n := range record.MemberNames {
		every = fmt.Appendf(every, `,"%s":"%d"`, n, i)
	}
	records = append(records,
		[]byte(`{"date":"04/09/2019","costInBillingCurrency":12.5,"billingCurrency":"EUR","meterId":null,"date ":"x","Date":"y"}`),
		[]byte(`{"kind":"legacy","properties":{`+string(every[1:])+`},"cost":"9"}`),
		[]byte(`{`+string(every[1:])+`}`),
	)
	if len(records) < 150 {
		t.Fatalf("only %d records", len(records))
	}
	for i, raw := range records {
		var all, named record.Fields
		members(t, raw, func(name, value []byte, in bool) {
			all.Member(name, value, in)
			if slices.Contains(record.MemberNames, string(name)) {
				named.Member(name, value, in)
			}
		})
		if fmt.Sprintf("%q", all) != fmt.Sprintf("%q", named) {
			t.Errorf("record %d: every member gives %q, the named ones %q\n%s", i, all, named, raw)
		}
	}
}

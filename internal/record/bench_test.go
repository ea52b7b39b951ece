package record_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
	"github.com/usage-export/usage-export/internal/record"
)

// BenchmarkExtractShapes extracts the fields of real-sized sandbox records of each shape (legacy
// and modern with additionalInfo, 2018-06-30). cpu-ns/record is the process CPU time per record,
// which a loaded machine disturbs less than ns/op. The reference case is the jsontext
// tokenizer Extract used before its one-pass scanner, kept to show the difference.
func BenchmarkExtractShapes(b *testing.B) {
	for _, s := range benchdata.Shapes {
		recs, err := benchdata.Records(s, benchdata.MaxRecords)
		if err != nil {
			b.Fatal(err)
		}
		for _, impl := range []string{"scanner", "jsontext-reference"} {
			b.Run(string(s)+"/"+impl, func(b *testing.B) {
				var f record.Fields
				extract := f.Extract
				if impl != "scanner" {
					extract = func(raw []byte) error { return referenceExtract(&f, raw) }
				}
				benchdata.LoopRecords(b, recs, func(rec []byte) error {
					if err := extract(rec); err != nil {
						return err
					}
					if len(f.Date) == 0 || len(f.Cost) == 0 {
						return errors.New("no date or cost")
					}
					return nil
				})
			})
		}
	}
}

// TestExtractMatchesReference holds the one-pass scanner to the jsontext-based implementation
// it replaced, on every shape the sandbox makes, the spec fixtures, and edge cases of valid JSON.
func TestExtractMatchesReference(t *testing.T) {
	var inputs [][]byte
	for _, s := range benchdata.Shapes {
		recs, err := benchdata.Records(s, 200)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, recs...)
	}
	inputs = append(inputs, fixtureRecords(t)...)
	for _, s := range extractEdgeCases {
		inputs = append(inputs, []byte(s))
	}
	for i, in := range inputs {
		if !json.Valid(in) {
			t.Fatalf("input %d is not valid JSON: %q", i, in)
		}
		got, gotErr := extractAll(in, false)
		want, wantErr := extractAll(in, true)
		if (gotErr != nil) != (wantErr != nil) || got != want {
			t.Errorf("input %d %.200q:\n got %s (err %v)\nwant %s (err %v)", i, in, got, gotErr, want, wantErr)
		}
	}
}

// FuzzExtractMatchesReference: on valid JSON the scanner agrees with the reference; on anything
// it never panics.
func FuzzExtractMatchesReference(f *testing.F) {
	for _, s := range extractEdgeCases {
		f.Add([]byte(s))
	}
	for _, r := range fixtureRecords(f) {
		f.Add(r)
	}
	f.Add([]byte(`{"a":1,}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, gotErr := extractAll(in, false)
		if !json.Valid(in) {
			return
		}
		want, wantErr := extractAll(in, true)
		if (gotErr != nil) != (wantErr != nil) || got != want {
			t.Fatalf("%q:\n got %s (err %v)\nwant %s (err %v)", in, got, gotErr, want, wantErr)
		}
	})
}

var extractEdgeCases = []string{
	`{}`,
	` { } `,
	`{"kind":"legacy","properties":{}}`,
	`{"kind":null,"properties":null,"date":"2024-01-02"}`,
	`{"properties":"x","cost":1}`,
	`{"properties":[1,{"cost":2}],"cost":3}`,
	`{"properties":{"cost":1,"costInBillingCurrency":2}}`,
	`{"properties":{"costInBillingCurrency":2,"cost":1,"pretaxCost":3}}`,
	`{"properties":{"cost":null,"pretaxCost":3}}`,
	`{"properties":{"date":"a\"b\\","billingCurrency":"U\\\"SD","x":"\\\\"}}`,
	`{"properties":{"date":{"nested":["]","}"]},"cost":-1.5e+10,"currency":true}}`,
	"{\n \"kind\" : \"modern\" ,\r\n\t\"properties\" : { \"costInUSD\" : 0.1 , \"subscriptionGuid\" : \"g\" } }",
	`{"tags":{"cost":"9","properties":{"cost":8}},"properties":{"tags":{"date":"x"},"date":"2024-02-03"}}`,
	`{"properties":{"date":"2024-01-01"},"properties":{"date":"2024-01-02"}}`,
	`{"kind":"a","kind":"b"}`,
	`{"invoiceSection":"s","invoiceSectionName":"n","departmentName":"d","accountName":"a","billingProfileId":"p","invoiceSectionId":"i"}`,
	`{"\u0063ost":1,"cost":2}`,
	`{"properties":{"additionalInfo":"{\"a\": \"}\"}","cost":0}}`,
}

// fixtureRecords returns the records of the spec examples in testdata.
func fixtureRecords(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	var out [][]byte
	for _, file := range files {
		for _, r := range record.SpecRecords(t, filepath.Base(file)) {
			out = append(out, r)
		}
	}
	return out
}

// extractAll renders every extracted field of in, by the scanner or the reference.
func extractAll(in []byte, reference bool) (string, error) {
	var f record.Fields
	var err error
	if reference {
		err = referenceExtract(&f, in)
	} else {
		err = f.Extract(in)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("kind=%q date=%q cur=%q cost=%q(%s) usd=%q sub=%q dept=%q acct=%q bp=%q is=%q",
		f.Kind, f.Date, f.Currency, f.Cost, f.CostField, f.CostUSD, f.SubscriptionID, f.Department,
		f.Account, f.BillingProfile, f.InvoiceSection), nil
}

// referenceExtract is Extract as it was before the one-pass scanner: a jsontext tokenizer over
// the record, feeding its members to Fields.Member (the same field rules).
func referenceExtract(f *record.Fields, raw []byte) error {
	*f = record.Fields{}
	d := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return record.ErrNotObject
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return err
		}
		key := []byte(string(refUnquote(name))) // the decoder reuses name's buffer
		if string(key) == "properties" && d.PeekKind() == '{' {
			if err := refProperties(f, d); err != nil {
				return err
			}
			continue
		}
		v, err := d.ReadValue()
		if err != nil {
			return err
		}
		f.Member(key, v, false)
	}
	if _, err := d.ReadToken(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// refProperties feeds the members of the top-level properties object to f.
func refProperties(f *record.Fields, d *jsontext.Decoder) error {
	if _, err := d.ReadToken(); err != nil {
		return err
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return err
		}
		key := []byte(string(refUnquote(name)))
		v, err := d.ReadValue()
		if err != nil {
			return err
		}
		f.Member(key, v, true)
	}
	_, err := d.ReadToken()
	return err
}

func refUnquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// TestDayMatchesTimeParse holds Day's digit fast path to time.Parse, which it used alone before:
// the same day or an error for every day number 0–32 of every month 0–13 of years around the
// leap rules, in both layouts, and for malformed digits.
func TestDayMatchesTimeParse(t *testing.T) {
	ref := func(date string) (time.Time, error) {
		switch {
		case len(date) >= 10 && date[4] == '-' && date[7] == '-':
			return time.Parse(time.DateOnly, date[:10])
		case len(date) >= 10 && date[2] == '/' && date[5] == '/':
			return time.Parse("01/02/2006", date[:10])
		}
		return time.Time{}, errors.New("unrecognised")
	}
	var inputs []string
	for _, y := range []int{1900, 1999, 2000, 2023, 2024, 2100, 2400} {
		for m := 0; m <= 13; m++ {
			for d := 0; d <= 32; d++ {
				inputs = append(inputs,
					fmt.Sprintf("%04d-%02d-%02dT00:00:00.0000000Z", y, m, d),
					fmt.Sprintf("%04d-%02d-%02d", y, m, d),
					fmt.Sprintf("%02d/%02d/%04d", m, d, y))
			}
		}
	}
	inputs = append(inputs, "2024-0a-01", "2024-01-3 ", "+024-01-01", "01/0x/2024", "2024-01-01T", "24-01-01", "")
	for _, in := range inputs {
		got, gotErr := record.Day([]byte(in))
		want, wantErr := ref(in)
		if (gotErr != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Errorf("Day(%q) = %v, %v; time.Parse gives %v, %v", in, got, gotErr, want, wantErr)
		}
	}
}

func BenchmarkDay(b *testing.B) {
	date := []byte("2026-10-07T00:00:00.0000000Z")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := record.Day(date); err != nil {
			b.Fatal(err)
		}
	}
}

package consumption

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzParsePage from the fixtures")

func TestParsePage(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantIDs  string
		wantNext string
		wantErr  string // "" = success
	}{
		{name: "value then nextLink", in: `{"value":[{"id":"a"},{"id":"b"}],"nextLink":"https://h/x?$skiptoken=1"}`, wantIDs: "a,b", wantNext: "https://h/x?$skiptoken=1"},
		{name: "nextLink then value", in: `{"nextLink":"https://h/x","value":[{"id":"a"}]}`, wantIDs: "a", wantNext: "https://h/x"},
		{name: "unknown members skipped", in: `{"odata.count":3,"value":[{"id":"a"}],"extra":{"value":[{"id":"no"}]},"more":[1,"x",null]}`, wantIDs: "a"},
		{name: "escaped nextLink", in: `{"value":[],"nextLink":"https://h/x?a=1\u0026b=%27"}`, wantNext: "https://h/x?a=1&b=%27"},
		{name: "null nextLink", in: `{"value":[{"id":"a"}],"nextLink":null}`, wantIDs: "a"},
		{name: "null value", in: `{"value":null}`},
		{name: "empty object", in: `{}`},
		{name: "whitespace everywhere", in: "\n { \"value\" :\t[ {\"id\":\"a\", \"x\" : 1} , {\"id\":\"b\"}\n] } \n", wantIDs: "a,b"},
		{name: "empty body", in: ``, wantErr: "unexpected EOF"},
		{name: "truncated in record", in: `{"value":[{"id":"a"},{"id":"b"`, wantIDs: "a", wantErr: "unexpected EOF"},
		{name: "truncated after value", in: `{"value":[{"id":"a"}]`, wantIDs: "a", wantErr: "unexpected EOF"},
		{name: "truncated nextLink", in: `{"value":[],"nextLink":"https://h`, wantErr: "unexpected EOF"},
		{name: "not an object", in: `[{"id":"a"}]`, wantErr: "want a JSON object"},
		{name: "HTML", in: `<html>The request is badly formed.</html>`, wantErr: "invalid character"},
		{name: "value not an array", in: `{"value":{"id":"a"}}`, wantErr: "want an array"},
		{name: "record not an object", in: `{"value":[{"id":"a"},42]}`, wantIDs: "a", wantErr: "want a JSON object"},
		{name: "nextLink not a string", in: `{"value":[],"nextLink":42}`, wantErr: "want a string"},
		{name: "trailing data", in: `{"value":[]} {}`, wantErr: "data after the page object"},
		{name: "invalid UTF-8 in a record", in: "{\"value\":[{\"id\":\"a\xff\"}]}", wantErr: "invalid UTF-8"},
		{name: "bad number", in: `{"value":[{"cost":01}]}`, wantErr: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte per Read proves nothing depends on how the body arrives.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				var got collector
				next, n, err := ParsePage(context.Background(), r, &got)
				if tt.wantErr == "" && err != nil {
					t.Fatalf("ParsePage: %v", err)
				}
				if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
					t.Fatalf("ParsePage err = %v, want it to mention %q", err, tt.wantErr)
				}
				wantN := 0
				if tt.wantIDs != "" {
					wantN = len(strings.Split(tt.wantIDs, ","))
				}
				if got := ids(&got); got != tt.wantIDs || n != wantN {
					t.Errorf("records %q (n=%d), want %q", got, n, tt.wantIDs)
				}
				if next != tt.wantNext {
					t.Errorf("nextLink = %q, want %q", next, tt.wantNext)
				}
			}
		})
	}
}

func TestParsePageRecordBytesAreExact(t *testing.T) {
	rec := "{ \"id\" : \"a\",\n  \"cost\": 0.000001980949998, \"n\": 1E+2, \"s\": \"\\u00e9\\/\" }"
	var got collector
	if _, _, err := ParsePage(context.Background(), strings.NewReader(`{"value":[ `+rec+` ]}`), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.records) != 1 || string(got.records[0]) != rec {
		t.Errorf("record = %q, want %q", got.records, rec)
	}
}

func TestParsePageHandlerError(t *testing.T) {
	h := &collector{failAfter: 1, recordErr: errStop}
	_, n, err := ParsePage(context.Background(), strings.NewReader(`{"value":[{"id":"a"},{"id":"b"},{"id":"c"}]}`), h)
	if !errors.Is(err, errStop) || n != 1 {
		t.Errorf("ParsePage = n %d, err %v; want 1 and errStop", n, err)
	}
}

// corpusSeeds returns the seed inputs of FuzzParsePage: every fixture's 200 body and broken
// variants of them.
func corpusSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{}
	var versions []string
	files := fixtureFiles(t)
	for v := range files {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		for _, path := range files[v] {
			body := loadFixture(t, path).Responses["200"].Body
			if len(body) == 0 {
				continue
			}
			seeds[v+"-"+strings.TrimSuffix(filepath.Base(path), ".json")] = body
		}
	}
	base := seeds["2024-08-01-UsageDetailsListByMCABillingAccount"]
	if base == nil {
		t.Fatal("base fixture missing")
	}
	cut := func(n int) []byte { return append([]byte(nil), base[:n]...) }
	i := bytes.Index(base, []byte("1.84763819095477"))
	seeds["broken-truncated-half"] = cut(len(base) / 2)
	seeds["broken-truncated-in-number"] = cut(i + 5)
	seeds["broken-truncated-before-end"] = cut(len(base) - 1)
	seeds["broken-trailing-garbage"] = append(cut(len(base)), "<html>"...)
	seeds["broken-invalid-utf8"] = bytes.Replace(cut(len(base)), []byte("Resource Name 1"), []byte("Resource \xff 1"), 1)
	seeds["broken-html"] = []byte("The request is badly formed.")
	seeds["broken-empty"] = []byte{}
	seeds["broken-null"] = []byte("null")
	seeds["broken-value-object"] = []byte(`{"value":{"id":"a"}}`)
	seeds["broken-value-numbers"] = []byte(`{"value":[1,2,3]}`)
	seeds["broken-nextlink-number"] = []byte(`{"value":[],"nextLink":1}`)
	seeds["broken-deep"] = []byte(`{"value":[` + strings.Repeat(`{"a":[`, 200) + strings.Repeat(`]}`, 200) + `]}`)
	seeds["broken-duplicate-value"] = []byte(`{"value":[{"id":"a"}],"value":[{"id":"b"}],"nextLink":"x","nextLink":null}`)
	seeds["edge-nextlink-first"] = []byte(`{"nextLink":"https://management.azure.com/x?$skiptoken=1%27+2&sessiontoken=21:3","value":[{"id":"a"}]}`)
	seeds["edge-bom"] = append([]byte("\xef\xbb\xbf"), base...)
	return seeds
}

// corpusFile renders one seed in the go fuzzing corpus format.
func corpusFile(b []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
}

// TestFuzzCorpus keeps testdata/fuzz/FuzzParsePage in step with the fixtures (go test -update
// rewrites it).
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParsePage")
	seeds := corpusSeeds(t)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), corpusFile(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range seeds {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("corpus file %s: %v (run go test -run TestFuzzCorpus -update)", name, err)
			continue
		}
		if !bytes.Equal(got, corpusFile(b)) {
			t.Errorf("corpus file %s is stale (run go test -run TestFuzzCorpus -update)", name)
		}
	}
}

// FuzzParsePage checks that ParsePage never panics, and that whatever it accepts is valid JSON
// whose records are the objects it handed out.
func FuzzParsePage(f *testing.F) {
	f.Add([]byte(`{"value":[{"id":"a"}],"nextLink":"https://h/x"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var got collector
		_, n, err := ParsePage(context.Background(), bytes.NewReader(in), &got)
		if n != len(got.records) {
			t.Fatalf("n = %d, but %d records were delivered", n, len(got.records))
		}
		for i, r := range got.records {
			if len(r) == 0 || r[0] != '{' || !json.Valid(r) {
				t.Fatalf("record %d is not a JSON object: %q", i, r)
			}
		}
		if err == nil && !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
	})
}

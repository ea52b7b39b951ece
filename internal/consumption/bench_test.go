package consumption

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
)

// BenchmarkListPages is the client side of a listing over loopback HTTP: the azcore pipeline,
// the streamed body and the page decoder, for pages of 1000 sandbox records of each shape. The
// in-process server only writes a prepared page, so cpu-ns/record is mostly the client's.
func BenchmarkListPages(b *testing.B) {
	const pagesPerList = 4
	for _, s := range benchdata.Shapes {
		b.Run(string(s), func(b *testing.B) {
			page, err := benchdata.Page(s, benchdata.MaxRecords)
			if err != nil {
				b.Fatal(err)
			}
			// The pages, each with the nextLink to the next index, are built once: the server
			// only writes them, so the allocations reported are the client's.
			bodies := make([][]byte, pagesPerList)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var i int
				fmt.Sscan(r.URL.Query().Get("i"), &i)
				w.Header().Set("Content-Type", "application/json")
				w.Write(bodies[i])
			}))
			for i := range bodies {
				link := `"nextLink":null`
				if i+1 < pagesPerList {
					link = fmt.Sprintf(`"nextLink":"%s/subscriptions/x/providers/Microsoft.Consumption/usageDetails?api-version=%s&i=%d"`, srv.URL, DefaultAPIVersion, i+1)
				}
				bodies[i] = nextLinkRE(page, link)
			}
			defer srv.Close()
			c, err := NewClient(mgmt.StaticToken(testToken), testOptions(srv.URL))
			if err != nil {
				b.Fatal(err)
			}
			var h countHandler
			b.SetBytes(int64(len(page)) * pagesPerList)
			b.ReportAllocs()
			cpu0 := benchdata.CPUTime()
			for b.Loop() {
				h.n = 0
				if err := c.List(context.Background(), Query{Scope: subScope}, &h); err != nil {
					b.Fatal(err)
				}
				if h.n != pagesPerList*benchdata.MaxRecords {
					b.Fatalf("got %d records, want %d", h.n, pagesPerList*benchdata.MaxRecords)
				}
			}
			b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N*pagesPerList*benchdata.MaxRecords), "cpu-ns/record")
		})
	}
}

// BenchmarkParsePageScanner compares the page decoder with the jsontext decoder it replaced,
// on a page of 1000 sandbox legacy records with additionalInfo.
func BenchmarkParsePageScanner(b *testing.B) {
	page, err := benchdata.Page(benchdata.Legacy, benchdata.MaxRecords)
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range []string{"scanner", "jsontext-reference"} {
		b.Run(impl, func(b *testing.B) {
			parse := ParsePage
			if impl != "scanner" {
				parse = referenceParsePage
			}
			r := bytes.NewReader(page)
			var h countHandler
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			cpu0 := benchdata.CPUTime()
			for b.Loop() {
				r.Reset(page)
				h.n = 0
				if _, _, err := parse(context.Background(), r, &h); err != nil {
					b.Fatal(err)
				}
				if h.n != benchdata.MaxRecords {
					b.Fatalf("got %d records, want %d", h.n, benchdata.MaxRecords)
				}
			}
			b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N*benchdata.MaxRecords), "cpu-ns/record")
		})
	}
}

// nextLinkRE replaces the page's nextLink member (the sandbox puts it last) with link.
func nextLinkRE(page []byte, link string) []byte {
	i := bytes.LastIndex(page, []byte(`"nextLink":`))
	if i < 0 {
		return append(append(page[:len(page)-1:len(page)-1], ','), link+"}"...)
	}
	return append(append(page[:i:i], link...), '}')
}

// benchPage builds a page of n legacy records, each the first record of the 2024-08-01 list
// example with a modern example's additionalInfo added, compact (as the API sends it) or
// indented.
func benchPage(b *testing.B, n int, indent bool) []byte {
	b.Helper()
	load := func(name string) map[string]any {
		body := loadFixture(b, filepath.Join("testdata", "fixtures", "2024-08-01", name)).Responses["200"].Body
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		var v struct{ Value []map[string]any }
		if err := d.Decode(&v); err != nil {
			b.Fatal(err)
		}
		return v.Value[0]
	}
	rec := load("UsageDetailsList.json")
	modern := load("UsageDetailsListByMCABillingAccount.json")
	rec["properties"].(map[string]any)["additionalInfo"] = modern["properties"].(map[string]any)["additionalInfo"]
	raw, err := json.Marshal(rec)
	if err != nil {
		b.Fatal(err)
	}
	var page bytes.Buffer
	page.WriteString(`{"value":[`)
	for i := range n {
		if i > 0 {
			page.WriteByte(',')
		}
		page.Write(raw)
	}
	page.WriteString(`],"nextLink":"https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&$skiptoken=AAAA&skiptokenver=v1&id=98fce233-0000-0000-0000-000000000000"}`)
	if !indent {
		return page.Bytes()
	}
	var out bytes.Buffer
	if err := json.Indent(&out, page.Bytes(), "", "  "); err != nil {
		b.Fatal(err)
	}
	return out.Bytes()
}

// countHandler counts records and bytes and keeps nothing.
type countHandler struct{ n, bytes int }

func (c *countHandler) Record(_ context.Context, raw []byte) error {
	c.n++
	c.bytes += len(raw)
	return nil
}
func (c *countHandler) PageDone(context.Context, paging.Page) error { return nil }

func BenchmarkParsePage(b *testing.B) {
	const records = 1000
	for _, indent := range []bool{false, true} {
		b.Run(fmt.Sprintf("indent=%v", indent), func(b *testing.B) {
			page := benchPage(b, records, indent)
			r := bytes.NewReader(page)
			var h countHandler
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r.Reset(page)
				h.n = 0
				if _, _, err := ParsePage(context.Background(), r, &h); err != nil {
					b.Fatal(err)
				}
				if h.n != records {
					b.Fatalf("got %d records, want %d", h.n, records)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
		})
	}
}

package export

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/testutil"
)

// update rewrites the golden files (go test ./internal/export -run TestGolden -update).
var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// goldenSource serves a fixed month: two legacy records a day, a modern record on the 10th and
// a pretty-printed (multi-line) record on the 20th, which the line encoder compacts.
type goldenSource struct{}

func (goldenSource) Name() manifest.Source { return manifest.SourceUsageDetails }
func (goldenSource) APIVersion() string    { return "2024-08-01" }

func (goldenSource) Fetch(ctx context.Context, c Chunk, h paging.Handler) error {
	n := 0
	for d := c.From; !d.After(c.To); d = d.AddDate(0, 0, 1) {
		recs := []string{fakeRecord(d, 1), fakeRecord(d, 2)}
		switch d.Day() {
		case 10:
			recs = append(recs, `{"id":"/x/modern-10","name":"modern-10","type":"Microsoft.Consumption/usageDetails","kind":"modern",`+
				`"properties":{"date":"2024-02-10T00:00:00.0000000Z","costInBillingCurrency":12.5,"costInUSD":13.75,"billingCurrency":"EUR",`+
				`"subscriptionGuid":"sub-m","invoiceId":"","billingProfileId":"bp-1"}}`)
		case 20:
			recs = append(recs, "{\r\n  \"id\": \"/x/pretty-20\",\n  \"name\": \"pretty-20\",\n  \"kind\": \"legacy\",\n"+
				"  \"properties\": {\n    \"date\": \"2024-02-20T00:00:00.0000000Z\",\n    \"cost\": 0.25,\n    \"billingCurrency\": \"USD\",\n"+
				"    \"subscriptionId\": \"sub-p\",\n    \"additionalInfo\": \"{\\\"b\\\": 2}\"\n  }\n}")
		}
		for _, r := range recs {
			if err := h.Record(ctx, []byte(r)); err != nil {
				return err
			}
			n++
		}
	}
	return h.PageDone(ctx, paging.Page{Index: 1, Records: n})
}

// TestGoldenOutput exports a fixed month (row keys on, no gzip) and compares the data lines
// (the line encoder's output, every part in the manifest's order) and the manifest (run id
// replaced) with testdata/golden/. A change of either output format fails here; when it is
// meant, rewrite the files with -update and review their diff.
func TestGoldenOutput(t *testing.T) {
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newTestExporter(t, st, goldenSource{}, Options{PartDays: 14, RowKey: true, NoGzip: true})
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	sum, err := e.Run(context.Background(), []Partition{p})
	if err != nil {
		t.Fatal(err)
	}
	if r := sum.Partitions[0]; r.Status != StatusCommitted {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	raw, err := os.ReadFile(filepath.Join(st.Dir(), e.ManifestName(p)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var lines bytes.Buffer
	for _, b := range m.Blobs {
		data, err := os.ReadFile(filepath.Join(st.Dir(), filepath.FromSlash(b.BlobName)))
		if err != nil {
			t.Fatal(err)
		}
		lines.Write(data)
	}
	// The run id is random; everything else is fixed by the source and the clock.
	stable := bytes.ReplaceAll(raw, []byte(m.RunInfo.RunID), []byte("RUN_ID"))
	testutil.Golden(t, "testdata/golden/lines.jsonl", lines.Bytes(), *update)
	testutil.Golden(t, "testdata/golden/manifest.json", stable, *update)
}

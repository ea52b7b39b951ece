package record

import (
	"bytes"
	"encoding/json"
	"flag"
	"testing"

	"github.com/usage-export/usage-export/internal/testutil"
)

// update rewrites the golden files (go test ./internal/record -run TestGoldenFields -update).
var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

// goldenFields is what Extract reads from one record, as written to the golden file.
type goldenFields struct {
	File           string `json:"file"`
	Index          int    `json:"index"`
	Kind           string `json:"kind"`
	Date           string `json:"date"`
	Day            string `json:"day"`
	Currency       string `json:"currency"`
	Cost           string `json:"cost"`
	CostField      string `json:"costField"`
	CostUSD        string `json:"costUSD"`
	SubscriptionID string `json:"subscriptionId"`
	Department     string `json:"department"`
	Account        string `json:"account"`
	BillingProfile string `json:"billingProfile"`
	InvoiceSection string `json:"invoiceSection"`
	InvoiceID      string `json:"invoiceId"`
}

// TestGoldenFields extracts every record of the published examples in testdata and compares
// the fields, one JSON line per record, with testdata/golden/fields.jsonl. A change in what the
// extractor reads fails here; when it is meant, rewrite the file with -update and review the diff.
func TestGoldenFields(t *testing.T) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	for _, file := range []string{"legacy-2024-08-01.json", "modern-2024-08-01.json", "2018-06-30.json"} {
		for i, raw := range SpecRecords(t, file) {
			var f Fields
			if err := f.Extract(raw); err != nil {
				t.Fatalf("%s record %d: %v", file, i, err)
			}
			g := goldenFields{File: file, Index: i, Kind: string(f.Kind), Date: string(f.Date), Currency: string(f.Currency),
				Cost: string(f.Cost), CostField: f.CostField, CostUSD: string(f.CostUSD), SubscriptionID: string(f.SubscriptionID),
				Department: string(f.Department), Account: string(f.Account), BillingProfile: string(f.BillingProfile),
				InvoiceSection: string(f.InvoiceSection), InvoiceID: string(f.InvoiceID)}
			if d, err := Day(f.Date); err == nil {
				g.Day = d.Format("2006-01-02")
			} else {
				g.Day = "error: " + err.Error()
			}
			if err := enc.Encode(g); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.Golden(t, "testdata/golden/fields.jsonl", out.Bytes(), *update)
}

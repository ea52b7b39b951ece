// Package benchdata makes realistic usageDetails pages and records from the sandbox's generator,
// for the hot-path Go benchmarks of record, consumption and export (which must not each carry
// their own copy of the sandbox plumbing).
package benchdata

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/sandbox"
)

// Shape names a record shape of the usageDetails API.
type Shape string

// The record shapes the exporter sees.
const (
	// Legacy is an EA billing account record (kind "legacy", 2024-08-01) with additionalInfo.
	Legacy Shape = "legacy"
	// Modern is an MCA billing account record (kind "modern", 2024-08-01) with additionalInfo.
	Modern Shape = "modern"
	// Legacy2018 is an EA record of api-version 2018-06-30 (usageStart, pretaxCost).
	Legacy2018 Shape = "2018-06-30"
)

// Shapes lists every shape, for benchmark tables.
var Shapes = []Shape{Legacy, Modern, Legacy2018}

// Day is the usage day every record of a page made here belongs to.
var Day = time.Date(2026, 10, 7, 0, 0, 0, 0, time.UTC)

// now is the sandbox's "today": after Day's month, so the month is complete.
var now = time.Date(2026, 11, 14, 9, 0, 0, 0, time.UTC)

// MaxRecords is the most records Page returns (the API's page size limit).
const MaxRecords = 1000

// recordsPerDay makes one usage day hold more than MaxRecords records for every shape (the
// smallest scope used here, the MCA billing account, has 8 subscriptions).
const recordsPerDay = 200

// Page returns one page of n records (1..MaxRecords) of shape s, all of usage day Day, exactly
// as the sandbox serves it: {"value":[…],"nextLink":"…"}.
func Page(s Shape, n int) ([]byte, error) {
	if n < 1 || n > MaxRecords {
		return nil, fmt.Errorf("benchdata page: %d records: want 1..%d", n, MaxRecords)
	}
	sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: recordsPerDay, Now: func() time.Time { return now }})
	if err != nil {
		return nil, fmt.Errorf("benchdata page: %w", err)
	}
	defer sb.Close()
	target, err := pageURL(s, n)
	if err != nil {
		return nil, err
	}
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+sb.Token())
	rec := httptest.NewRecorder()
	sb.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("benchdata page %s: status %d: %s", s, rec.Code, rec.Body.Bytes())
	}
	body := rec.Body.Bytes()
	var page struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("benchdata page %s: %w", s, err)
	}
	if len(page.Value) != n {
		return nil, fmt.Errorf("benchdata page %s: got %d records, want %d", s, len(page.Value), n)
	}
	return body, nil
}

// Records returns the n records of Page(s, n), each its raw bytes.
func Records(s Shape, n int) ([][]byte, error) {
	body, err := Page(s, n)
	if err != nil {
		return nil, err
	}
	var page struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("benchdata records %s: %w", s, err)
	}
	out := make([][]byte, len(page.Value))
	for i, r := range page.Value {
		out[i] = []byte(r)
	}
	return out, nil
}

// LoopRecords runs fn on recs in turn, one record per iteration of b, and reports the mean record
// size (for MB/s), the allocations and cpu-ns/record: the process CPU time per record, which a
// loaded machine disturbs less than ns/op. An error from fn fails b.
func LoopRecords(b *testing.B, recs [][]byte, fn func(rec []byte) error) {
	b.Helper()
	var size int
	for _, r := range recs {
		size += len(r)
	}
	b.SetBytes(int64(size / len(recs)))
	b.ReportAllocs()
	cpu0 := CPUTime()
	i := 0
	for b.Loop() {
		if err := fn(recs[i]); err != nil {
			b.Fatalf("record %d: %v", i, err)
		}
		i = (i + 1) % len(recs)
	}
	b.ReportMetric(float64(CPUTime()-cpu0)/float64(b.N), "cpu-ns/record")
}

// pageURL is the request for one day of shape s, in each channel's date dialect.
func pageURL(s Shape, n int) (string, error) {
	day := Day.Format(time.DateOnly)
	q := url.Values{}
	q.Set("$top", fmt.Sprint(n))
	var path string
	switch s {
	case Legacy, Legacy2018:
		path = "/providers/Microsoft.Billing/billingAccounts/" + sandbox.EABillingAccount
		q.Set("$filter", fmt.Sprintf("properties/usageStart ge '%s' and properties/usageEnd le '%s'", day, day))
		q.Set("api-version", sandbox.LatestAPIVersion)
		if s == Legacy2018 {
			q.Set("api-version", "2018-06-30")
		} else {
			q.Set("$expand", "additionalInfo")
		}
	case Modern:
		path = "/providers/Microsoft.Billing/billingAccounts/" + sandbox.MCABillingAccount
		q.Set("startDate", day)
		q.Set("endDate", day)
		q.Set("$expand", "additionalInfo")
		q.Set("api-version", sandbox.LatestAPIVersion)
	default:
		return "", fmt.Errorf("benchdata: unknown shape %q", s)
	}
	return "http://127.0.0.1" + path + "/providers/Microsoft.Consumption/usageDetails?" + q.Encode(), nil
}

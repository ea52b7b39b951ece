package plan

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

func TestEstimateCalls(t *testing.T) {
	m := func(rows int64) *manifest.Manifest {
		return &manifest.Manifest{DataRowCount: rows, BillingPeriod: "202401", RunInfo: manifest.RunInfo{RunID: "r"}}
	}
	for _, tc := range []struct {
		name          string
		source        manifest.Source
		prev, similar *manifest.Manifest
		calls         int
		known         bool
		basis         string
	}{
		{"empty previous", manifest.SourceUsageDetails, m(0), nil, 1, true, "⌈0 rows"},
		{"one page", manifest.SourceUsageDetails, m(1000), nil, 2, true, "⌈1000 rows"},
		{"page and a bit", manifest.SourceUsageDetails, m(1001), nil, 3, true, "rows from the previous export"},
		{"a million", manifest.SourceUsageDetails, m(1_000_000), nil, 1001, true, "⌈1000000 rows / 1000⌉ + 1"},
		{"estimate from a neighbour", manifest.SourceUsageDetails, nil, m(2500), 4, false, "unknown: no previous export; estimated from 202401"},
		{"nothing known", manifest.SourceUsageDetails, nil, nil, 2, false, "unknown"},
		{"cost details", manifest.SourceCostDetails, m(1_000_000), nil, 4, true, "1 POST"},
	} {
		got := EstimateCalls(tc.source, tc.prev, tc.similar)
		if got.Calls != tc.calls || got.Known != tc.known || !strings.Contains(got.Basis, tc.basis) {
			t.Errorf("%s: %+v, want %d calls, known %v, basis with %q", tc.name, got, tc.calls, tc.known, tc.basis)
		}
	}
}

type fakeReader map[string]*manifest.Manifest

func (f fakeReader) LiveManifest(_ context.Context, p export.Partition) (*manifest.Manifest, error) {
	return f[p.RelPath()], nil
}
func (f fakeReader) Unfinished(_ context.Context, p export.Partition) (bool, error) {
	return p.Period.Month == 3, nil
}
func (f fakeReader) HeldRuns(context.Context, export.Partition) (int, error) { return 0, nil }

// TestMake: a department (2 calls/min) and a subscription (10/min) over three months; the
// department's time decides, and the actions follow what is committed and unfinished.
func TestMake(t *testing.T) {
	dept, _ := scope.Parse("/providers/Microsoft.Billing/departments/1")
	sub, _ := scope.Parse("/subscriptions/00000000-0000-0000-0000-000000000001")
	var parts []export.Partition
	for _, sc := range []scope.Scope{dept, sub} {
		for m := time.January; m <= time.March; m++ {
			parts = append(parts, export.Partition{Scope: sc, Period: period.Period{Year: 2024, Month: m}, Metric: "actualcost"})
		}
	}
	r := fakeReader{parts[0].RelPath(): {DataRowCount: 9500, BillingPeriod: "202401"}, parts[3].RelPath(): {DataRowCount: 100, BillingPeriod: "202401"}}
	rates := map[scope.Kind]float64{scope.Department: 2, scope.Subscription: 10}
	choose := func(p export.Partition, _ *manifest.Manifest) SourceChoice {
		return SourceChoice{Source: manifest.SourceUsageDetails, Reason: "test"}
	}
	pl, err := Make(context.Background(), r, parts, choose, Budget{PerScope: func(s scope.Scope) float64 { return rates[s.Kind] }, PerTenant: 200},
		time.Date(2024, 4, 20, 0, 0, 0, 0, time.UTC), 5)
	if err != nil {
		t.Fatal(err)
	}
	// Department: 11 known + 2 × 11 estimated = 33 calls at 2/min = 16.5 min; subscription 3 × 2 = 6 calls.
	if pl.Calls != 39 || pl.Unknown != 4 || pl.Minutes != 16.5 {
		t.Errorf("plan: %d calls, %d unknown, %.1f min; want 39, 4, 16.5", pl.Calls, pl.Unknown, pl.Minutes)
	}
	if pl.Scopes[0].Kind != string(scope.Department) || pl.Scopes[0].Calls != 33 || pl.Scopes[1].Minutes != 0.6 {
		t.Errorf("scopes: %+v", pl.Scopes)
	}
	wantActions := []string{"replace", "export", "resume", "replace", "export", "resume"}
	for i, p := range pl.Partitions {
		if p.Action != wantActions[i] || p.PeriodStatus != "final" {
			t.Errorf("%s %s: action %s status %s, want %s final", p.Scope, p.BillingPeriod, p.Action, p.PeriodStatus, wantActions[i])
		}
	}
}

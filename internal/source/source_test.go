package source

import (
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

func TestChoose(t *testing.T) {
	now := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	dept := scope.MustParse("/providers/Microsoft.Billing/departments/301001")
	profile := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31/billingProfiles/AB12-CD34-BG7-TGB")
	sub := scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000001")
	mg := scope.MustParse("/providers/Microsoft.Management/managementGroups/mg1")
	may, jun := period.Period{Year: 2024, Month: 5}, period.Period{Year: 2024, Month: 6}
	prev := func(rows int64, max string, kinds map[string]int64) *manifest.Manifest {
		m := &manifest.Manifest{DataRowCount: rows, RecordKinds: kinds}
		if max != "" {
			m.UsageDateRange = &manifest.DateRange{Min: "2024-05-01", Max: max}
		}
		return m
	}
	legacy := map[string]int64{"legacy": 1}
	tests := []struct {
		name       string
		in         Input
		want       manifest.Source
		reasonHas  string
		udCalls    int
		cdCalls    int
		wantTimeUD time.Duration
	}{
		{"forced usageDetails", Input{Setting: UsageDetails, Scope: dept, Period: may}, UsageDetails, "source setting is usageDetails", 0, 0, 0},
		{"forced costDetails on a management group", Input{Setting: CostDetails, Scope: mg, Period: may}, CostDetails, "setting", 0, 0, 0},
		{"usage metric", Input{Scope: dept, Period: may, Metric: "usage"}, UsageDetails, "no usage metric", 0, 0, 0},
		{"management group", Input{Scope: mg, Period: may}, UsageDetails, "management groups", 0, 0, 0},
		{"subscription of unknown agreement", Input{Scope: sub, Period: may}, UsageDetails, "EA and MCA subscriptions only", 0, 0, 0},
		{"subscription with legacy records (EA or pay-as-you-go)", Input{Scope: sub, Period: may, Previous: prev(1e6, "2024-05-31", legacy)}, UsageDetails, "EA and MCA subscriptions only", 0, 0, 0},
		{"MCA subscription, large", Input{Scope: sub, Period: may, Previous: prev(50_000, "2024-05-31", map[string]int64{"modern": 9})},
			CostDetails, "fewer ARM calls by Cost Details", 51, 4, 0},
		// 13 months back from now (2024-06-10T12:00) is 2023-05-10T12:00: May 2023 is out of
		// reach although it is 13 calendar months back; June 2023 is served.
		{"13 calendar months back", Input{Scope: dept, Period: period.Period{Year: 2023, Month: 5}}, UsageDetails, "before 2023-05-11", 0, 0, 0},
		{"12 months back, nothing exported: one report", Input{Scope: dept, Period: period.Period{Year: 2023, Month: 6}}, CostDetails, "period has ended and nothing is exported yet", 0, 0, 0},
		{"open month, nothing exported: one listing", Input{Scope: profile, Period: jun}, UsageDetails, "open period is not exported yet", 0, 0, 0},
		{"closed month, small", Input{Scope: profile, Period: may, Previous: prev(1500, "2024-05-31", nil)},
			UsageDetails, "fewer ARM calls by usageDetails: about 1500 rows in 31 days: usageDetails 3 ARM calls", 3, 4, 0},
		{"closed month, 3001 rows", Input{Scope: profile, Period: may, Previous: prev(3001, "2024-05-31", nil)},
			CostDetails, "usageDetails 5 ARM calls", 5, 4, 0},
		{"closed month, empty", Input{Scope: dept, Period: may, Previous: prev(0, "", nil)}, UsageDetails, "about 0 rows", 1, 4, 0},
		{"closed month, large, at a department's 2 calls a minute", Input{Scope: dept, Period: may, Rate: 2, Previous: prev(200_000, "2024-05-31", nil)},
			CostDetails, "usageDetails 204 ARM calls (1h42m0s at 2/min), Cost Details 4 report(s), 16 ARM calls (20m0s)", 204, 16, 102 * time.Minute},
		{"open month, day 10, 300 rows a day", Input{Scope: dept, Period: jun, Previous: prev(2700, "2024-06-09", nil)},
			UsageDetails, "about 3000 rows in 10 days: usageDetails 4 ARM calls", 4, 4, 0},
		{"open month, day 10, 5k rows a day", Input{Scope: dept, Period: jun, Previous: prev(45_000, "2024-06-09", nil)},
			CostDetails, "about 50000 rows in 10 days", 51, 4, 0},
		{"closed MCA billing-profile month re-exported: by its invoice", Input{Scope: profile, Period: may,
			Previous: &manifest.Manifest{DataRowCount: 9000, UsageDateRange: &manifest.DateRange{Min: "2024-05-01", Max: "2024-05-31"}, InvoiceIDs: []string{"G1000001"}}},
			CostDetails, "; by invoice G1000001", 10, 4, 0},
		{"two invoices: by days", Input{Scope: profile, Period: may,
			Previous: &manifest.Manifest{DataRowCount: 9000, UsageDateRange: &manifest.DateRange{Min: "2024-05-01", Max: "2024-05-31"}, InvoiceIDs: []string{"G1", "G2"}}},
			CostDetails, "Cost Details 1 report(s), 4 ARM calls (3m0s)", 10, 4, 0},
		{"equal calls, the report is slower", Input{Scope: dept, Period: jun, Rate: 6, Previous: prev(2700, "2024-06-09", nil)},
			UsageDetails, "usageDetails 4 ARM calls (40s at 6/min)", 4, 4, 40 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in.Now.IsZero() {
				tt.in.Now = now
			}
			if tt.in.Metric == "" {
				tt.in.Metric = "actualcost"
			}
			d := Choose(tt.in)
			if d.Source != tt.want || !strings.Contains(d.Reason, tt.reasonHas) {
				t.Errorf("Choose = %s (%s), want %s with %q", d.Source, d.Reason, tt.want, tt.reasonHas)
			}
			if d.UsageDetailsCalls != tt.udCalls || d.CostDetailsCalls != tt.cdCalls {
				t.Errorf("calls: usageDetails %d, Cost Details %d; want %d, %d (%s)", d.UsageDetailsCalls, d.CostDetailsCalls, tt.udCalls, tt.cdCalls, d.Reason)
			}
			if wantInv := strings.Contains(tt.reasonHas, "by invoice"); wantInv != (d.InvoiceID != "") || strings.Contains(d.Reason, "by invoice") != wantInv {
				t.Errorf("invoice %q (%s)", d.InvoiceID, d.Reason)
			}
			if tt.wantTimeUD != 0 && d.UsageDetailsTime != tt.wantTimeUD {
				t.Errorf("usageDetails time %s, want %s", d.UsageDetailsTime, tt.wantTimeUD)
			}
		})
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{"": true, "auto": true, "usageDetails": true, "costDetails": true, "Auto": false, "cost": false} {
		if Valid(manifest.Source(s)) != want {
			t.Errorf("Valid(%q) = %v", s, !want)
		}
	}
}

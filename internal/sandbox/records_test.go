package sandbox

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

func TestDecimalText(t *testing.T) {
	cases := []struct {
		d    dec
		want string
	}{
		{dec{m: 0, s: 0}, "0"},
		{dec{m: 0, s: 5}, "0"},
		{dec{m: 1980949998, s: 15}, "0.000001980949998"},
		{dec{m: 125, s: 1}, "12.5"},
		{dec{m: 1250, s: 2}, "12.5"},
		{dec{m: 5000, s: 3}, "5"},
		{dec{m: 123456789012345, s: 12}, "123.456789012345"},
	}
	for _, c := range cases {
		if got := c.d.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.d, got, c.want)
		}
	}
	if got := mul(dec{m: 999999999, s: 6}, dec{m: 999999, s: 6}).String(); got != "999.998999000001" {
		t.Errorf("mul rounds to 15 digits: %s", got)
	}
	// 999999999.999999 × 9999.9999 = 9999999899999.9900000001 needs 128 bits before rounding.
	if got := mul(dec{m: 999999999999999, s: 6}, dec{m: 99999999, s: 4}).String(); got != "9999999899999.99" {
		t.Errorf("128-bit product: %s, want 9999999899999.99", got)
	}
	var sum decSum
	sum.add(dec{m: 125, s: 1})
	sum.add(dec{m: 875, s: 3})
	if !sum.addText("-3.25") || sum.String() != "10.125" {
		t.Errorf("sum %s, want 10.125", sum.String())
	}
	var neg decSum
	neg.addText("-3.25")
	if neg.String() != "-3.25" {
		t.Errorf("negative sum %s", neg.String())
	}
	for _, bad := range []string{"", "1e5", "abc", ".5", "1.1234567890123456"} {
		var s decSum
		if s.addText(bad) {
			t.Errorf("addText(%q) accepted", bad)
		}
	}
}

// TestGeneratedValues checks every cost-like number of a month of every scope: non-negative,
// at most 15 significant digits, parseable as float64 back to the same text.
func TestGeneratedValues(t *testing.T) {
	s, err := New(&Options{RecordsPerDay: 5, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	numeric := []string{"quantity", "effectivePrice", "cost", "unitPrice", "payGPrice", "costInUSD", "costInBillingCurrency",
		"costInPricingCurrency", "paygCostInBillingCurrency", "paygCostInUSD", "marketPrice", "exchangeRatePricingToBilling"}
	zero, total := 0, 0
	for _, sc := range []string{"/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount,
		"/providers/Microsoft.Billing/billingAccounts/" + EABillingAccountEUR, "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount} {
		for _, m := range []Metric{MetricActualCost, MetricAmortizedCost} {
			subs, _ := s.w.resolve(scope.MustParse(sc))
			p := period.Period{Year: 2024, Month: 1}
			dq := &dataQuery{w: s.w, subs: subs, from: p.Start(), to: p.End().AddDate(0, 0, -1), metric: m, perDay: 5}
			dq.scan(0, func(_ int64, r *row) bool {
				b := appendRecord(nil, &APIVersions[len(APIVersions)-1], &recCtx{r: r})
				var rec struct{ Properties map[string]json.RawMessage }
				if err := json.Unmarshal(b, &rec); err != nil {
					t.Fatalf("record %s: %v", b, err)
				}
				for _, name := range numeric {
					raw, ok := rec.Properties[name]
					if !ok {
						continue
					}
					txt := string(raw)
					if strings.ContainsAny(strings.TrimPrefix(txt, "-"), "-eE") {
						t.Errorf("%s = %s", name, txt)
					}
					// Only refunds and rounding adjustments are negative.
					if strings.HasPrefix(txt, "-") && r.kind != rkRefund && r.kind != rkRounding {
						t.Errorf("%s %s = %s", r.chargeType(), name, txt)
					}
					digits := strings.TrimLeft(strings.ReplaceAll(strings.TrimPrefix(txt, "-"), ".", ""), "0")
					if len(digits) > 15 {
						t.Errorf("%s = %s has more than 15 significant digits", name, txt)
					}
					f, err := strconv.ParseFloat(txt, 64)
					if err != nil || strconv.FormatFloat(f, 'f', -1, 64) != txt || math.IsNaN(f) {
						t.Errorf("%s = %s does not survive a float64 round trip", name, txt)
					}
				}
				total++
				if r.billingCost().m == 0 {
					zero++
				}
				return true
			})
		}
	}
	if zero == 0 || zero > total/4 {
		t.Errorf("%d of %d rows cost zero, want some but few", zero, total)
	}
}

func TestDeterminism(t *testing.T) {
	sc := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount)
	p := period.Period{Year: 2024, Month: 2}
	truth := func(seed int64) Truth {
		s, err := New(&Options{Seed: seed, RecordsPerDay: 3, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := s.GroundTruth(sc, p, "actualcost")
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b, c := truth(1), truth(1), truth(2)
	compareTruth(t, a, b)
	if a.Hash == c.Hash || a.Sums["USD"] == c.Sums["USD"] {
		t.Errorf("seeds 1 and 2 give the same data: %+v", c)
	}
	if a.Rows != c.Rows {
		t.Errorf("row counts depend on the seed: %d vs %d", a.Rows, c.Rows)
	}
}

func TestWorldStructure(t *testing.T) {
	s, _ := New(&Options{RecordsPerDay: 1})
	counts := map[scope.Kind]int{}
	for _, sc := range s.Scopes() {
		counts[sc.Kind]++
		subs, err := s.w.resolve(sc)
		if err != nil || len(subs) == 0 {
			t.Errorf("%s resolves to %d subscriptions: %v", sc, len(subs), err)
		}
	}
	want := map[scope.Kind]int{scope.BillingAccount: 2, scope.Department: 4, scope.EnrollmentAccount: 8, scope.ManagementGroup: 1,
		scope.Subscription: 26, scope.MCABillingAccount: 1, scope.BillingProfile: 2, scope.InvoiceSection: 4, scope.Customer: 2}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%d %s scopes, want %d", counts[k], k, n)
		}
	}
	currencies := map[string]bool{}
	for _, id := range []string{MCABillingAccount, EABillingAccount, EABillingAccountEUR} {
		subs, _ := s.w.resolve(scope.MustParse("/providers/Microsoft.Billing/billingAccounts/" + id))
		for _, sub := range subs {
			currencies[id+" "+sub.currency] = true
		}
	}
	if len(currencies) != 4 { // MCA: USD+EUR; each EA one currency
		t.Errorf("currencies %v", currencies)
	}
	mg, _ := s.w.resolve(scope.MustParse("/providers/Microsoft.Management/managementGroups/" + ManagementGroupID))
	ea, _ := s.w.resolve(scope.MustParse("/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount))
	if len(mg) == 0 || len(mg) >= len(ea) {
		t.Errorf("management group has %d of %d subscriptions", len(mg), len(ea))
	}
}

// BenchmarkGenerate measures record generation (row + JSON encoding) on one core; the sandbox
// needs at least 50,000 records/s.
func BenchmarkGenerate(b *testing.B) {
	s, err := New(&Options{RecordsPerDay: 1000, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, scope, version string }{
		{"legacy", "/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount, LatestAPIVersion},
		{"modern", "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount, LatestAPIVersion},
		{"2018-06-30", "/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount, "2018-06-30"},
		{"csv-modern", "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount, ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			subs, _ := s.w.resolve(scope.MustParse(c.scope))
			p := period.Period{Year: 2024, Month: 1}
			dq := &dataQuery{w: s.w, subs: subs, from: p.Start(), to: p.End().AddDate(0, 0, -1), metric: MetricActualCost, perDay: 1000}
			v := lookupVersion(c.version)
			cols := lookupCSVSchema(CSVSchemaMCA20231201).cols
			buf := make([]byte, 0, 1<<16)
			var bytes int64
			b.ResetTimer()
			cpu0 := cpuTime()
			n := 0
			for n < b.N {
				dq.scan(0, func(_ int64, r *row) bool {
					if v != nil {
						buf = appendRecord(buf[:0], v, &recCtx{r: r})
					} else {
						buf = appendCSVRow(buf[:0], cols, &recCtx{r: r})
					}
					bytes += int64(len(buf))
					n++
					return n < b.N
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "records/cpu-s")
			}
			b.SetBytes(bytes / int64(b.N))
		})
	}
}

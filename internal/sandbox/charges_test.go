package sandbox

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// chargeKey names a charge the FOCUS dataset maps differently: chargeType, pricingModel,
// publisherType, and whether the row has a subscription.
func chargeKey(get func(string) string) string {
	sub := "sub"
	if get("subscriptionId") == "" && get("subscriptionGuid") == "" {
		sub = "nosub"
	}
	pub := "Azure" // first party: legacy `Azure`, modern `Microsoft`
	if get("publisherType") == "Marketplace" {
		pub = "Marketplace"
	}
	return strings.Join([]string{get("chargeType"), strings.ReplaceAll(get("pricingModel"), " ", ""), pub, sub}, "/")
}

// TestFocusChargesInBothSources checks that an EA enrollment and an MCA billing profile carry
// every charge FOCUS needs, in the usageDetails JSON and in the Cost Details CSV alike, in the
// metric each belongs to.
func TestFocusChargesInBothSources(t *testing.T) {
	s, ts := newTestServer(t, &Options{RecordsPerDay: 3, RowsPerBlob: 1000})
	month := period.Period{Year: 2024, Month: 1} // a commitment payment month, with a refunded duplicate
	want := map[string][]string{
		"actualcost": {"Purchase/Reservation/Azure/sub", "Purchase/SavingsPlan/Azure/sub", "Refund/Reservation/Azure/sub",
			"Purchase/OnDemand/Marketplace/sub", "RoundingAdjustment//Azure/sub", "Usage/Reservation/Azure/sub",
			"Usage/SavingsPlan/Azure/sub", "Usage/OnDemand/Azure/sub"},
		"amortizedcost": {"UnusedReservation/Reservation/Azure/nosub", "UnusedSavingsPlan/SavingsPlan/Azure/nosub",
			"Purchase/OnDemand/Marketplace/sub", "RoundingAdjustment//Azure/sub", "Usage/Reservation/Azure/sub",
			"Usage/SavingsPlan/Azure/sub", "Usage/OnDemand/Azure/sub"},
	}
	absent := map[string][]string{
		"actualcost":    {"UnusedReservation/Reservation/Azure/nosub", "UnusedSavingsPlan/SavingsPlan/Azure/nosub"},
		"amortizedcost": {"Purchase/Reservation/Azure/sub", "Purchase/SavingsPlan/Azure/sub", "Refund/Reservation/Azure/sub"},
	}
	for _, sc := range []string{"/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount,
		"/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/billingProfiles/AB12-CD34-BG7-TGB"} {
		modern := strings.Contains(sc, "billingProfiles")
		for _, metric := range []string{"actualcost", "amortizedcost"} {
			// usageDetails JSON: every row of the month.
			subs, err := s.w.resolve(scope.MustParse(sc))
			if err != nil {
				t.Fatal(err)
			}
			jsonKinds := map[string]int{}
			m, _ := parseMetric(metric)
			dq := &dataQuery{w: s.w, subs: subs, from: month.Start(), to: month.End().AddDate(0, 0, -1), metric: m, perDay: 3}
			dq.scan(0, func(_ int64, r *row) bool {
				var rec struct{ Properties map[string]any }
				if err := json.Unmarshal(appendRecord(nil, lookupVersion(LatestAPIVersion), &recCtx{r: r}), &rec); err != nil {
					t.Fatal(err)
				}
				jsonKinds[chargeKey(func(k string) string { v, _ := rec.Properties[k].(string); return v })]++
				return true
			})
			// Cost Details CSV: the report of the same month.
			res, _ := runReport(t, s, ts.URL, sc, fmt.Sprintf(`{"metric":%q,"timePeriod":{"start":"2024-01-01","end":"2024-01-31"}}`,
				map[string]string{"actualcost": "ActualCost", "amortizedcost": "AmortizedCost"}[metric]))
			header, rows := downloadCSV(t, res, false)
			idx := map[string]int{}
			for i, h := range header {
				idx[strings.ToLower(h)] = i
			}
			csvKinds := map[string]int{}
			for _, row := range rows {
				csvKinds[chargeKey(func(k string) string {
					if i, ok := idx[strings.ToLower(k)]; ok {
						return row[i]
					}
					return ""
				})]++
			}
			for src, kinds := range map[string]map[string]int{"usageDetails": jsonKinds, "costDetails": csvKinds} {
				for _, k := range want[metric] {
					if kinds[k] == 0 {
						t.Errorf("%s modern=%v %s %s: no %s rows", src, modern, metric, month, k)
					}
				}
				for _, k := range absent[metric] {
					if kinds[k] != 0 {
						t.Errorf("%s modern=%v %s %s: %d %s rows, want none", src, modern, metric, month, kinds[k], k)
					}
				}
			}
			if fmt.Sprint(jsonKinds) != fmt.Sprint(csvKinds) {
				t.Errorf("modern=%v %s: JSON %v, CSV %v", modern, metric, jsonKinds, csvKinds)
			}
			var list []string
			for k, n := range jsonKinds {
				list = append(list, fmt.Sprintf("%s=%d", k, n))
			}
			sort.Strings(list)
			t.Logf("modern=%v %s %s: %s", modern, metric, month, strings.Join(list, " "))
		}
	}
}

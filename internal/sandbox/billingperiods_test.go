package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/scope"
)

// paygSubs returns the pay-as-you-go subscriptions' paths and anchor days.
func paygSubs(s *Server) (paths []string, anchors []int) {
	for _, sub := range s.w.subs {
		if sub.offer == OfferWebDirect {
			paths = append(paths, "/subscriptions/"+sub.guid)
			anchors = append(anchors, sub.anchor)
		}
	}
	return paths, anchors
}

// TestBillingPeriodsAPI: pay-as-you-go subscriptions list sign-up-anchored periods named
// YYYYMM-1, newest first and contiguous; an EA subscription lists calendar months.
func TestBillingPeriodsAPI(t *testing.T) {
	s, ts := newTestServer(t, nil)
	paths, anchors := paygSubs(s)
	if len(paths) != 2 || anchors[0] != 5 || anchors[1] != 24 {
		t.Fatalf("pay-as-you-go subscriptions %v anchored %v, want two, on the 5th and the 24th", paths, anchors)
	}
	list := func(path string) []billingPeriodJSON {
		t.Helper()
		resp, body := get(t, s, ts.URL+path+"/providers/Microsoft.Billing/billingPeriods?api-version=2018-03-01-preview")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var out struct{ Value []billingPeriodJSON }
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Value
	}
	// testNow is 2024-03-15: the subscription anchored on the 24th is in 24 Feb – 23 Mar,
	// named after March; the one anchored on the 5th in 5 Mar – 4 Apr, named after April.
	for i, want := range [][3]string{{"202404-1", "2024-03-05", "2024-04-04"}, {"202403-1", "2024-02-24", "2024-03-23"}} {
		ps := list(paths[i])
		if got := ps[0]; got.Name != want[0] || got.Properties.Start != want[1] || got.Properties.End != want[2] {
			t.Errorf("%s: newest period %s %s..%s, want %v", paths[i], got.Name, got.Properties.Start, got.Properties.End, want)
		}
		for j := 1; j < len(ps); j++ {
			end, _ := time.Parse(time.DateOnly, ps[j].Properties.End)
			start, _ := time.Parse(time.DateOnly, ps[j-1].Properties.Start)
			if !end.AddDate(0, 0, 1).Equal(start) || !strings.HasSuffix(ps[j].Name, "-1") {
				t.Errorf("%s: period %s ends %s, the next starts %s", paths[i], ps[j].Name, ps[j].Properties.End, ps[j-1].Properties.Start)
			}
		}
	}
	ea := list("/subscriptions/" + s.w.subs[0].guid)
	if ea[0].Name != "202403" || ea[0].Properties.Start != "2024-03-01" || ea[0].Properties.End != "2024-03-31" {
		t.Errorf("EA subscription's newest period %+v, want the calendar month 202403", ea[0])
	}
	if resp, _ := get(t, s, ts.URL+paths[0]+"/providers/Microsoft.Billing/billingPeriods"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no api-version: status %d, want 400", resp.StatusCode)
	}
}

// TestWebDirectBillingPeriod: a billing-period request on a pay-as-you-go subscription is
// refused from api-version 2019-10-01 on with the service's message; on 2018-06-30 it returns the
// anchored period, whose records carry its real start and end, and equal the ground truth.
func TestWebDirectBillingPeriod(t *testing.T) {
	s, ts := newTestServer(t, nil)
	paths, _ := paygSubs(s)
	sub := paths[1] // anchored on the 24th
	resp, body := get(t, s, usageURL(ts.URL, sub+"/providers/Microsoft.Billing/billingPeriods/202402-1", "api-version=2024-08-01"))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	mustContain(t, string(body), "Billing Period is not supported in (2024-08-01) API Version for Subscription Scope With Web Direct Offer. Please provide the UsageStart and UsageEnd dates in the $filter")

	recs, _ := fetchAll(t, s, usageURL(ts.URL, sub+"/providers/Microsoft.Billing/billingPeriods/202402-1", "api-version=2018-06-30"))
	days := recordDates(t, recs)
	if len(days) != 31 || !days["2024-01-24"] || !days["2024-02-23"] || days["2024-02-24"] || days["2024-01-23"] {
		t.Errorf("period 202402-1 returned %d days, want 24 Jan – 23 Feb", len(days))
	}
	p, err := s.BillingPeriod(scope.MustParse(sub), "202402-1")
	if err != nil {
		t.Fatal(err)
	}
	truth, err := s.GroundTruthVersion(scope.MustParse(sub), p, "", "2018-06-30")
	if err != nil {
		t.Fatal(err)
	}
	compareTruth(t, truthOfRecords(t, recs), truth)

	// The same days by date range on 2024-08-01: billingPeriodStartDate/EndDate are the real ones.
	recs, _ = fetchAll(t, s, usageURL(ts.URL, sub, "api-version=2024-08-01&startDate=2024-01-24&endDate=2024-02-23"))
	for _, raw := range recs[:3] {
		d := decodeRecord(t, raw)
		if !strings.HasPrefix(d.Properties["billingPeriodStartDate"].(string), "2024-01-24") ||
			!strings.HasPrefix(d.Properties["billingPeriodEndDate"].(string), "2024-02-23") {
			t.Errorf("record period %v..%v, want 2024-01-24..2024-02-23", d.Properties["billingPeriodStartDate"], d.Properties["billingPeriodEndDate"])
		}
	}
	if resp, _ := get(t, s, usageURL(ts.URL, sub+"/providers/Microsoft.Billing/billingPeriods/202402", "api-version=2018-06-30")); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a calendar name for a pay-as-you-go subscription: status %d, want 400", resp.StatusCode)
	}
	ea := "/subscriptions/" + s.w.subs[0].guid
	if resp, _ := get(t, s, usageURL(ts.URL, ea+"/providers/Microsoft.Billing/billingPeriods/202402-1", "api-version=2024-08-01")); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a suffixed name for an EA subscription: status %d, want 400", resp.StatusCode)
	}
}

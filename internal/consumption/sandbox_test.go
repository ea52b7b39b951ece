package consumption_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
)

// sandboxNow is "today" in these tests.
var sandboxNow = time.Date(2024, 3, 15, 10, 30, 0, 0, time.UTC)

func startSandbox(t *testing.T, o *sandbox.Options) *sandbox.Server {
	t.Helper()
	o.Now = func() time.Time { return sandboxNow }
	return sandboxtest.Start(t, o)
}

func sandboxClient(t *testing.T, sb *sandbox.Server, version string, perRetry ...policy.Policy) *consumption.Client {
	t.Helper()
	c, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: sb.URL(), APIVersion: version,
		ClientOptions: policy.ClientOptions{
			Retry:            policy.RetryOptions{RetryDelay: 10 * time.Millisecond},
			PerRetryPolicies: perRetry,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// records collects raw records; safe for one List at a time.
type records struct{ raw [][]byte }

func (r *records) Record(_ context.Context, raw []byte) error {
	r.raw = append(r.raw, append([]byte(nil), raw...))
	return nil
}
func (r *records) PageDone(context.Context, paging.Page) error { return nil }

// TestDefaultExpandGivesMeterNames: with the default $expand, every EA (legacy) record carries
// its meter details (name, category), in every api-version; without $expand it carries only
// meterId. The 2018-06-30 spelling (additionalProperties) is checked on the wire by
// TestQueryOnTheWire.
func TestDefaultExpandGivesMeterNames(t *testing.T) {
	sb := startSandbox(t, &sandbox.Options{RecordsPerDay: 1})
	dept := scope.MustParse("/providers/Microsoft.Billing/departments/301001")
	for _, version := range consumption.APIVersions {
		for _, expand := range []string{"", consumption.ExpandNone} {
			c := sandboxClient(t, sb, version)
			var got records
			q := consumption.Query{Scope: dept, BillingPeriod: "202402", Top: 50, Expand: expand}
			if err := c.List(context.Background(), q, &got); err != nil {
				t.Fatalf("%s %q: %v", version, expand, err)
			}
			if len(got.raw) == 0 {
				t.Fatalf("%s: no records", version)
			}
			for _, raw := range got.raw {
				var rec struct {
					Properties struct {
						MeterID      string `json:"meterId"`
						MeterDetails *struct {
							MeterName     string `json:"meterName"`
							MeterCategory string `json:"meterCategory"`
						} `json:"meterDetails"`
					} `json:"properties"`
				}
				if err := json.Unmarshal(raw, &rec); err != nil {
					t.Fatal(err)
				}
				md := rec.Properties.MeterDetails
				if rec.Properties.MeterID == "" {
					continue // a charge without a meter (a rounding adjustment, a purchase)
				}
				if expand == "" && (md == nil || md.MeterName == "" || md.MeterCategory == "") {
					t.Fatalf("%s, default $expand: meterDetails %+v, want a meter name and category: %s", version, md, raw)
				}
				if expand == consumption.ExpandNone && md != nil {
					t.Fatalf("%s, no $expand: meterDetails %+v, want null", version, md)
				}
			}
		}
	}
}

// TestBudgetMeetsObservedLimits: the budget's default per-kind rates keep a department (2 calls
// a minute) and a subscription (10) under the sandbox's observed limits, 10 times faster (a
// 6 s window), with two listings of each scope at once sharing the budget: no 429, every record.
func TestBudgetMeetsObservedLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the scaled rate limits")
	}
	const window = 6 * time.Second
	sb := startSandbox(t, &sandbox.Options{RecordsPerDay: 1, RatePerKind: sandbox.ObservedRates, RatePerTenant: sandbox.DocumentedTenantRate, RateWindow: window})
	budget := ratelimit.New(&ratelimit.Options{Window: window})
	c := sandboxClient(t, sb, "", budget.Policy())
	p := period.Period{Year: 2024, Month: 2}
	type job struct {
		sc     scope.Scope
		metric string
	}
	dept := scope.MustParse("/providers/Microsoft.Billing/departments/301001")
	sub := sb.Scopes()[0]
	for _, s := range sb.Scopes() {
		if s.Kind == scope.Subscription {
			sub = s
			break
		}
	}
	jobs := []job{{dept, "actualcost"}, {dept, "amortizedcost"}, {sub, "actualcost"}, {sub, "amortizedcost"}}
	var wg sync.WaitGroup
	counts := make([]int, len(jobs))
	pages := make([]int, len(jobs))
	start := time.Now()
	for i, j := range jobs {
		truth, err := sb.GroundTruth(j.sc, p, j.metric)
		if err != nil {
			t.Fatal(err)
		}
		top := truth.Rows/2 + 1 // two pages each
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got records
			q := consumption.Query{Scope: j.sc, BillingPeriod: p.String(), Metric: metric.Metric(j.metric), Top: top}
			if err := c.List(context.Background(), q, pageCounter{&got, &pages[i]}); err != nil {
				t.Errorf("%s %s: %v", j.sc, j.metric, err)
			}
			if counts[i] = len(got.raw); counts[i] != truth.Rows {
				t.Errorf("%s %s: %d records, want %d", j.sc, j.metric, counts[i], truth.Rows)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	st := sb.Stats()
	if st.Throttled != 0 {
		t.Errorf("the sandbox throttled %d calls; the budget's per-kind rates must stay under its limits", st.Throttled)
	}
	// 4 department calls at 2 a window cannot take less than 3 intervals of window/2.
	if min := 3 * window / 2; took < min {
		t.Errorf("took %s, less than the %s the department's rate allows", took, min)
	}
	t.Logf("4 department + 4 subscription pages in %s (window %s), budget %+v", took.Round(time.Millisecond), window, budget.Stats())
}

// TestThrottledWithoutHeadersStillExact: a budget set too high (the documented 30 a minute)
// meets the department's real limit; the 429s carry no retry header, only "Please retry after
// N seconds."; the client waits what the message says, the budget slows down, and the listing
// ends with every record.
func TestThrottledWithoutHeadersStillExact(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the scaled rate limits")
	}
	const window = 2 * time.Second
	sb := startSandbox(t, &sandbox.Options{RecordsPerDay: 1, RatePerKind: sandbox.ObservedRates, RateWindow: window, ThrottleWithoutHeaders: true})
	budget := ratelimit.New(&ratelimit.Options{PerScope: 30, Window: window})
	c := sandboxClient(t, sb, "", budget.Policy())
	dept := scope.MustParse("/providers/Microsoft.Billing/departments/301001")
	p := period.Period{Year: 2024, Month: 2}
	truth, err := sb.GroundTruth(dept, p, "actualcost")
	if err != nil {
		t.Fatal(err)
	}
	var got records
	n := 0
	q := consumption.Query{Scope: dept, BillingPeriod: p.String(), Top: truth.Rows/4 + 1}
	if err := c.List(context.Background(), q, pageCounter{&got, &n}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got.raw) != truth.Rows {
		t.Errorf("%d records, want %d", len(got.raw), truth.Rows)
	}
	st, bs := sb.Stats(), budget.Stats()
	if st.Throttled == 0 || bs.Throttled != st.Throttled || bs.Slowdowns == 0 {
		t.Errorf("sandbox throttled %d, budget saw %+v; want throttling seen and the budget slowed down", st.Throttled, bs)
	}
	t.Logf("%d pages, sandbox throttled %d (message only), budget %+v", n, st.Throttled, bs)
}

type pageCounter struct {
	*records
	n *int
}

func (p pageCounter) PageDone(context.Context, paging.Page) error { *p.n++; return nil }

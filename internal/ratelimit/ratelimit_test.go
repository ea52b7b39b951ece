package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/retryhint"
	"github.com/usage-export/usage-export/internal/scope"
)

func TestScopeKey(t *testing.T) {
	tests := map[string]string{
		"/providers/Microsoft.Billing/billingAccounts/8608480/providers/Microsoft.Consumption/usageDetails":                                                   "/providers/microsoft.billing/billingaccounts/8608480",
		"/providers/Microsoft.Billing/BillingAccounts/8608480/providers/Microsoft.Billing/billingPeriods/202401/providers/Microsoft.Consumption/usageDetails": "/providers/microsoft.billing/billingaccounts/8608480",
		"/subscriptions/abc/providers/Microsoft.CostManagement/generateCostDetailsReport":                                                                     "/subscriptions/abc",
		"/subscriptions/abc/providers/Microsoft.CostManagement/costDetailsOperationResults/op":                                                                "/subscriptions/abc",
	}
	for in, want := range tests {
		if got := ScopeKey(in); got != want {
			t.Errorf("ScopeKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{}, 0},
		{http.Header{"X-Ms-Ratelimit-Microsoft.consumption-Retry-After": {"60"}}, 60 * time.Second},
		{http.Header{"Retry-After": {"3"}, "X-Ms-Ratelimit-Microsoft.costmanagement-Qpu-Retry-After": {"5"}}, 5 * time.Second},
		{http.Header{"Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"17"}, "X-Ms-Ratelimit-Microsoft.consumption-Retry-After": {"1"}}, time.Second},
		{http.Header{"Retry-After": {"soon"}}, 0},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.h); got != tt.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

// pipeline sends requests through the budget policy to srv, as the billing clients do.
func pipeline(b *Budget) runtime.Pipeline {
	return runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
		PerRetryPolicies: []policy.Policy{b.Policy()},
		Retry:            policy.RetryOptions{MaxRetries: -1},
	})
}

func get(t *testing.T, p runtime.Pipeline, url string) int {
	t.Helper()
	req, err := runtime.NewRequest(context.Background(), http.MethodGet, url)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBudgetSharedAcrossCallers checks that concurrent callers on one scope never exceed the
// per-scope rate, and that another scope has its own budget.
func TestBudgetSharedAcrossCallers(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		k := ScopeKey(r.URL.Path)
		seen[k] = append(seen[k], time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	const perWindow, window = 10, 500 * time.Millisecond
	b := New(&Options{PerScope: perWindow, PerTenant: 1000, Window: window})
	p := pipeline(b)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				get(t, p, srv.URL+"/subscriptions/a/providers/Microsoft.Consumption/usageDetails")
			}
		}()
	}
	get(t, p, srv.URL+"/subscriptions/b/providers/Microsoft.Consumption/usageDetails")
	wg.Wait()
	calls := seen["/subscriptions/a"]
	if len(calls) != 20 || len(seen["/subscriptions/b"]) != 1 {
		t.Fatalf("calls: a=%d b=%d, want 20 and 1", len(calls), len(seen["/subscriptions/b"]))
	}
	// The budget spaces one scope's calls evenly, whoever makes them: 20 calls cannot take less
	// than 19 intervals. (A lower bound: scheduling delays only make it longer.)
	if spread, min := calls[len(calls)-1].Sub(calls[0]), 19*window/perWindow; spread < min {
		t.Fatalf("20 calls of one scope took %v, the budget allows no less than %v", spread, min)
	}
	if s := b.Stats(); s.Calls != 21 || s.ScopesSeen != 2 {
		t.Errorf("stats %+v, want 21 calls over 2 scopes", s)
	}
}

// TestThrottlePausesTheScope checks that a 429 with the consumption retry-after header holds
// back every caller of that scope for the hinted time.
func TestThrottlePausesTheScope(t *testing.T) {
	var n atomic.Int32
	var mu sync.Mutex
	var first, second time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch n.Add(1) {
		case 1:
			first = time.Now()
			w.Header().Set("x-ms-ratelimit-microsoft.consumption-retry-after", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			second = time.Now()
		}
	}))
	defer srv.Close()
	b := New(&Options{PerScope: 1000, PerTenant: 1000, Window: time.Second})
	p := pipeline(b)
	url := srv.URL + "/subscriptions/a/providers/Microsoft.Consumption/usageDetails"
	if code := get(t, p, url); code != http.StatusTooManyRequests {
		t.Fatalf("first call: %d", code)
	}
	get(t, p, url)
	mu.Lock()
	defer mu.Unlock()
	if gap := second.Sub(first); gap < 900*time.Millisecond {
		t.Errorf("the next call came %v after the 429, want about the hinted 1 s", gap)
	}
	if s := b.Stats(); s.Throttled != 1 || s.Pauses != 1 {
		t.Errorf("stats %+v, want one throttle and one pause", s)
	}
}

// TestLowRemainingQuotaSlowsDown checks that a remaining-quota header of 0 pauses the tenant
// budget before the server has to throttle.
func TestLowRemainingQuotaSlowsDown(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests", "0")
		}
	}))
	defer srv.Close()
	b := New(&Options{PerScope: 1000, PerTenant: 4, Window: time.Second})
	p := pipeline(b)
	get(t, p, srv.URL+"/subscriptions/a/providers/Microsoft.Consumption/usageDetails")
	if s := b.Stats(); s.Pauses != 1 || s.Slowdowns != 1 {
		t.Errorf("stats %+v, want a pause and a slowdown on remaining quota 0", s)
	}
}

func TestCanceledWhileWaiting(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	b := New(&Options{PerScope: 1, PerTenant: 1000, Window: time.Hour})
	p := pipeline(b)
	url := srv.URL + "/subscriptions/a/providers/Microsoft.Consumption/usageDetails"
	get(t, p, url) // uses the only token of the hour
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := runtime.NewRequest(ctx, http.MethodGet, url)
	if _, err := p.Do(req); err == nil {
		t.Fatal("a request with no budget left and a short deadline succeeded")
	}
}

func TestRatePerKind(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		path string
		want int
	}{
		{"subscription", Options{}, "/subscriptions/a/providers/Microsoft.Consumption/usageDetails", 10},
		{"EA billing account", Options{}, "/providers/Microsoft.Billing/billingAccounts/8608480/providers/Microsoft.Consumption/usageDetails", 6},
		{"MCA billing account", Options{}, "/providers/Microsoft.Billing/billingAccounts/a1b2:c3d4_2019-05-31/providers/Microsoft.CostManagement/generateCostDetailsReport", 6},
		{"billing profile", Options{}, "/providers/Microsoft.Billing/billingAccounts/a1b2:c3d4_2019-05-31/billingProfiles/P1/providers/Microsoft.Consumption/usageDetails", 6},
		{"customer", Options{}, "/providers/Microsoft.Billing/billingAccounts/a1b2:c3d4_2019-05-31/customers/C1/providers/Microsoft.Consumption/usageDetails", 6},
		{"department with a billing period", Options{}, "/providers/Microsoft.Billing/departments/123/providers/Microsoft.Billing/billingPeriods/202401/providers/Microsoft.Consumption/usageDetails", 2},
		{"enrollment account", Options{}, "/providers/Microsoft.Billing/enrollmentAccounts/77/providers/Microsoft.Consumption/usageDetails", 2},
		{"management group", Options{}, "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Consumption/usageDetails", 2},
		{"unknown path", Options{}, "/somewhere/else", unknownKindRate},
		{"PerScope for every kind", Options{PerScope: 30}, "/providers/Microsoft.Billing/departments/123/providers/Microsoft.Consumption/usageDetails", 30},
		{"PerKind wins", Options{PerScope: 30, PerKind: map[scope.Kind]int{scope.Department: 4}}, "/providers/Microsoft.Billing/departments/123/providers/Microsoft.Consumption/usageDetails", 4},
		{"PerKind for another kind", Options{PerKind: map[scope.Kind]int{scope.Department: 4}}, "/subscriptions/a/providers/Microsoft.Consumption/usageDetails", 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.Rate(KindOf(ScopeKey(tt.path))); got != tt.want {
				t.Errorf("Rate = %d, want %d", got, tt.want)
			}
			if _, got := New(&tt.o).ScopeRate(tt.path); got != float64(tt.want) {
				t.Errorf("budget rate = %v, want %d", got, tt.want)
			}
		})
	}
	bad := Options{PerKind: map[scope.Kind]int{"resourceGroup": 3, scope.Department: 0}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `"resourceGroup"`) || !strings.Contains(err.Error(), `"department": 0`) {
		t.Errorf("Validate = %v, want both problems named", err)
	}
}

// TestPerKindSpacing checks that a department's calls are spaced at its own (low) rate while a
// subscription's go at its higher one, in one budget.
func TestPerKindSpacing(t *testing.T) {
	var mu sync.Mutex
	seen := map[string][]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		k := ScopeKey(r.URL.Path)
		seen[k] = append(seen[k], time.Now())
	}))
	defer srv.Close()
	const window = 600 * time.Millisecond // department 2, subscription 10 calls per window
	p := pipeline(New(&Options{Window: window}))
	for i := 0; i < 3; i++ {
		get(t, p, srv.URL+"/providers/Microsoft.Billing/departments/1/providers/Microsoft.Consumption/usageDetails")
	}
	start := time.Now()
	for i := 0; i < 3; i++ {
		get(t, p, srv.URL+"/subscriptions/a/providers/Microsoft.Consumption/usageDetails")
	}
	if d := seen["/providers/microsoft.billing/departments/1"]; d[2].Sub(d[0]) < 2*window/2 {
		t.Errorf("3 department calls took %s, want at least 2 intervals of %s", d[2].Sub(d[0]), window/2)
	}
	if took := time.Since(start); took > window {
		t.Errorf("3 subscription calls took %s, want about 2 intervals of %s", took, window/10)
	}
}

// TestThrottleMessageOnly checks that a 429 that names its wait only in the message pauses the
// scope for that wait, and one with no wait at all for DefaultThrottleWait (scaled by the test's
// clock).
func TestThrottleMessageOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		if r.URL.Query().Get("msg") == "1" {
			_, _ = w.Write([]byte(`{"error":{"code":"429","message":"Too many requests. Please retry after 7 seconds."}}`))
		}
	}))
	defer srv.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := New(&Options{PerScope: 1000, Window: time.Second, Now: func() time.Time { return now }})
	p := pipeline(b)
	get(t, p, srv.URL+"/subscriptions/a/providers/Microsoft.Consumption/usageDetails?msg=1")
	get(t, p, srv.URL+"/subscriptions/b/providers/Microsoft.Consumption/usageDetails")
	for key, want := range map[string]time.Duration{"/subscriptions/a": 7 * time.Second, "/subscriptions/b": retryhint.DefaultThrottleWait} {
		bk := b.scope(key)
		if got := bk.until.Sub(now); got != want {
			t.Errorf("%s paused for %s, want %s", key, got, want)
		}
	}
}

// TestAdaptsTo429 checks that a 429 halves the scope's rate and that calls that go through
// bring it back to the configured rate.
func TestAdaptsTo429(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After-Ms", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	b := New(&Options{PerScope: 100, Window: time.Second})
	p := pipeline(b)
	path := "/subscriptions/a/providers/Microsoft.Consumption/usageDetails"
	url := srv.URL + path
	get(t, p, url)
	if cur, max := b.ScopeRate(path); cur != 50 || max != 100 {
		t.Fatalf("after a 429: rate %v of %v, want 50 of 100", cur, max)
	}
	calls := 0
	for cur, _ := b.ScopeRate(path); cur < 100 && calls < 200; cur, _ = b.ScopeRate(path) {
		get(t, p, url)
		calls++
	}
	// From 50 to 100 by 1/rate a call takes about (100²-50²)/2 = 3750 calls; 200 show the climb.
	if cur, _ := b.ScopeRate(path); cur <= 52 || cur >= 100 {
		t.Errorf("after %d good calls the rate is %v, want it growing back from 50 towards 100", calls, cur)
	}
}

// TestEntityQuotaPausesTheScope checks that the Cost Management entity header (the scope's
// quota) pauses the scope, not the tenant.
func TestEntityQuotaPausesTheScope(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderRemainingCostManagementEntity, "0")
		w.Header().Set(HeaderRemainingCostManagementTenant, "150")
	}))
	defer srv.Close()
	b := New(&Options{PerScope: 10, Window: time.Minute})
	p := pipeline(b)
	path := "/subscriptions/a/providers/Microsoft.CostManagement/generateCostDetailsReport"
	get(t, p, srv.URL+path)
	if cur, _ := b.ScopeRate(path); cur != 5 {
		t.Errorf("scope rate %v after an exhausted entity quota, want 5", cur)
	}
	if !b.scope("/subscriptions/a").until.After(time.Now()) || b.tenant.until.After(time.Now()) {
		t.Errorf("want the scope paused and the tenant not")
	}
}

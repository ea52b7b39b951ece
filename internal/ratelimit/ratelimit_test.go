package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
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
		{http.Header{"Retry-After-Ms": {"17"}, "X-Ms-Ratelimit-Microsoft.consumption-Retry-After": {"1"}}, 17 * time.Millisecond},
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
	if s := b.Stats(); s.Pauses != 1 {
		t.Errorf("stats %+v, want a pause on remaining quota 0", s)
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

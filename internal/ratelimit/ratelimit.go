// Package ratelimit is the process-wide call budget for the billing APIs, as an azcore pipeline
// policy: every attempt (first tries and retries alike) waits for a token from its scope's
// budget and from the tenant's budget, so everything the process runs at once shares the
// documented limits (30 calls a minute per scope, 200 per tenant). A 429 or a low
// remaining-quota header pauses the budget it concerns for everyone, so the process slows down
// instead of being throttled again by its own other requests. The retry itself stays azcore's.
package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"golang.org/x/time/rate"
)

// Options set the budget. Zero values mean the documented defaults.
type Options struct {
	PerScope  int           // calls per Window per scope; default 30
	PerTenant int           // calls per Window for the tenant; default 200
	Window    time.Duration // default one minute (benchmarks scale it down)
	// Now is for tests.
	Now func() time.Time
}

// Budget is a shared call budget. It is safe for concurrent use.
type Budget struct {
	o      Options
	tenant *bucket
	mu     sync.Mutex
	scopes map[string]*bucket
	stats  Stats
}

// Stats counts what the budget did.
type Stats struct {
	Calls      int64         // attempts let through
	Throttled  int64         // 429 responses seen
	Waited     time.Duration // total time attempts waited for a token
	Pauses     int64         // pauses from 429s and low remaining-quota headers
	ScopesSeen int
}

type bucket struct {
	lim   *rate.Limiter
	mu    sync.Mutex
	until time.Time // paused until (retry-after)
}

// New returns a budget.
func New(o *Options) *Budget {
	var c Options
	if o != nil {
		c = *o
	}
	if c.PerScope <= 0 {
		c.PerScope = 30
	}
	if c.PerTenant <= 0 {
		c.PerTenant = 200
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Budget{o: c, tenant: newBucket(c.PerTenant, c.Window), scopes: map[string]*bucket{}}
}

// newBucket spaces calls evenly (burst 1), slightly under the limit, so a sliding window on the
// server never sees more than n calls.
func newBucket(n int, window time.Duration) *bucket {
	every := time.Duration(float64(window) / float64(n) * 1.01)
	return &bucket{lim: rate.NewLimiter(rate.Every(every), 1)}
}

// Stats returns a snapshot of the counters.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.ScopesSeen = len(b.scopes)
	return s
}

func (b *Budget) scope(key string) *bucket {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.scopes[key]
	if s == nil {
		s = newBucket(b.o.PerScope, b.o.Window)
		b.scopes[key] = s
	}
	return s
}

// ScopeKey returns the budget key of a request path: the scope part before the first
// "/providers/Microsoft.Consumption" or "/providers/Microsoft.CostManagement", lower-cased,
// without a billing-period sub-scope (the limit is per billing scope).
func ScopeKey(p string) string {
	l := strings.ToLower(p)
	for _, marker := range []string{"/providers/microsoft.consumption", "/providers/microsoft.costmanagement"} {
		if i := strings.Index(l, marker); i >= 0 {
			l = l[:i]
			break
		}
	}
	if i := strings.Index(l, "/providers/microsoft.billing/billingperiods/"); i >= 0 {
		l = l[:i]
	}
	return strings.TrimSuffix(l, "/")
}

// Policy returns the pipeline policy; add it to ClientOptions.PerRetryPolicies.
func (b *Budget) Policy() policy.Policy { return policyFunc(b.do) }

type policyFunc func(*policy.Request) (*http.Response, error)

func (f policyFunc) Do(r *policy.Request) (*http.Response, error) { return f(r) }

func (b *Budget) do(req *policy.Request) (*http.Response, error) {
	ctx := req.Raw().Context()
	sc := b.scope(ScopeKey(req.Raw().URL.Path))
	start := b.o.Now()
	for _, bk := range []*bucket{sc, b.tenant} {
		if err := bk.wait(ctx.Done(), b.o.Now); err != nil {
			return nil, err
		}
		if err := bk.lim.Wait(ctx); err != nil {
			return nil, err
		}
	}
	waited := b.o.Now().Sub(start)
	b.mu.Lock()
	b.stats.Calls++
	b.stats.Waited += waited
	b.mu.Unlock()

	resp, err := req.Next()
	if err != nil || resp == nil {
		return resp, err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		d := RetryAfter(resp.Header)
		if d <= 0 {
			d = b.o.Window / time.Duration(b.o.PerScope)
		}
		// The scope header names the limit that was hit; without it, pause the scope.
		target := sc
		if resp.Header.Get("x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after") != "" {
			target = b.tenant
		}
		target.pause(b.o.Now().Add(d))
		b.mu.Lock()
		b.stats.Throttled++
		b.stats.Pauses++
		b.mu.Unlock()
	} else if rem, ok := remaining(resp.Header); ok && rem <= 1 {
		// Out of quota before being throttled: hold the tenant for one call interval.
		b.tenant.pause(b.o.Now().Add(b.o.Window / time.Duration(b.o.PerTenant)))
		b.mu.Lock()
		b.stats.Pauses++
		b.mu.Unlock()
	}
	return resp, nil
}

func (bk *bucket) pause(until time.Time) {
	bk.mu.Lock()
	if until.After(bk.until) {
		bk.until = until
	}
	bk.mu.Unlock()
}

func (bk *bucket) wait(done <-chan struct{}, now func() time.Time) error {
	for {
		bk.mu.Lock()
		d := bk.until.Sub(now())
		bk.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-done:
			t.Stop()
			return errCanceled
		case <-t.C:
		}
	}
}

type canceledError struct{}

func (canceledError) Error() string { return "rate budget: request canceled while waiting" }

var errCanceled error = canceledError{}

// retryHeaders are the throttling hints the billing APIs send, in seconds unless named -ms.
var retryHeaders = []string{
	"x-ms-ratelimit-microsoft.consumption-retry-after",
	"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
	"x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
	"x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
	"x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after",
	"Retry-After",
}

// RetryAfter returns the delay the throttling headers ask for (0 when none does): a
// millisecond header when present (it is the precise one, as azcore reads it), else the largest
// of the second-granular headers.
func RetryAfter(h http.Header) time.Duration {
	var d time.Duration
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if ms, err := strconv.ParseFloat(h.Get(k), 64); err == nil && ms > 0 {
			d = max(d, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	if d > 0 {
		return d
	}
	for _, k := range retryHeaders {
		v := h.Get(k)
		if v == "" {
			continue
		}
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			d = max(d, time.Duration(s*float64(time.Second)))
		} else if t, err := http.ParseTime(v); err == nil {
			d = max(d, time.Until(t))
		}
	}
	return d
}

// remaining reads the remaining-quota headers of the Consumption and ARM read limits.
func remaining(h http.Header) (int, bool) {
	for _, k := range []string{
		"x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests",
		"x-ms-ratelimit-remaining-subscription-reads",
		"x-ms-ratelimit-remaining-tenant-reads",
	} {
		if v := h.Get(k); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

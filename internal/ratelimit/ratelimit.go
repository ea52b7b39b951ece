// Package ratelimit is the process-wide call budget for the billing APIs, as an azcore pipeline
// policy.
package ratelimit

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"golang.org/x/time/rate"

	"github.com/usage-export/usage-export/internal/retryhint"
	"github.com/usage-export/usage-export/internal/scope"
)

// DefaultPerKind is the calls a minute one scope of each kind is granted by default: the limits
// Microsoft staff reported in 2023 (subscription 10; billing account, billing profile and
// customer 6; department, enrollment account and management group 2; learn.microsoft.com Q&A
// 1190190, "might change"). An MCA billing account counts as a billing account, and an invoice
// section, which the report does not name, as its billing profile.
var DefaultPerKind = map[scope.Kind]int{
	scope.Subscription:      10,
	scope.BillingAccount:    6,
	scope.MCABillingAccount: 6,
	scope.BillingProfile:    6,
	scope.InvoiceSection:    6,
	scope.Customer:          6,
	scope.Department:        2,
	scope.EnrollmentAccount: 2,
	scope.ManagementGroup:   2,
}

// DefaultPerTenant is the documented tenant-wide limit, calls a minute.
const DefaultPerTenant = 200

// unknownKindRate is the per-minute rate of a request path whose scope kind is not recognised:
// the lowest of DefaultPerKind, so an unknown scope is never the one that gets throttled.
const unknownKindRate = 2

// DefaultWindow is the window the rates count calls in.
const DefaultWindow = time.Minute

// lowQuota is the remaining-quota value at which a budget pauses for one call interval: the
// next call would be the last one the service grants in its window.
const lowQuota = 1

// Options set the budget. Zero values mean the documented defaults.
type Options struct {
	// PerKind sets the calls per Window of one scope, by scope kind. Kinds it does not name get
	// PerScope when that is set, else DefaultPerKind.
	PerKind map[scope.Kind]int
	// PerScope, when positive, is the calls per Window of one scope of every kind that PerKind
	// does not name.
	PerScope  int
	PerTenant int           // calls per Window for the tenant; default DefaultPerTenant
	Window    time.Duration // default DefaultWindow (tests and benchmarks scale it down)
	// Now is for tests.
	Now func() time.Time
}

// Validate reports every invalid option at once.
func (o *Options) Validate() error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(o.PerKind)) {
		if _, known := DefaultPerKind[k]; !known {
			errs = append(errs, fmt.Errorf("rate for scope kind %q: not a scope kind (%s)", k, kindNames()))
		}
		if o.PerKind[k] <= 0 {
			errs = append(errs, fmt.Errorf("rate for scope kind %q: %d is not a positive number of calls", k, o.PerKind[k]))
		}
	}
	if o.PerScope < 0 || o.PerTenant < 0 || o.Window < 0 {
		errs = append(errs, errors.New("rate budget: negative rate or window"))
	}
	return errors.Join(errs...)
}

// kindNames lists the scope kinds that have a rate, for error messages.
func kindNames() string {
	names := make([]string, 0, len(DefaultPerKind))
	for _, k := range slices.Sorted(maps.Keys(DefaultPerKind)) {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// Rate returns the calls per Window one scope of kind k is granted under o.
func (o *Options) Rate(k scope.Kind) int {
	if n, ok := o.PerKind[k]; ok && n > 0 {
		return n
	}
	if o.PerScope > 0 {
		return o.PerScope
	}
	if n, ok := DefaultPerKind[k]; ok {
		return n
	}
	return unknownKindRate
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
	Slowdowns  int64         // times a budget's rate was halved
	ScopesSeen int
}

// bucket is one budget: a token bucket whose rate adapts, and a pause.
type bucket struct {
	lim    *rate.Limiter
	window time.Duration
	max    float64 // the configured calls per window
	mu     sync.Mutex
	cur    float64   // the calls per window granted now, ≤ max
	until  time.Time // paused until (retry-after)
}

// New returns a budget. Invalid options (see Options.Validate) are replaced by their defaults.
func New(o *Options) *Budget {
	var c Options
	if o != nil {
		c = *o
		c.PerKind = maps.Clone(o.PerKind)
	}
	for k, n := range c.PerKind {
		if n <= 0 {
			delete(c.PerKind, k)
		}
	}
	c.PerScope = max(c.PerScope, 0)
	if c.PerTenant <= 0 {
		c.PerTenant = DefaultPerTenant
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Budget{o: c, tenant: newBucket(c.PerTenant, c.Window), scopes: map[string]*bucket{}}
}

// margin is how far under its limit a budget spaces calls: a call is counted by the service
// when it arrives, not when the budget let it go, so the spacing leaves room for a call that
// is delayed on its way (connection setup, a token refresh) while the next one is not.
const margin = 1.05

// newBucket spaces calls evenly (burst 1), a margin under the limit, so a sliding window on the
// server never sees more than n calls.
func newBucket(n int, window time.Duration) *bucket {
	b := &bucket{window: window, max: float64(n), cur: float64(n)}
	b.lim = rate.NewLimiter(b.limit(), 1)
	return b
}

// limit is the token rate for cur calls per window, a margin under it.
func (bk *bucket) limit() rate.Limit {
	return rate.Every(time.Duration(float64(bk.window) / bk.cur * margin))
}

// interval is the time between two calls at the current rate.
func (bk *bucket) interval() time.Duration {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return time.Duration(float64(bk.window) / bk.cur)
}

// slowDown halves the rate, down to one call per window.
func (bk *bucket) slowDown() {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.cur = max(bk.cur/2, 1)
	bk.lim.SetLimit(bk.limit())
}

// speedUp grows the rate back by one call per window over a window's worth of calls.
func (bk *bucket) speedUp() {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if bk.cur >= bk.max {
		return
	}
	bk.cur = min(bk.cur+1/bk.cur, bk.max)
	bk.lim.SetLimit(bk.limit())
}

// Stats returns a snapshot of the counters.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.ScopesSeen = len(b.scopes)
	return s
}

// ScopeRate returns the calls per Window the budget grants the scope of a request path now
// (after any slowdown), and the configured rate.
func (b *Budget) ScopeRate(p string) (now, configured float64) {
	sc := b.scope(ScopeKey(p))
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.cur, sc.max
}

func (b *Budget) scope(key string) *bucket {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.scopes[key]
	if s == nil {
		s = newBucket(b.o.Rate(KindOf(key)), b.o.Window)
		b.scopes[key] = s
	}
	return s
}

// KindOf returns the scope kind of a budget key (see ScopeKey), or "" when it is not a scope.
func KindOf(key string) scope.Kind {
	sc, err := scope.Parse(key)
	if err != nil {
		return ""
	}
	return sc.Kind
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
		body, _ := runtime.Payload(resp) // azcore has read the error body already
		d := retryhint.Throttled(resp.Header, body)
		// The tenant header names the limit that was hit; without it, the scope's.
		target := sc
		if resp.Header.Get(retryhint.HeaderCostManagementTenantRetryAfter) != "" {
			target = b.tenant
		}
		target.pause(b.o.Now().Add(d))
		target.slowDown()
		b.count(func(s *Stats) { s.Throttled++; s.Pauses++; s.Slowdowns++ })
		return resp, nil
	}
	low := false
	for _, q := range quotas(resp.Header) {
		target := b.tenant
		if q.scope {
			target = sc
		}
		if q.remaining <= lowQuota {
			// Out of quota before being throttled: hold the budget for one call interval, and
			// slow it down when the quota is gone (someone else shares it).
			target.pause(b.o.Now().Add(target.interval()))
			if q.remaining <= 0 {
				target.slowDown()
				b.count(func(s *Stats) { s.Slowdowns++ })
			}
			b.count(func(s *Stats) { s.Pauses++ })
			low = true
		}
	}
	if !low && resp.StatusCode < http.StatusBadRequest {
		sc.speedUp()
		b.tenant.speedUp()
	}
	return resp, nil
}

func (b *Budget) count(f func(*Stats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
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

// RetryAfter returns the delay the throttling headers ask for (0 when none does); see
// retryhint.Header.
func RetryAfter(h http.Header) time.Duration { return retryhint.Header(h) }

// Remaining-quota headers, seen in the field (webdevops/azure-resourcemanager-exporter
// policy/cost_ratelimit.go) and in ARM's documentation: how many calls the service still grants
// in its current window, per tenant or per entity (the scope).
const (
	HeaderRemainingConsumptionTenant    = "x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests"
	HeaderRemainingCostManagementEntity = "x-ms-ratelimit-remaining-microsoft.costmanagement-entity-requests"
	HeaderRemainingCostManagementTenant = "x-ms-ratelimit-remaining-microsoft.costmanagement-tenant-requests"
	headerRemainingSubscriptionReads    = "x-ms-ratelimit-remaining-subscription-reads"
	headerRemainingTenantReads          = "x-ms-ratelimit-remaining-tenant-reads"
)

// remainingHeaders maps each remaining-quota header to whether it counts the scope (true) or
// the tenant (false).
var remainingHeaders = []struct {
	name  string
	scope bool
}{
	{HeaderRemainingConsumptionTenant, false},
	{HeaderRemainingCostManagementEntity, true},
	{HeaderRemainingCostManagementTenant, false},
	{headerRemainingSubscriptionReads, false},
	{headerRemainingTenantReads, false},
}

type quota struct {
	remaining int
	scope     bool
}

// quotas reads the remaining-quota headers of a response.
func quotas(h http.Header) []quota {
	var out []quota
	for _, rh := range remainingHeaders {
		if v := h.Get(rh.name); v != "" {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				out = append(out, quota{remaining: n, scope: rh.scope})
			}
		}
	}
	return out
}

// ParseRates parses a per-scope rate setting into Options.PerScope and Options.PerKind: a
// comma-separated list of "kind=calls" (kinds as scope.Kind names them, any case) and at most
// one bare number, which applies to every kind not named. "" gives DefaultPerKind. Examples:
// "30" (every kind 30), "department=4,subscription=20", "12,managementGroup=1".
func ParseRates(s string) (perScope int, perKind map[scope.Kind]int, err error) {
	kinds := map[string]scope.Kind{}
	for k := range DefaultPerKind {
		kinds[strings.ToLower(string(k))] = k
	}
	var errs []error
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, named := strings.Cut(item, "=")
		if !named {
			value = name
		}
		n, perr := strconv.Atoi(strings.TrimSpace(value))
		if perr != nil || n < 1 || n > maxRate {
			errs = append(errs, fmt.Errorf("%q: want a whole number of calls from 1 to %d", item, maxRate))
			continue
		}
		if !named {
			if perScope != 0 {
				errs = append(errs, fmt.Errorf("%q: only one rate without a kind", item))
			}
			perScope = n
			continue
		}
		k, ok := kinds[strings.ToLower(strings.TrimSpace(name))]
		if !ok {
			errs = append(errs, fmt.Errorf("%q: unknown scope kind %q (%s)", item, strings.TrimSpace(name), kindNames()))
			continue
		}
		if perKind == nil {
			perKind = map[scope.Kind]int{}
		}
		perKind[k] = n
	}
	if len(errs) > 0 {
		return 0, nil, errors.Join(errs...)
	}
	return perScope, perKind, nil
}

// maxRate bounds a configured rate (calls per window).
const maxRate = 100000

// FormatRates is the inverse of ParseRates, kinds in name order.
func FormatRates(perScope int, perKind map[scope.Kind]int) string {
	var parts []string
	if perScope > 0 {
		parts = append(parts, strconv.Itoa(perScope))
	}
	for _, k := range slices.Sorted(maps.Keys(perKind)) {
		parts = append(parts, string(k)+"="+strconv.Itoa(perKind[k]))
	}
	return strings.Join(parts, ",")
}

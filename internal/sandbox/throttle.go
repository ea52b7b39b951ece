package sandbox

import (
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/usage-export/usage-export/internal/scope"
)

// ObservedRates are the calls a minute the real service was observed to grant one scope of each
// kind (azure-in-production.md §3: Microsoft staff, 2023, "might change": subscription 10;
// billing account, billing profile and customer 6; department, enrollment account and
// management group 2). The sandbox applies the same limit to an MCA billing account as to an EA
// one, and to an invoice section as to its billing profile (the report does not name them).
// Options.RatePerKind = ObservedRates (or -rate-limits observed) makes the sandbox enforce them.
var ObservedRates = map[scope.Kind]int{
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

// DocumentedTenantRate is the documented per-tenant limit, calls a minute.
const DocumentedTenantRate = 200

// limiter enforces "N calls per window" per scope and per tenant with sliding-window logs: a
// call is allowed when fewer than N calls were allowed in the last window. N per scope comes
// from the scope's kind (perKind), else perScope. Throttled calls are not counted. Memory is at
// most N timestamps per scope.
type limiter struct {
	mu        sync.Mutex
	window    time.Duration
	perScope  int
	perKind   map[scope.Kind]int
	perTenant int
	scopes    map[string][]time.Time
	tenant    []time.Time
}

func newLimiter(perScope int, perKind map[scope.Kind]int, perTenant int, window time.Duration) *limiter {
	return &limiter{window: window, perScope: perScope, perKind: maps.Clone(perKind), perTenant: perTenant, scopes: map[string][]time.Time{}}
}

// scopeLimit is the per-window limit of a scope of kind k (0 = unlimited).
func (l *limiter) scopeLimit(k scope.Kind) int {
	if n, ok := l.perKind[k]; ok {
		return n
	}
	return l.perScope
}

func prune(log []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(log) && !log[i].After(cutoff) {
		i++
	}
	return log[i:]
}

// allow records a call on key (a scope of kind k) at now unless a limit is reached; it returns
// how long to wait when throttled, the tenant calls remaining in the window after this call and
// the scope's (-1 when there is no such limit).
func (l *limiter) allow(now time.Time, key string, k scope.Kind) (ok bool, wait time.Duration, remaining, scopeRemaining int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-l.window)
	l.tenant = prune(l.tenant, cutoff)
	sl := prune(l.scopes[key], cutoff)
	perScope := l.scopeLimit(k)
	remaining, scopeRemaining = -1, -1
	if perScope > 0 {
		scopeRemaining = perScope - len(sl)
	}
	if l.perTenant > 0 {
		remaining = l.perTenant - len(l.tenant)
		if len(l.tenant) >= l.perTenant {
			wait = l.tenant[0].Add(l.window).Sub(now)
		}
	}
	if perScope > 0 && len(sl) >= perScope {
		wait = max(wait, sl[0].Add(l.window).Sub(now))
	}
	if wait > 0 {
		l.scopes[key] = sl
		return false, wait, max(remaining, 0), max(scopeRemaining, 0)
	}
	if l.perTenant > 0 {
		l.tenant = append(l.tenant, now)
		remaining--
	}
	if perScope > 0 {
		sl = append(sl, now)
		scopeRemaining--
	}
	l.scopes[key] = sl
	return true, 0, remaining, scopeRemaining
}

// tenantRemaining reports the tenant calls left in the window without counting a call.
func (l *limiter) tenantRemaining(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perTenant <= 0 {
		return -1
	}
	l.tenant = prune(l.tenant, now.Add(-l.window))
	return l.perTenant - len(l.tenant)
}

// Rate-limit header names (exact, consumption-api.md §8 and azure-in-production.md §3).
const (
	hdrConsumptionRetryAfter = "x-ms-ratelimit-microsoft.consumption-retry-after"
	hdrTenantRemaining       = "x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests"
	hdrCMEntityRemaining     = "x-ms-ratelimit-remaining-microsoft.costmanagement-entity-requests"
	hdrCMTenantRemaining     = "x-ms-ratelimit-remaining-microsoft.costmanagement-tenant-requests"
)

// api says which API a response belongs to, for its remaining-quota headers.
type api int

const (
	apiConsumption    api = iota // usageDetails: the consumption tenant header
	apiCostManagement            // Cost Details: the cost management entity (scope) and tenant headers
)

// setRemaining writes the remaining-quota headers of a response of a: the tenant's calls left
// in the window and, for Cost Management, the scope's (entity's). -1 means no such limit.
func setRemaining(h interface{ Set(string, string) }, a api, tenant, scopeLeft int) {
	if a == apiConsumption {
		if tenant >= 0 {
			h.Set(hdrTenantRemaining, strconv.Itoa(tenant))
		}
		return
	}
	if tenant >= 0 {
		h.Set(hdrCMTenantRemaining, strconv.Itoa(tenant))
	}
	if scopeLeft >= 0 {
		h.Set(hdrCMEntityRemaining, strconv.Itoa(scopeLeft))
	}
}

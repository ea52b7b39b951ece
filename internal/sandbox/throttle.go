package sandbox

import (
	"strconv"
	"sync"
	"time"
)

// limiter enforces "N calls per window" per scope and per tenant with sliding-window logs: a
// call is allowed when fewer than N calls were allowed in the last window. Throttled calls are
// not counted. Memory is at most N timestamps per scope.
type limiter struct {
	mu        sync.Mutex
	window    time.Duration
	perScope  int
	perTenant int
	scopes    map[string][]time.Time
	tenant    []time.Time
}

func newLimiter(perScope, perTenant int, window time.Duration) *limiter {
	return &limiter{window: window, perScope: perScope, perTenant: perTenant, scopes: map[string][]time.Time{}}
}

func prune(log []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(log) && !log[i].After(cutoff) {
		i++
	}
	return log[i:]
}

// allow records a call on key at now unless a limit is reached; it returns how long to wait
// when throttled, and the tenant calls remaining in the window after this call (-1 when there
// is no tenant limit).
func (l *limiter) allow(now time.Time, key string) (ok bool, wait time.Duration, remaining int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-l.window)
	l.tenant = prune(l.tenant, cutoff)
	sl := prune(l.scopes[key], cutoff)
	remaining = -1
	if l.perTenant > 0 {
		remaining = l.perTenant - len(l.tenant)
		if len(l.tenant) >= l.perTenant {
			wait = l.tenant[0].Add(l.window).Sub(now)
		}
	}
	if l.perScope > 0 && len(sl) >= l.perScope {
		wait = max(wait, sl[0].Add(l.window).Sub(now))
	}
	if wait > 0 {
		l.scopes[key] = sl
		return false, wait, max(remaining, 0)
	}
	if l.perTenant > 0 {
		l.tenant = append(l.tenant, now)
		remaining--
	}
	if l.perScope > 0 {
		sl = append(sl, now)
	}
	l.scopes[key] = sl
	return true, 0, remaining
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

// Rate-limit header names (exact, consumption-api.md §8).
const (
	hdrConsumptionRetryAfter = "x-ms-ratelimit-microsoft.consumption-retry-after"
	hdrTenantRemaining       = "x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests"
)

func setRemaining(h interface{ Set(string, string) }, remaining int) {
	if remaining >= 0 {
		h.Set(hdrTenantRemaining, strconv.Itoa(remaining))
	}
}

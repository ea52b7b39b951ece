// Package retryhint reads how long a billing API response asks its client to wait, from the
// standard and the APIs' own retry headers or from a 429's "Please retry after N seconds"
// message, and makes azcore's retry policy honour that wait however long it is.
package retryhint

import (
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Header names azcore's retry policy reads, in its order of preference, and the Consumption
// API's own throttling hint.
const (
	HeaderRetryAfter      = "Retry-After"
	HeaderRetryAfterMS    = "Retry-After-Ms"
	HeaderXMSRetryAfterMS = "X-Ms-Retry-After-Ms"
	// HeaderConsumptionRetryAfter is the Consumption API's throttling hint, in seconds.
	HeaderConsumptionRetryAfter = "x-ms-ratelimit-microsoft.consumption-retry-after"
	// HeaderCostManagementTenantRetryAfter is the Cost Management hint for the tenant-wide limit.
	HeaderCostManagementTenantRetryAfter = "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after"
)

// rateLimitPrefix and rateLimitSuffix match the APIs' throttling hints, documented
// (x-ms-ratelimit-microsoft.consumption-retry-after, …costmanagement-qpu-retry-after) and
// observed (…costmanagement-entity-, -tenant-, -clienttype-retry-after). All are in seconds.
const (
	rateLimitPrefix = "x-ms-ratelimit-"
	rateLimitSuffix = "retry-after"
)

// DefaultThrottleWait is the wait of a 429 that names no wait at all, neither in a header nor
// in its message: the usageDetails API's messages say "Please retry after 60 seconds".
const DefaultThrottleWait = 60 * time.Second

// Max caps a parsed hint so that a nonsense value cannot overflow a Duration.
const Max = 24 * time.Hour

// Header returns the wait the headers of a response ask for: the standard hint as azcore reads
// it (retry-after-ms, else x-ms-retry-after-ms, else Retry-After in seconds or as an HTTP date),
// or the largest of the APIs' own x-ms-ratelimit-*-retry-after (seconds) when that is longer,
// since azcore does not read those. It returns 0 when no header holds a positive wait. The
// result is at most Max.
func Header(h http.Header) time.Duration {
	var standard, custom time.Duration
	if d := parseUnits(h.Get(HeaderRetryAfterMS), time.Millisecond); d > 0 {
		standard = d
	} else if d := parseUnits(h.Get(HeaderXMSRetryAfterMS), time.Millisecond); d > 0 {
		standard = d
	} else if v := h.Get(HeaderRetryAfter); v != "" {
		standard = parseRetryAfter(v)
	}
	for key, values := range h {
		lk := strings.ToLower(key)
		if len(values) > 0 && strings.HasPrefix(lk, rateLimitPrefix) && strings.HasSuffix(lk, rateLimitSuffix) {
			custom = max(custom, parseUnits(values[0], time.Second))
		}
	}
	return max(standard, custom)
}

// retryMessage matches the wait in a throttling message: "Please retry after 60 seconds.",
// "retry after 5 second(s)", "Retry after 1.5 seconds".
var retryMessage = regexp.MustCompile(`(?i)retry\s+after\s+([0-9]+(?:\.[0-9]+)?)\s*sec`)

// Message returns the wait a response body's message names ("… Please retry after 60
// seconds."), and whether it names one. The result is at most Max.
func Message(body []byte) (time.Duration, bool) {
	m := retryMessage.FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	d := parseUnits(string(m[1]), time.Second)
	return d, d > 0
}

// Throttled returns the wait of a 429 response whose headers are h and whose body is body: the
// headers' hint, else the wait its message names, else DefaultThrottleWait.
func Throttled(h http.Header, body []byte) time.Duration {
	if d := Header(h); d > 0 {
		return d
	}
	if d, ok := Message(body); ok {
		return d
	}
	return DefaultThrottleWait
}

// parseRetryAfter parses a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if d := parseUnits(v, time.Second); d > 0 {
		return d
	}
	if t, err := http.ParseTime(strings.TrimSpace(v)); err == nil {
		return min(max(time.Until(t), 0), Max)
	}
	return 0
}

// parseUnits parses a non-negative number of units ("60", "1.5"); anything else is 0.
func parseUnits(v string, unit time.Duration) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f*float64(unit) >= float64(Max) {
		return Max
	}
	return time.Duration(f * float64(unit))
}

// Seconds formats d as whole seconds for Retry-After, rounded up.
func Seconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

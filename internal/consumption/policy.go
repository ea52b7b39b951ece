package consumption

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Retry hint headers. azcore reads the first three (in this order of preference); the API's own
// throttling headers are mapped onto Retry-After by RetryAfterPolicy.
const (
	headerRetryAfter      = "Retry-After"
	headerRetryAfterMS    = "Retry-After-Ms"
	headerXMSRetryAfterMS = "X-Ms-Retry-After-Ms"
	// HeaderConsumptionRetryAfter is the Consumption API's throttling hint, in seconds.
	HeaderConsumptionRetryAfter = "x-ms-ratelimit-microsoft.consumption-retry-after"
)

// rateLimitHintPrefix and rateLimitHintSuffix match the API's throttling hints, documented
// (x-ms-ratelimit-microsoft.consumption-retry-after, …costmanagement-qpu-retry-after) and
// observed (…costmanagement-entity-, -tenant-, -clienttype-retry-after). All are in seconds.
const (
	rateLimitHintPrefix = "x-ms-ratelimit-"
	rateLimitHintSuffix = "retry-after"
)

// maxHint caps a parsed hint so a nonsense value cannot overflow a Duration. Anything this large
// exceeds any sensible MaxRetryDelay, which makes azcore give up instead of sleeping.
const maxHint = 24 * time.Hour

// RetryAfterPolicy is a per-retry pipeline policy that makes azcore's retry policy honour the
// Consumption and Cost Management throttling headers. It finds the largest wait among
// x-ms-ratelimit-*-retry-after (seconds), Retry-After, retry-after-ms and x-ms-retry-after-ms
// and, when a throttling header holds the largest, writes it to Retry-After (rounded up to whole
// seconds) and removes the millisecond headers, which azcore would otherwise prefer. Install it
// in PerRetryPolicies ahead of other per-retry policies so it edits the response last.
type RetryAfterPolicy struct{}

// Do implements policy.Policy.
func (RetryAfterPolicy) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if resp != nil {
		applyRetryHint(resp.Header)
	}
	return resp, err
}

// applyRetryHint rewrites h so that Retry-After carries the largest hint it holds.
func applyRetryHint(h http.Header) {
	var standard, custom time.Duration
	for key, values := range h {
		if len(values) == 0 {
			continue
		}
		lk := strings.ToLower(key)
		switch {
		case lk == "retry-after":
			standard = max(standard, parseRetryAfter(values[0]))
		case lk == "retry-after-ms" || lk == "x-ms-retry-after-ms":
			standard = max(standard, parseHint(values[0], time.Millisecond))
		case strings.HasPrefix(lk, rateLimitHintPrefix) && strings.HasSuffix(lk, rateLimitHintSuffix):
			custom = max(custom, parseHint(values[0], time.Second))
		}
	}
	if custom <= standard {
		return
	}
	secs := int64(math.Ceil(custom.Seconds()))
	h.Set(headerRetryAfter, strconv.FormatInt(secs, 10))
	h.Del(headerRetryAfterMS)
	h.Del(headerXMSRetryAfterMS)
}

// parseRetryAfter parses a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	if d := parseHint(v, time.Second); d > 0 {
		return d
	}
	if t, err := http.ParseTime(strings.TrimSpace(v)); err == nil {
		return min(max(time.Until(t), 0), maxHint)
	}
	return 0
}

// parseHint parses a non-negative number of units ("60", "1.5"); anything else is 0.
func parseHint(v string, unit time.Duration) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f*float64(unit) >= float64(maxHint) {
		return maxHint
	}
	return time.Duration(f * float64(unit))
}

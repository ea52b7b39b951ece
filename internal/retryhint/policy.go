package retryhint

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// NewPolicy returns the per-retry policy that makes azcore's retry policy, configured with
// retry, honour every wait a retriable response (a status in retry.StatusCodes) asks for:
//
//   - the largest hint of its headers (Header), the APIs' own x-ms-ratelimit-*-retry-after
//     included, which azcore does not read;
//   - for a 429 without any hint header, the wait its message names, or DefaultThrottleWait;
//   - a wait longer than retry.MaxRetryDelay, which azcore would treat as a reason to give up:
//     the policy sleeps the excess itself, then hands azcore a hint of exactly MaxRetryDelay, so
//     the retry happens when the service asked for it and still counts as one of MaxRetries.
//
// The hint azcore sees is written to Retry-After (whole seconds, rounded up) and retry-after-ms
// (exact), which azcore reads first. Install it first in PerRetryPolicies, so it edits the
// response after every other per-retry policy (a rate budget) has seen the original.
func NewPolicy(retry policy.RetryOptions) policy.Policy {
	return &hintPolicy{codes: slices.Clone(retry.StatusCodes), maxDelay: retry.MaxRetryDelay, sleep: sleep}
}

type hintPolicy struct {
	codes    []int
	maxDelay time.Duration // <= 0: no cap
	// sleep waits d or until ctx ends; tests observe it.
	sleep func(ctx context.Context, d time.Duration)
}

// Do implements policy.Policy.
func (p *hintPolicy) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if resp == nil || !slices.Contains(p.codes, resp.StatusCode) {
		return resp, err
	}
	d := Header(resp.Header)
	if d <= 0 && resp.StatusCode == http.StatusTooManyRequests {
		body, _ := runtime.Payload(resp) // error bodies were already read by azcore
		d = Throttled(resp.Header, body)
	}
	if d <= 0 {
		return resp, err // azcore's own exponential backoff applies
	}
	if p.maxDelay > 0 && d > p.maxDelay {
		// azcore gives up on a hint above MaxRetryDelay; wait the excess here instead. A
		// cancelled context ends the wait, and azcore then stops on the context.
		p.sleep(req.Raw().Context(), d-p.maxDelay)
		d = p.maxDelay
	}
	h := resp.Header
	h.Set(HeaderRetryAfter, Seconds(d))
	h.Set(HeaderRetryAfterMS, strconv.FormatInt(max(d.Milliseconds(), 1), 10))
	h.Del(HeaderXMSRetryAfterMS)
	return resp, err
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

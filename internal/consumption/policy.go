package consumption

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
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

// permanentError marks an error that azcore's retry policy must not retry (it has the
// NonRetriable method azcore checks for) and that IsPermanent reports.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// NonRetriable tells azcore's retry policy to stop.
func (e *permanentError) NonRetriable() {}

// hostGuardPolicy fails any request whose scheme or host differs from the configured endpoint,
// before the bearer-token policy can attach a token to it.
type hostGuardPolicy struct{ allowed origin }

func (p hostGuardPolicy) Do(req *policy.Request) (*http.Response, error) {
	u := req.Raw().URL
	if got := originOf(u); got != p.allowed || u.User != nil {
		return nil, &permanentError{fmt.Errorf("%w: refusing to send a request to %s: the token is only sent to %s",
			ErrForeignHost, got, p.allowed)}
	}
	return req.Next()
}

// idleTimeoutPolicy cancels a try when the server sends nothing for timeout: while waiting for
// the response headers (and the body of an error response, which azcore downloads), and during
// each read of a success body. Time between reads (the handler's) is not counted. A header
// timeout is an ordinary error, so azcore retries it; a body timeout reaches the reader.
type idleTimeoutPolicy struct{ timeout time.Duration }

func (p idleTimeoutPolicy) Do(req *policy.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Raw().Context())
	w := newIdleWatch(p.timeout, cancel)
	resp, err := req.Clone(ctx).Next()
	fired := w.stop()
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		cancel()
		if fired {
			return nil, fmt.Errorf("%w: no response from the server within %s", ErrIdleTimeout, p.timeout)
		}
		return nil, err
	}
	resp.Body = &idleBody{rc: resp.Body, w: w, cancel: cancel}
	return resp, nil
}

// idleWatch is a restartable watchdog that cancels a context when it fires. It starts armed.
type idleWatch struct {
	timeout time.Duration
	timer   *time.Timer
	fired   atomic.Bool
}

func newIdleWatch(timeout time.Duration, cancel context.CancelFunc) *idleWatch {
	w := &idleWatch{timeout: timeout}
	w.timer = time.AfterFunc(timeout, func() {
		w.fired.Store(true) // before cancel, so a read failing from the cancel sees it
		cancel()
	})
	return w
}

func (w *idleWatch) start() { w.timer.Reset(w.timeout) }

// stop stops the watchdog and reports whether it has ever fired.
func (w *idleWatch) stop() bool {
	w.timer.Stop()
	return w.fired.Load()
}

// idleBody arms the watchdog for the duration of each Read.
type idleBody struct {
	rc     io.ReadCloser
	w      *idleWatch
	cancel context.CancelFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.w.start()
	n, err := b.rc.Read(p)
	if b.w.stop() && err != nil && err != io.EOF {
		return n, fmt.Errorf("%w: no data from the server for %s", ErrIdleTimeout, b.w.timeout)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.w.stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

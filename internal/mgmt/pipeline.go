package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Retry defaults: the billing APIs ask for 60 s waits when throttling, so the largest accepted
// hint must exceed that, and a list of pages or a report is worth several patient retries.
const (
	defaultMaxRetries    = 6                 // tries after the first
	defaultRetryDelay    = 4 * time.Second   // base of the exponential backoff without a hint
	defaultMaxRetryDelay = 120 * time.Second // largest backoff and largest Retry-After hint honoured
)

// DefaultBodyIdleTimeout bounds how long one read may wait for data when a client's options
// leave it zero: for response headers, and for each read of a body. The API must answer within
// about 30 s, so two minutes of silence means a stalled connection.
const DefaultBodyIdleTimeout = 2 * time.Minute

// defaultRetryStatusCodes are the statuses azcore retries: timeouts, throttling and transient
// server errors. 4xx other than 408/429 are permanent.
var defaultRetryStatusCodes = []int{
	http.StatusRequestTimeout,      // 408
	http.StatusTooManyRequests,     // 429
	http.StatusInternalServerError, // 500
	http.StatusBadGateway,          // 502
	http.StatusServiceUnavailable,  // 503
	http.StatusGatewayTimeout,      // 504
}

// RetryDefaults returns r with its zero fields filled: MaxRetries 6, RetryDelay 4 s,
// MaxRetryDelay 120 s, StatusCodes 408/429/500/502/503/504. Set fields are kept as they are.
func RetryDefaults(r policy.RetryOptions) policy.RetryOptions {
	if r.MaxRetries == 0 {
		r.MaxRetries = defaultMaxRetries
	}
	if r.RetryDelay == 0 {
		r.RetryDelay = defaultRetryDelay
	}
	if r.MaxRetryDelay == 0 {
		r.MaxRetryDelay = defaultMaxRetryDelay
	}
	if r.StatusCodes == nil {
		r.StatusCodes = slices.Clone(defaultRetryStatusCodes)
	}
	return r
}

// Timeouts of the default transport: connection setup, TLS handshake and pooled idle connections.
const (
	dialTimeout         = 30 * time.Second
	dialKeepAlive       = 30 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
	// ReadBufferSize is the read buffer of a connection: pages are megabytes of JSON, and the
	// transport's default of 4 KiB costs a read(2) per 4 KiB of them.
	ReadBufferSize = 256 << 10
)

// refuseRedirect makes an http.Client return the 3xx response itself instead of following it.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NoRedirects returns the transport to use: a default client that never follows redirects when
// t is nil, a copy of t with redirects disabled when t is an *http.Client, or t itself (any
// other Transporter must not follow redirects on its own). A refused redirect reaches the
// caller as the 3xx response, which NewAPIError turns into an error wrapping ErrRedirect.
func NoRedirects(t policy.Transporter) policy.Transporter {
	switch c := t.(type) {
	case nil:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: dialKeepAlive}).DialContext
		tr.TLSHandshakeTimeout = tlsHandshakeTimeout
		tr.IdleConnTimeout = idleConnTimeout
		tr.ForceAttemptHTTP2 = true
		tr.ReadBufferSize = ReadBufferSize
		return &http.Client{Transport: tr, CheckRedirect: refuseRedirect}
	case *http.Client:
		cp := *c
		cp.CheckRedirect = refuseRedirect
		return &cp
	default:
		return t
	}
}

// Permanent returns err marked so that azcore's retry policy does not retry it: the result has
// the NonRetriable method azcore checks for, and unwraps to err.
func Permanent(err error) error { return &permanentError{err: err} }

// permanentError is an error with azcore's NonRetriable marker.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// NonRetriable tells azcore's retry policy to stop.
func (e *permanentError) NonRetriable() {}

// TokenPolicies returns the per-retry policies that end a management pipeline, in this order:
// the host guard for endpoint, the bearer-token policy for cred (scope TokenScope(endpoint)),
// then the idle watchdog with timeout idle. The order is the point: the token is attached at
// the last moment and only after the host check, and the watchdog comes last so that time
// spent in earlier policies (a rate budget) is not counted as a stalled server. Put them after
// any other per-retry policies. Plain http endpoints get the token too; ParseEndpoint accepts
// http only on a loopback address.
func TokenPolicies(cred azcore.TokenCredential, endpoint Origin, idle time.Duration) []policy.Policy {
	return append(GuardPolicies(cred, endpoint), NewIdleTimeoutPolicy(idle))
}

// NewHostGuardPolicy returns a policy that fails, without sending it, any request whose scheme
// or host differs from allowed or whose URL carries user information. Placed before the
// bearer-token policy, it keeps the token on the configured endpoint. The error wraps
// ErrForeignHost and is Permanent.
func NewHostGuardPolicy(allowed Origin) policy.Policy { return hostGuardPolicy{allowed: allowed} }

type hostGuardPolicy struct{ allowed Origin }

func (p hostGuardPolicy) Do(req *policy.Request) (*http.Response, error) {
	u := req.Raw().URL
	if got := OriginOf(u); got != p.allowed || u.User != nil {
		return nil, Permanent(fmt.Errorf("%w: refusing to send a request to %s: the token is only sent to %s",
			ErrForeignHost, got, p.allowed))
	}
	return req.Next()
}

// NewIdleTimeoutPolicy returns a policy that cancels a try when the server sends nothing for
// timeout (which must be positive): while waiting for the response headers (and the body of an
// error response, which azcore downloads), and during each read of a streamed body. Time
// between reads (the consumer's) is not counted. A header timeout is an ordinary error, so
// azcore retries it; a body timeout reaches the reader. Both wrap ErrIdleTimeout.
func NewIdleTimeoutPolicy(timeout time.Duration) policy.Policy {
	return idleTimeoutPolicy{timeout: timeout}
}

type idleTimeoutPolicy struct{ timeout time.Duration }

func (p idleTimeoutPolicy) Do(req *policy.Request) (*http.Response, error) {
	return watchIdle(req.Raw().Context(), p.timeout, func(ctx context.Context) (*http.Response, error) {
		return req.Clone(ctx).Next()
	})
}

// watchIdle sends a request through send with a context that the idle watchdog cancels when the
// server sends nothing for timeout, and returns the response with its body watched read by read.
func watchIdle(parent context.Context, timeout time.Duration, send func(context.Context) (*http.Response, error)) (*http.Response, error) {
	ctx, cancel := context.WithCancel(parent)
	w := newIdleWatch(timeout, cancel)
	resp, err := send(ctx)
	fired := w.stop()
	if err != nil {
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		cancel()
		if fired {
			return nil, fmt.Errorf("%w: no response from the server within %s", ErrIdleTimeout, timeout)
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

// ErrBrokenBody is wrapped by every error reading a response body through GuardTransport other
// than its clean end: a connection reset, an idle timeout, a body shorter than its length.
var ErrBrokenBody = errors.New("response body broke off")

// ErrBodyTooLarge means a response body exceeded the limit its client reads whole (a page of
// usage records is at most 8 MB); it is not retried.
var ErrBodyTooLarge = errors.New("response body too large")

// GuardPolicies returns the per-retry policies that end a management pipeline whose transport
// is wrapped with GuardTransport: the host guard for endpoint, then the bearer-token policy for
// cred (see TokenPolicies, which adds the idle watchdog as a policy instead).
func GuardPolicies(cred azcore.TokenCredential, endpoint Origin) []policy.Policy {
	return []policy.Policy{
		NewHostGuardPolicy(endpoint),
		runtime.NewBearerTokenPolicy(cred, []string{TokenScope(endpoint)}, &policy.BearerTokenOptions{
			InsecureAllowCredentialWithHTTP: endpoint.scheme == "http",
		}),
	}
}

// GuardTransport wraps t (see NoRedirects) with the idle watchdog and, when maxBody is positive,
// a limit on the bytes of a response body. Unlike NewIdleTimeoutPolicy, it sits below azcore's
// body download, so a body that azcore reads whole (the default, without SkipBodyDownload) is
// watched read by read: a server silent for idle while sending headers or body fails that try
// with an error wrapping ErrIdleTimeout, which azcore's retry policy retries like any broken
// body of a GET. A body longer than maxBody fails with a Permanent error wrapping
// ErrBodyTooLarge. idle must be positive.
func GuardTransport(t policy.Transporter, idle time.Duration, maxBody int64) policy.Transporter {
	return &guardTransport{next: t, idle: idle, maxBody: maxBody}
}

type guardTransport struct {
	next    policy.Transporter
	idle    time.Duration
	maxBody int64
}

func (g *guardTransport) Do(req *http.Request) (*http.Response, error) {
	resp, err := watchIdle(req.Context(), g.idle, func(ctx context.Context) (*http.Response, error) {
		return g.next.Do(req.WithContext(ctx))
	})
	if err != nil {
		return nil, err
	}
	var body io.ReadCloser = brokenBody{resp.Body}
	if g.maxBody > 0 {
		body = &cappedBody{ReadCloser: body, left: g.maxBody, max: g.maxBody}
	}
	resp.Body = body
	return resp, nil
}

// brokenBody marks read errors other than io.EOF with ErrBrokenBody.
type brokenBody struct{ io.ReadCloser }

func (b brokenBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", ErrBrokenBody, err)
	}
	return n, err
}

// cappedBody fails a read past max bytes.
type cappedBody struct {
	io.ReadCloser
	left, max int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One more byte tells a body of exactly max bytes from a longer one.
		var one [1]byte
		if n, err := c.ReadCloser.Read(one[:]); n == 0 && err != nil {
			return 0, err
		}
		return 0, Permanent(fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, c.max))
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

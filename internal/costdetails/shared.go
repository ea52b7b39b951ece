package costdetails

// The pieces in this file repeat unexported code of internal/consumption (endpoint validation,
// the host guard in front of the bearer token, redirect refusal, retry defaults, the idle
// watchdog and the error body reader), so both clients apply the same rules. They can go once
// consumption exports them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/consumption"
)

// Retry defaults, the same as internal/consumption's: the APIs ask for 60 s waits when
// throttling, so the largest accepted hint must exceed that.
const (
	defaultMaxRetries    = 6                 // tries after the first
	defaultRetryDelay    = 4 * time.Second   // base of the exponential backoff without a hint
	defaultMaxRetryDelay = 120 * time.Second // largest backoff and largest Retry-After hint honoured
)

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

// retryDefaults fills the zero fields of r with the defaults.
func retryDefaults(r policy.RetryOptions) policy.RetryOptions {
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
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
)

// refuseRedirect makes an http.Client return the 3xx response itself instead of following it.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// noRedirects returns the transport to use: a default client that never follows redirects when
// t is nil, a copy of t with redirects disabled when t is an *http.Client, or t itself.
func noRedirects(t policy.Transporter) policy.Transporter {
	switch c := t.(type) {
	case nil:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = tlsHandshakeTimeout
		tr.IdleConnTimeout = idleConnTimeout
		tr.ForceAttemptHTTP2 = true
		return &http.Client{Transport: tr, CheckRedirect: refuseRedirect}
	case *http.Client:
		cp := *c
		cp.CheckRedirect = refuseRedirect
		return &cp
	default:
		return t
	}
}

// origin is the scheme and host:port a URL is sent to, normalised for comparison.
type origin struct {
	scheme string // lower case
	host   string // lower case, with the port, default port removed
}

func (o origin) String() string { return o.scheme + "://" + o.host }

// parseEndpoint validates an endpoint and returns it normalised (scheme://host[:port], lower
// case, no trailing slash) with its origin.
func parseEndpoint(s string) (string, origin, error) {
	if s == "" {
		s = DefaultEndpoint
	}
	fail := func(why string) (string, origin, error) {
		return "", origin{}, fmt.Errorf("endpoint %q: %s (want https://host[:port], or http://127.0.0.1:port for a local sandbox)", s, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fail("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fail("scheme must be https")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return fail("no host")
	case u.User != nil:
		return fail("must not contain user information")
	case u.Path != "" && u.Path != "/":
		return fail("must not contain a path")
	case u.RawQuery != "" || u.ForceQuery:
		return fail("must not contain a query")
	case u.Fragment != "":
		return fail("must not contain a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail("invalid port")
		}
	}
	org := originOf(u)
	if org.scheme == "http" && !isLoopback(u.Hostname()) {
		return fail("plain http is allowed only on a loopback address")
	}
	return org.String(), org, nil
}

// originOf returns the normalised origin of u.
func originOf(u *url.URL) origin {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return origin{scheme: scheme, host: host}
}

// isLoopback reports whether host is localhost or a loopback IP literal (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// permanentError marks an error that azcore's retry policy must not retry (it has the
// NonRetriable method azcore checks for).
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
			consumption.ErrForeignHost, got, p.allowed)}
	}
	return req.Next()
}

// idleTimeoutPolicy cancels a try when the server sends nothing for timeout: while waiting for
// the response headers (and an error body, which azcore downloads), and during each read of a
// streamed body. Time between reads is not counted. A header timeout is an ordinary error, so
// azcore retries it; a body timeout reaches the reader.
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
			return nil, fmt.Errorf("%w: no response from the server within %s", consumption.ErrIdleTimeout, p.timeout)
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
		return n, fmt.Errorf("%w: no data from the server for %s", consumption.ErrIdleTimeout, b.w.timeout)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.w.stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

// Bounds on error bodies: how much is read to find the error code and message, and how much of
// a body that is not a JSON error goes into the message.
const (
	maxErrorBody    = 8 << 10
	maxErrorExcerpt = 512
)

// APIError is a response with an unexpected status from the management endpoint or the blob
// host. It wraps the *azcore.ResponseError (errors.As works for either type); its message
// carries the status, the API's error code and message (or a bounded excerpt of a body that is
// not a JSON error), the request id and the URL with secrets (SAS signatures) removed.
type APIError struct {
	Method     string
	URL        string // redacted with consumption.RedactURL
	StatusCode int
	Status     string // e.g. "400 Bad Request"
	Code       string // error.code of the body, or the x-ms-error-code header
	Message    string // error.message of the body
	Excerpt    string // at most 512 bytes of a body that is not a JSON error
	RequestID  string // x-ms-request-id

	resp *azcore.ResponseError
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", e.Method, e.URL, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, ": code %q", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Excerpt != "" {
		fmt.Fprintf(&b, ": body %q", e.Excerpt)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the *azcore.ResponseError.
func (e *APIError) Unwrap() error { return e.resp }

// Permanent reports whether repeating the request cannot help: redirects and 4xx other than
// 408 (timeout) and 429 (throttled).
func (e *APIError) Permanent() bool {
	switch {
	case e.StatusCode >= 300 && e.StatusCode < 400:
		return true
	case e.StatusCode == http.StatusRequestTimeout, e.StatusCode == http.StatusTooManyRequests:
		return false
	default:
		return e.StatusCode >= 400 && e.StatusCode < 500
	}
}

// newAPIError builds the error for a response with an unexpected status. It reads at most
// maxErrorBody bytes of the body and gives azcore a sanitised copy of the response: bounded
// body, redacted URL and no Authorization header.
func newAPIError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{StatusCode: resp.StatusCode, Status: resp.Status, RequestID: resp.Header.Get(consumption.HeaderRequestID)}
	if e.Status == "" {
		e.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	safe := *resp
	safe.Body = io.NopCloser(bytes.NewReader(body))
	if req := resp.Request; req != nil {
		e.Method = req.Method
		e.URL = consumption.RedactURL(req.URL.String())
		r := req.Clone(req.Context())
		r.Header.Del("Authorization")
		if u, err := url.Parse(e.URL); err == nil {
			r.URL = u
		}
		safe.Request = r
	}
	var ok bool
	e.Code, e.Message, ok = parseErrorBody(body)
	if !ok && len(bytes.TrimSpace(body)) > 0 {
		e.Excerpt = excerpt(body)
	}
	var re *azcore.ResponseError
	if errors.As(runtime.NewResponseError(&safe), &re) {
		e.resp = re
		if e.Code == "" {
			e.Code = re.ErrorCode
		}
	} else {
		e.resp = &azcore.ResponseError{StatusCode: resp.StatusCode, ErrorCode: e.Code, RawResponse: &safe}
	}
	return e
}

// errorDetail is the {code, message} of an ARM error body. code is a string in the spec; a
// number is accepted too.
type errorDetail struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
}

// code returns the code as text.
func (d errorDetail) code() string {
	var s string
	if err := json.Unmarshal(d.Code, &s); err != nil {
		s = string(bytes.Trim(d.Code, `"`))
	}
	return s
}

// parseErrorBody extracts code and message from {"error":{"code","message"}} (or the same
// members at the top level). ok is false when the body is not such an object.
func parseErrorBody(body []byte) (code, message string, ok bool) {
	var v struct {
		Error *errorDetail `json:"error"`
		errorDetail
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", "", false
	}
	d := v.errorDetail
	if v.Error != nil {
		d = *v.Error
	}
	if len(d.Code) == 0 && d.Message == "" {
		return "", "", false
	}
	return d.code(), d.Message, true
}

// excerpt returns at most maxErrorExcerpt bytes of body, cut on a rune boundary, with "…"
// appended when cut.
func excerpt(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) <= maxErrorExcerpt {
		return string(body)
	}
	cut := maxErrorExcerpt - len("…")
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	return string(body[:cut]) + "…"
}

// redactURLError rewrites the URL inside a *url.Error (the http.Client's error type, which
// quotes the full request URL) so a SAS signature cannot leak through an error message.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = consumption.RedactURL(ue.URL)
	}
	return err
}

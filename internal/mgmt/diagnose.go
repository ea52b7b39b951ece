package mgmt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/rs/zerolog"
)

// Diagnosis names the cause of a failed try for the person running the exporter, and what to
// check.
type Diagnosis struct {
	// Cause is a short stable name: connection_refused, dns, tls_trust, unauthorized, forbidden,
	// throttled, server_error, network.
	Cause string
	// Permanent says that trying again cannot help: the configuration or the credential is wrong.
	Permanent bool
	// Check says what to look at.
	Check string
}

// Diagnose classifies the outcome of one try: a transport error, or a response with a status
// that is not success. It returns false for outcomes that need no diagnosis (success, and
// errors it does not recognise, such as a cancelled context).
func Diagnose(resp *http.Response, err error) (Diagnosis, bool) {
	if err != nil {
		var dnsErr *net.DNSError
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		var invalid x509.CertificateInvalidError
		var verify *tls.CertificateVerificationError
		var recordHeader tls.RecordHeaderError
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return Diagnosis{"connection_refused", true, "nothing listens at the management endpoint: check USAGE_EXPORT_MANAGEMENT_ENDPOINT (host and port) and that the service is running"}, true
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return Diagnosis{"dns", true, "the endpoint's host name does not resolve: check USAGE_EXPORT_MANAGEMENT_ENDPOINT for a typo and the machine's DNS"}, true
		case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &verify):
			return Diagnosis{"tls_trust", true, "the endpoint's TLS certificate is not trusted: check USAGE_EXPORT_MANAGEMENT_ENDPOINT, and for the sandbox (--tls) pass its certificate with USAGE_EXPORT_CA_FILE / --ca-file"}, true
		case errors.As(err, &recordHeader) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
			return Diagnosis{"tls_trust", true, "the endpoint does not speak TLS: check the scheme of USAGE_EXPORT_MANAGEMENT_ENDPOINT (http only on loopback)"}, true
		case isTimeout(err):
			return Diagnosis{"network", false, "the endpoint did not answer in time; retrying"}, true
		case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
			return Diagnosis{"network", false, "the connection to the endpoint failed; retrying"}, true
		}
		return Diagnosis{}, false
	}
	if resp == nil {
		return Diagnosis{}, false
	}
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized:
		return Diagnosis{"unauthorized", true, "the endpoint refused the credential (401): check the token (USAGE_EXPORT_TOKEN / _TOKEN_FILE) or the managed identity (AZURE_CLIENT_ID), and that the token is for this endpoint"}, true
	case s == http.StatusForbidden:
		return Diagnosis{"forbidden", true, "the credential may not read this scope (403): grant the identity a billing reader role on the scope (see docs/deployment.md)"}, true
	case s == http.StatusTooManyRequests:
		return Diagnosis{"throttled", false, "the service throttles (429); waiting as it asks, within the rate budget"}, true
	case s == http.StatusRequestTimeout || s >= 500:
		return Diagnosis{"server_error", false, fmt.Sprintf("the service answered %d; retrying", s)}, true
	}
	return Diagnosis{}, false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// DiagnosedError is a transport error with its diagnosis; it is permanent (azcore's retry policy
// stops at once) when the diagnosis is.
type DiagnosedError struct {
	Err       error
	Diagnosis Diagnosis
}

func (e *DiagnosedError) Error() string { return e.Err.Error() + " (" + e.Diagnosis.Check + ")" }
func (e *DiagnosedError) Unwrap() error { return e.Err }

// permanentDiagnosed adds azcore's NonRetriable marker.
type permanentDiagnosed struct{ d *DiagnosedError }

func (e *permanentDiagnosed) Error() string { return e.d.Error() }
func (e *permanentDiagnosed) Unwrap() error { return e.d }

// NonRetriable tells azcore's retry policy to stop.
func (e *permanentDiagnosed) NonRetriable() {}

// diagnoseRepeat is how long the policy stays quiet about a cause it has reported: the first
// occurrence is said at once, repeats within this time go to debug.
const diagnoseRepeat = time.Minute

// DiagnoseOptions configure a Diagnoser.
type DiagnoseOptions struct {
	// StopAfterPermanent ends every other call of the Diagnoser's lifetime once a call has
	// failed for a reason that holds for the whole endpoint (connection refused, unknown host,
	// untrusted certificate, 401): later calls fail at once without a request, and calls
	// waiting in the policies between Guard and Policy (a rate budget) stop waiting. For
	// one-shot runs (the CLI); a long-lived server leaves it off, since the endpoint or the
	// credential may be fixed while it runs.
	StopAfterPermanent bool
}

// Diagnoser says why calls fail (Policy) and, with StopAfterPermanent, stops a run's other
// calls after an endpoint-wide permanent failure (Guard). It is safe for concurrent use.
type Diagnoser struct {
	stopAfter bool
	mu        sync.Mutex
	last      map[string]time.Time
	stop      *DiagnosedError
	waiting   map[uint64]context.CancelCauseFunc
	nextID    uint64
}

// NewDiagnoser returns a Diagnoser; nil options mean none.
func NewDiagnoser(o *DiagnoseOptions) *Diagnoser {
	d := &Diagnoser{last: map[string]time.Time{}, waiting: map[uint64]context.CancelCauseFunc{}}
	if o != nil {
		d.stopAfter = o.StopAfterPermanent
	}
	return d
}

// NewDiagnosePolicy returns a Diagnoser's Policy without the stop (a long-lived server's).
func NewDiagnosePolicy() policy.Policy { return NewDiagnoser(nil).Policy() }

// Policy returns the per-retry policy that says why a try failed, so that a person sees the
// cause within seconds instead of after the retries: a permanent cause (connection refused,
// unknown host, untrusted certificate, 401, 403) is logged at error level with what to check, and
// a transport error of that kind is made permanent so that azcore does not retry it; a transient
// cause (429, 5xx, timeout, reset) keeps its retries and its first occurrence is logged at info.
// Each cause is logged again at most once per minute; repeats go to debug. The logger is the
// request context's (zerolog.Ctx). Put it among the caller's per-retry policies, after any that
// wait (a rate budget), so that it sees each try's own outcome.
func (d *Diagnoser) Policy() policy.Policy { return diagnosePolicy{d} }

// Guard returns the per-retry policy to put before the waiting ones: with StopAfterPermanent it
// fails a call at once when the run has stopped, and lets a stop end the call's wait.
func (d *Diagnoser) Guard() policy.Policy { return guardPolicy{d} }

// endpointWide says whether a permanent cause holds for every call to the endpoint (403 is
// about one scope, so it stops nothing).
func endpointWide(cause string) bool {
	switch cause {
	case "connection_refused", "dns", "tls_trust", "unauthorized":
		return true
	}
	return false
}

// stopped returns the error of a call made after the run stopped, or nil.
func (d *Diagnoser) stopped() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop == nil {
		return nil
	}
	return &permanentDiagnosed{&DiagnosedError{
		Err:       fmt.Errorf("not called: an earlier call failed for good: %w", d.stop.Err),
		Diagnosis: d.stop.Diagnosis,
	}}
}

// halt stops the run and ends the waits of the other guarded calls (not the caller's own: its
// response body is still to be read).
func (d *Diagnoser) halt(e *DiagnosedError, self uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop != nil {
		return
	}
	d.stop = e
	for id, cancel := range d.waiting {
		if id != self {
			cancel(e)
		}
	}
}

type guardKey struct{}

type guardPolicy struct{ d *Diagnoser }

func (g guardPolicy) Do(req *policy.Request) (*http.Response, error) {
	if !g.d.stopAfter {
		return req.Next()
	}
	if err := g.d.stopped(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(req.Raw().Context())
	defer cancel(nil)
	g.d.mu.Lock()
	g.d.nextID++
	id := g.d.nextID
	g.d.waiting[id] = cancel
	g.d.mu.Unlock()
	defer func() {
		g.d.mu.Lock()
		delete(g.d.waiting, id)
		g.d.mu.Unlock()
	}()
	resp, err := req.WithContext(context.WithValue(ctx, guardKey{}, id)).Next()
	if err != nil && ctx.Err() != nil {
		if serr := g.d.stopped(); serr != nil {
			return nil, serr
		}
	}
	return resp, err
}

type diagnosePolicy struct{ d *Diagnoser }

func (p diagnosePolicy) Do(req *policy.Request) (*http.Response, error) {
	if err := p.d.stopped(); err != nil {
		return nil, err
	}
	resp, err := req.Next()
	d, ok := Diagnose(resp, err)
	if !ok {
		return resp, err
	}
	raw := req.Raw()
	p.d.log(zerolog.Ctx(raw.Context()), d, raw, resp, err)
	if d.Permanent && p.d.stopAfter && endpointWide(d.Cause) {
		cause := err
		if cause == nil {
			cause = fmt.Errorf("%s %s", raw.Method, resp.Status)
		}
		self, _ := raw.Context().Value(guardKey{}).(uint64)
		p.d.halt(&DiagnosedError{Err: cause, Diagnosis: d}, self)
	}
	if err != nil && d.Permanent {
		return resp, &permanentDiagnosed{&DiagnosedError{Err: err, Diagnosis: d}}
	}
	return resp, err
}

func (p *Diagnoser) log(log *zerolog.Logger, d Diagnosis, req *http.Request, resp *http.Response, err error) {
	p.mu.Lock()
	now := time.Now()
	repeat := now.Sub(p.last[d.Cause]) < diagnoseRepeat
	if !repeat {
		p.last[d.Cause] = now
	}
	p.mu.Unlock()
	var ev *zerolog.Event
	switch {
	case repeat:
		ev = log.Debug()
	case d.Permanent:
		ev = log.Error()
	default:
		ev = log.Info()
	}
	ev = ev.Str("cause", d.Cause).Str("check", d.Check).Str("endpoint", req.URL.Scheme+"://"+req.URL.Host)
	if resp != nil {
		ev = ev.Int("status", resp.StatusCode)
	}
	if err != nil {
		ev = ev.Str("error", RedactURLError(err).Error())
	}
	if d.Permanent {
		ev.Msg("management API call failed; not retrying")
	} else {
		ev.Msg("management API call failed; retrying")
	}
}

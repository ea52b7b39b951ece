package consumption

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrForeignHost means a request (usually a nextLink) pointed at a scheme or host other than
	// the configured endpoint; it was not sent.
	ErrForeignHost = errors.New("not the configured endpoint")
	// ErrNextLinkLoop means the API returned a nextLink that was already followed.
	ErrNextLinkLoop = errors.New("nextLink loop")
	// ErrRedirect means the server answered with a redirect, which is never followed.
	ErrRedirect = errors.New("redirect refused")
	// ErrIdleTimeout means the server sent nothing for Options.BodyIdleTimeout.
	ErrIdleTimeout = errors.New("idle timeout")
	// ErrInvalidQuery is wrapped by every Query validation error.
	ErrInvalidQuery = errors.New("invalid usage query")
)

// HeaderRequestID is the response header ARM uses for the request id support asks for.
const HeaderRequestID = "x-ms-request-id"

// Bounds on error bodies: how much is read to find the error code and message, and how much of
// a body that is not a JSON error goes into the message.
const (
	maxErrorBody    = 8 << 10
	maxErrorExcerpt = 512
)

// APIError is a response with a status other than 200 or 204. It wraps the
// *azcore.ResponseError (errors.As works for either type); its message carries the status, the
// API's error code and message (or a bounded excerpt of a non-JSON body), the request id and the
// URL with secrets removed.
type APIError struct {
	Method     string
	URL        string // redacted with RedactURL
	StatusCode int
	Status     string // e.g. "400 Bad Request"
	Code       string // error.code of the body, or the x-ms-error-code header
	Message    string // error.message of the body
	Excerpt    string // at most 512 bytes of a body that is not a JSON error
	RequestID  string // x-ms-request-id
	Location   string // scheme://host of a refused redirect, or ""

	resp *azcore.ResponseError
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", e.Method, e.URL, e.Status)
	if e.Location != "" {
		fmt.Fprintf(&b, ": redirect to %s refused", e.Location)
	}
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

// Unwrap returns the *azcore.ResponseError, and ErrRedirect for a refused redirect.
func (e *APIError) Unwrap() []error {
	errs := []error{e.resp}
	if e.Location != "" {
		errs = append(errs, ErrRedirect)
	}
	return errs
}

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

// IsPermanent reports whether err is a failure that a later retry of the same query cannot fix:
// an APIError with a permanent status (400, 401, 403, 404, a redirect, …), a refused foreign
// host, a nextLink loop or an invalid query. Throttling, 5xx, idle timeouts, broken bodies,
// credential failures and context errors are not permanent.
func IsPermanent(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Permanent()
	}
	return errors.Is(err, ErrForeignHost) || errors.Is(err, ErrNextLinkLoop) || errors.Is(err, ErrInvalidQuery)
}

// PageError is a page that failed after its response had been accepted: the body broke off,
// stalled or was not valid JSON. RecordsDelivered records of the page were already handed to
// Handler.Record and cannot be taken back, so the caller must discard what it did with them and
// restart the page (or its whole chunk). List does not retry mid-body.
type PageError struct {
	Index            int // page index within the List call, from 0
	RecordsDelivered int
	RequestID        string
	Err              error
}

// Error implements error.
func (e *PageError) Error() string {
	s := fmt.Sprintf("usage page %d broke off after %d records were delivered (discard them and restart the page)", e.Index, e.RecordsDelivered)
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *PageError) Unwrap() error { return e.Err }

// secretParams are query parameters whose values RedactURL hides (compared case-insensitively):
// continuation and session tokens of nextLinks and SAS signatures.
var secretParams = []string{"$skiptoken", "skiptoken", "sessiontoken", "sig", "token", "access_token"}

// redacted replaces secret values.
const redacted = "REDACTED"

// RedactURL returns s with the values of secret query parameters ($skiptoken, sessiontoken,
// sig, …) and any user information replaced by REDACTED, for logs and error messages. The rest
// of the URL is kept as written. A string that does not parse keeps only what precedes '?'.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		base, _, found := strings.Cut(s, "?")
		base, _, _ = strings.Cut(base, "#")
		if i := strings.Index(base, "@"); i >= 0 {
			base = redacted + base[i:]
		}
		if found {
			return base + "?" + redacted
		}
		return base
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			name, err := url.QueryUnescape(k)
			if err != nil {
				name = k
			}
			for _, secret := range secretParams {
				if strings.EqualFold(name, secret) {
					parts[i] = k + "=" + redacted
					break
				}
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// redactURLError rewrites the URL inside a *url.Error (the http.Client's error type, which
// quotes the full request URL) so a continuation token cannot leak through an error message.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	return err
}

// newAPIError builds the error for a response that is neither 200 nor 204. It reads at most
// maxErrorBody bytes of the body and gives azcore a sanitised copy of the response: bounded body,
// redacted URL and no Authorization header.
func newAPIError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		RequestID:  resp.Header.Get(HeaderRequestID),
	}
	if e.Status == "" {
		e.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	safe := *resp
	safe.Body = io.NopCloser(bytes.NewReader(body))
	if req := resp.Request; req != nil {
		e.Method = req.Method
		e.URL = RedactURL(req.URL.String())
		r := req.Clone(req.Context())
		r.Header.Del("Authorization")
		if u, err := url.Parse(e.URL); err == nil {
			r.URL = u
		}
		safe.Request = r
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Location = "(no Location header)"
		if loc, err := resp.Location(); err == nil {
			e.Location = loc.Scheme + "://" + loc.Host
		}
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

// parseErrorBody extracts code and message from {"error":{"code","message"}} (or the same
// members at the top level). ok is false when the body is not such an object.
func parseErrorBody(body []byte) (code, message string, ok bool) {
	type detail struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	var v struct {
		Error *detail `json:"error"`
		detail
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", "", false
	}
	d := v.detail
	if v.Error != nil {
		d = *v.Error
	}
	if len(d.Code) == 0 && d.Message == "" {
		return "", "", false
	}
	// code is a string in the spec, but accept a number too.
	var s string
	if err := json.Unmarshal(d.Code, &s); err != nil {
		s = string(bytes.Trim(d.Code, `"`))
	}
	return s, d.Message, true
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

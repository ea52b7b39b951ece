package mgmt

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

// Bounds on error bodies: how much is read to find the error code and message, and how much of
// a body that is not a JSON error goes into the message.
const (
	maxErrorBody = 8 << 10
	// MaxErrorExcerpt is the most bytes of a body Excerpt returns (APIError.Excerpt included).
	MaxErrorExcerpt = 512
)

// APIError is a response with an unexpected status from the management endpoint or a blob host.
// It wraps the *azcore.ResponseError (errors.As works for either type); its message carries the
// status, the API's error code and message (or a bounded excerpt of a body that is not a JSON
// error), the request id and the URL with secrets removed.
type APIError struct {
	Method     string
	URL        string // redacted with RedactURL
	StatusCode int
	Status     string // e.g. "400 Bad Request"
	Code       string // error.code of the body, or the x-ms-error-code header
	Message    string // error.message of the body
	Excerpt    string // at most MaxErrorExcerpt bytes of a body that is not a JSON error
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

// NewAPIError builds the error for a response with an unexpected status. It reads at most 8 KiB
// of the body (the caller still closes it) and gives azcore a sanitised copy of the response:
// bounded body, redacted URL and no Authorization header. For a 3xx, Location is the scheme and
// host the server redirected to.
func NewAPIError(resp *http.Response) *APIError {
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
		e.Excerpt = Excerpt(body)
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

// ErrorDetail is the {code, message} of an ARM error body, and of the error member of an
// operation result. code is a string in the spec; a number is accepted too.
type ErrorDetail struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
}

// CodeText returns the code as text: the string, or the literal JSON of any other value.
func (d ErrorDetail) CodeText() string {
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
		Error *ErrorDetail `json:"error"`
		ErrorDetail
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", "", false
	}
	d := v.ErrorDetail
	if v.Error != nil {
		d = *v.Error
	}
	if len(d.Code) == 0 && d.Message == "" {
		return "", "", false
	}
	return d.CodeText(), d.Message, true
}

// Excerpt returns body without surrounding white space, cut to at most MaxErrorExcerpt bytes on
// a rune boundary with "…" appended when cut, for error messages.
func Excerpt(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) <= MaxErrorExcerpt {
		return string(body)
	}
	cut := MaxErrorExcerpt - len("…")
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	return string(body[:cut]) + "…"
}

// secretParams are query parameters whose values RedactURL hides (compared case-insensitively):
// continuation and session tokens of nextLinks and SAS signatures.
var secretParams = []string{"$skiptoken", "skiptoken", "sessiontoken", "sig", "token", "access_token"}

// redacted replaces secret values.
const redacted = "REDACTED"

// RedactURL returns s with the values of secret query parameters ($skiptoken, sessiontoken,
// sig, …) and any user information replaced by REDACTED, and without a fragment, for logs and
// error messages. The rest of the URL is kept as written. A string that does not parse keeps
// only what precedes '?'.
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

// RedactURLError rewrites, in place, the URL inside a *url.Error in err's chain (the
// http.Client's error type, which quotes the full request URL) with RedactURL, so a
// continuation token or SAS signature cannot leak through an error message. It returns err.
func RedactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	return err
}

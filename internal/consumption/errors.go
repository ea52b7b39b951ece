package consumption

import (
	"errors"

	"github.com/usage-export/usage-export/internal/mgmt"
)

// Sentinel errors, matched with errors.Is. ErrForeignHost, ErrRedirect and ErrIdleTimeout are
// internal/mgmt's, so errors from either billing client match them.
var (
	// ErrForeignHost means a request (usually a nextLink) pointed at a scheme or host other than
	// the configured endpoint; it was not sent.
	ErrForeignHost = mgmt.ErrForeignHost
	// ErrNextLinkLoop means the API returned a nextLink that was already followed.
	ErrNextLinkLoop = errors.New("nextLink loop")
	// ErrRedirect means the server answered with a redirect, which is never followed.
	ErrRedirect = mgmt.ErrRedirect
	// ErrIdleTimeout means the server sent nothing for Options.BodyIdleTimeout.
	ErrIdleTimeout = mgmt.ErrIdleTimeout
	// ErrInvalidQuery is wrapped by every Query validation error.
	ErrInvalidQuery = errors.New("invalid usage query")
	// ErrIncompletePage means a page's body was not a complete, valid page (it ended early, or
	// is not JSON); the page is requested again, and none of its records is delivered.
	ErrIncompletePage = errors.New("incomplete usage page")
	// ErrBodyTooLarge means a page was longer than MaxPageBytes; it is not retried.
	ErrBodyTooLarge = mgmt.ErrBodyTooLarge
)

// HeaderRequestID is the response header ARM uses for the request id support asks for.
const HeaderRequestID = mgmt.HeaderRequestID

// APIError is a response with a status other than 200 or 204 (see mgmt.APIError). It is the same
// type as the one internal/costdetails returns, so errors.As and IsPermanent recognise both.
type APIError = mgmt.APIError

// IsPermanent reports whether err is a failure that a later retry of the same query cannot fix:
// an APIError with a permanent status (400, 401, 403, 404, a redirect, …), a refused foreign
// host, a nextLink loop or an invalid query. Throttling, 5xx, idle timeouts, broken bodies,
// credential failures and context errors are not permanent.
func IsPermanent(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Permanent()
	}
	return errors.Is(err, ErrForeignHost) || errors.Is(err, ErrNextLinkLoop) || errors.Is(err, ErrInvalidQuery) ||
		errors.Is(err, ErrBodyTooLarge)
}

// RedactURL returns s with the values of secret query parameters ($skiptoken, sessiontoken,
// sig, …) and any user information replaced by REDACTED, for logs and error messages (see
// mgmt.RedactURL).
func RedactURL(s string) string { return mgmt.RedactURL(s) }

package consumption

import (
	"errors"

	"github.com/usage-export/usage-export/internal/mgmt"
)

// Sentinel errors, matched with errors.Is. The transport's (foreign host, redirect, idle timeout,
// body too large) are internal/mgmt's, so errors from either billing client match them.
var (
	// ErrNextLinkLoop means the API returned a nextLink that was already followed.
	ErrNextLinkLoop = errors.New("nextLink loop")
	// ErrInvalidQuery is wrapped by every Query validation error.
	ErrInvalidQuery = errors.New("invalid usage query")
	// ErrIncompletePage means a page's body was not a complete, valid page (it ended early, or
	// is not JSON); the page is requested again, and none of its records is delivered.
	ErrIncompletePage = errors.New("incomplete usage page")
)

// IsPermanent reports whether err is a failure that a later retry of the same query cannot fix:
// an mgmt.APIError with a permanent status (400, 401, 403, 404, a redirect, …), a refused foreign
// host, a nextLink loop or an invalid query. Throttling, 5xx, idle timeouts, broken bodies,
// credential failures and context errors are not permanent.
func IsPermanent(err error) bool {
	var ae *mgmt.APIError
	if errors.As(err, &ae) {
		return ae.Permanent()
	}
	return errors.Is(err, mgmt.ErrForeignHost) || errors.Is(err, ErrNextLinkLoop) || errors.Is(err, ErrInvalidQuery) ||
		errors.Is(err, mgmt.ErrBodyTooLarge)
}

package consumption

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
)

// List streams every record of q to h, page by page, following nextLink until the API returns
// none. Page N+1 is requested only after page N has been read and h.PageDone has returned.
//
// Each page is all or nothing for h: its body is read whole inside the azcore pipeline (at most
// MaxPageBytes) and parsed once as a complete page before any of its records reaches h.Record.
// So azcore's retry policy, the one retry layer, covers everything that can go wrong with a
// page: throttling, 5xx, connection errors and a silent server before the response, and also a
// body that breaks off (connection reset), stalls for Options.BodyIdleTimeout or ends early with
// incomplete JSON: the same link is requested again (bounded attempts with backoff, through the
// caller's per-retry policies, a rate budget among them), and the broken attempt's records were
// never delivered. A page still broken when the retries are spent is a *paging.PageError (no
// record of it delivered). Other errors: *mgmt.APIError for a status other than 200/204 (it wraps
// *azcore.ResponseError), and mgmt.ErrForeignHost, ErrNextLinkLoop, ErrInvalidQuery or
// mgmt.ErrBodyTooLarge, all checked with errors.Is/As. Errors returned by h are returned wrapped. No
// error message contains a continuation token.
func (c *Client) List(ctx context.Context, q Query, h paging.Handler) error {
	link, err := c.firstURL(q)
	if err != nil {
		return fmt.Errorf("listing usage details: %w", err)
	}
	seen := map[string]struct{}{link: {}}
	for index := 0; ; index++ {
		page, err := c.page(ctx, index, link, h)
		if err != nil {
			return fmt.Errorf("listing usage details: %w", err)
		}
		if page.NextLink != "" {
			if err := c.checkLink(page.NextLink); err != nil {
				return fmt.Errorf("listing usage details: nextLink of page %d (%s): %w", index, mgmt.RedactURL(page.NextLink), err)
			}
			if _, dup := seen[page.NextLink]; dup {
				return fmt.Errorf("listing usage details: nextLink of page %d (%s): %w", index, mgmt.RedactURL(page.NextLink),
					mgmt.Permanent(fmt.Errorf("%w: the link was already followed", ErrNextLinkLoop)))
			}
			seen[page.NextLink] = struct{}{}
		}
		if err := h.PageDone(ctx, page); err != nil {
			return fmt.Errorf("listing usage details: page %d done: %w", index, err)
		}
		if page.NextLink == "" {
			return nil
		}
		link = page.NextLink
	}
}

// page requests one page, read whole and checked by pagePolicy, and hands its records to h.
func (c *Client) page(ctx context.Context, index int, link string, h paging.Handler) (paging.Page, error) {
	rec := newPageRecorder(h)
	defer rec.release()
	req, err := runtime.NewRequest(withRecorder(ctx, rec), http.MethodGet, link)
	if err != nil {
		return paging.Page{}, fmt.Errorf("page %d: building request for %s: %w", index, mgmt.RedactURL(link), mgmt.RedactURLError(err))
	}
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := c.pipeline.Do(req)
	if err != nil {
		rid := ""
		if resp != nil {
			rid = resp.Header.Get(mgmt.HeaderRequestID)
			resp.Body.Close()
		}
		if errors.Is(err, ErrIncompletePage) || isBrokenBody(err) {
			return paging.Page{}, &paging.PageError{Index: index, RequestID: rid, Err: fmt.Errorf("GET %s: %w", mgmt.RedactURL(link), mgmt.RedactURLError(err))}
		}
		return paging.Page{}, fmt.Errorf("page %d: GET %s: %w", index, mgmt.RedactURL(link), mgmt.RedactURLError(err))
	}
	defer resp.Body.Close()

	p := paging.Page{Index: index, RequestID: resp.Header.Get(mgmt.HeaderRequestID), StatusCode: resp.StatusCode}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNoContent:
		return p, nil
	default:
		return paging.Page{}, fmt.Errorf("page %d: %w", index, mgmt.NewAPIError(resp))
	}
	n, err := rec.replay(ctx, h)
	p.Records, p.Bytes, p.NextLink = n, int64(len(*rec.body)), rec.next
	if err != nil {
		return paging.Page{}, fmt.Errorf("page %d: %w", index, err)
	}
	return p, nil
}

// isBrokenBody reports whether a pipeline error is a body that broke off or stalled (after the
// retries), as opposed to a request that got no response.
func isBrokenBody(err error) bool { return errors.Is(err, mgmt.ErrBrokenBody) }

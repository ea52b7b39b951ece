package consumption

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/arm"
)

// List streams every record of q to h, page by page, following nextLink until the API returns
// none. Page N+1 is requested only after page N has been read and h.PageDone has returned.
//
// Each request goes through the azcore pipeline, whose retry policy covers failures before a
// response body is handed over (throttling, 5xx, connection errors, a silent server). A body
// that breaks off, stalls for Options.BodyIdleTimeout or is not valid JSON is not retried: List
// returns a *PageError saying how many of the page's records were already delivered. Other
// errors: *APIError for a status other than 200/204 (it wraps *azcore.ResponseError), and
// ErrForeignHost, ErrNextLinkLoop or ErrInvalidQuery, all checked with errors.Is/As. Errors
// returned by h are returned wrapped. No error message contains a continuation token.
func (c *Client) List(ctx context.Context, q Query, h Handler) error {
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
				return fmt.Errorf("listing usage details: nextLink of page %d (%s): %w", index, RedactURL(page.NextLink), err)
			}
			if _, dup := seen[page.NextLink]; dup {
				return fmt.Errorf("listing usage details: nextLink of page %d (%s): %w", index, RedactURL(page.NextLink),
					arm.Permanent(fmt.Errorf("%w: the link was already followed", ErrNextLinkLoop)))
			}
			seen[page.NextLink] = struct{}{}
		}
		if err := h.PageDone(page); err != nil {
			return fmt.Errorf("listing usage details: page %d done: %w", index, err)
		}
		if page.NextLink == "" {
			return nil
		}
		link = page.NextLink
	}
}

// page requests one page and streams its records to h.
func (c *Client) page(ctx context.Context, index int, link string, h Handler) (Page, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := runtime.NewRequest(ctx, http.MethodGet, link)
	if err != nil {
		return Page{}, fmt.Errorf("page %d: building request for %s: %w", index, RedactURL(link), arm.RedactURLError(err))
	}
	req.Raw().Header.Set("Accept", "application/json")
	runtime.SkipBodyDownload(req) // stream the body; azcore would otherwise read it all first
	resp, err := c.pipeline.Do(req)
	if err != nil {
		return Page{}, fmt.Errorf("page %d: GET %s: %w", index, RedactURL(link), arm.RedactURLError(err))
	}
	defer resp.Body.Close()

	p := Page{Index: index, RequestID: resp.Header.Get(HeaderRequestID), StatusCode: resp.StatusCode}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNoContent:
		return p, nil
	default:
		return Page{}, fmt.Errorf("page %d: %w", index, arm.NewAPIError(resp))
	}

	body := &countingReader{r: resp.Body}
	next, n, err := ParsePage(body, h)
	p.Records, p.Bytes, p.NextLink = n, body.n, next
	if err != nil {
		var he *handlerError
		if errors.As(err, &he) {
			return Page{}, fmt.Errorf("page %d: %w", index, he.err)
		}
		return Page{}, &PageError{Index: index, RecordsDelivered: n, RequestID: p.RequestID, Err: arm.RedactURLError(err)}
	}
	return p, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

package costdetails

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
)

// Report requests the report r describes, waits for it and streams every row of every blob to
// h.Record as a JSON object (see ConvertCSV), calling h.PageDone after each blob with the
// blob's index, row count, bytes read and storage request id. A report with status
// NoDataFound (or a 204) has no rows: PageDone is called once with StatusCode 204. A time
// period that runs past today (UTC) is asked for up to today: later days have no data yet.
//
// Errors: a request that fails Validate wraps ErrInvalidRequest and no call is made; a Failed
// report is a *ReportError (ErrReportFailed); expired links wrap ErrReportExpired; a report not
// ready after MaxPolls polls wraps ErrPollLimit; an unexpected status is an *mgmt.APIError; a
// Location off the management endpoint wraps mgmt.ErrForeignHost; a blob body that
// breaks off (after maxResumes resumes) or is not valid CSV is a *paging.PageError saying
// how many of its rows were already delivered; errors from h are returned wrapped. No error
// message contains a blob link's SAS signature.
func (c *Client) Report(ctx context.Context, r Request, h paging.Handler) error {
	now := c.now()
	if today := day(now); r.End.After(today) && !r.Start.After(today) {
		r.End = today
	}
	if err := r.Validate(now); err != nil {
		return fmt.Errorf("cost details report: %w", err)
	}
	var links []string
	err := func() error {
		res, err := c.generate(ctx, r)
		if err != nil {
			return err
		}
		log := zerolog.Ctx(ctx)
		// The scope and metric are on the partition's logger.
		ev := log.Info().Str("covers", r.describe()).
			Str("operation", res.Name).Str("status", res.Status)
		if res.Manifest != nil {
			ev = ev.Int("blobs", len(res.Manifest.Blobs)).Int64("bytes", res.Manifest.ByteCount)
			for _, b := range res.Manifest.Blobs {
				links = append(links, b.BlobLink)
			}
		}
		ev.Str("valid_till", res.ValidTill).Msg("cost details report ready")
		if res.Status == StatusNoDataFound || (res.Manifest != nil && len(res.Manifest.Blobs) == 0) {
			if err := h.PageDone(ctx, paging.Page{StatusCode: http.StatusNoContent}); err != nil {
				return fmt.Errorf("empty report done: %w", err)
			}
			return nil
		}
		return c.download(ctx, res, h)
	}()
	if err != nil {
		return scrub(fmt.Errorf("cost details report for %s (%s, %s): %w", r.Scope, r.Metric, r.describe(), err), links)
	}
	return nil
}

// scrub is the last guard against a SAS signature in an error message: if the message holds the
// query of any blob link (or its sig value), the error is wrapped so that Error() shows it
// redacted. errors.Is and errors.As still see the original chain.
func scrub(err error, links []string) error {
	msg := err.Error()
	replaced := msg
	for _, l := range links {
		u, perr := url.Parse(l)
		if perr != nil {
			if _, q, ok := strings.Cut(l, "?"); ok && q != "" {
				replaced = strings.ReplaceAll(replaced, q, "REDACTED")
			}
			continue
		}
		if u.RawQuery != "" {
			replaced = strings.ReplaceAll(replaced, u.RawQuery, "REDACTED")
		}
		for k, vs := range u.Query() {
			if !strings.EqualFold(k, "sig") {
				continue
			}
			for _, v := range vs {
				if v != "" {
					replaced = strings.ReplaceAll(replaced, v, "REDACTED")
					replaced = strings.ReplaceAll(replaced, url.QueryEscape(v), "REDACTED")
				}
			}
		}
	}
	if replaced == msg {
		return err
	}
	return &scrubbedError{msg: replaced, err: err}
}

// scrubbedError shows a redacted message for err.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// IsPermanent reports whether err is a failure that repeating the same request cannot fix: an
// invalid request, an *mgmt.APIError with a permanent status, or a refused foreign host. Failed
// and expired reports, poll limits, throttling, 5xx and broken blobs are worth another run.
func IsPermanent(err error) bool {
	var ae *mgmt.APIError
	if errors.As(err, &ae) {
		return ae.Permanent()
	}
	return errors.Is(err, ErrInvalidRequest) || errors.Is(err, mgmt.ErrForeignHost)
}

package costdetails

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
)

// download streams every blob of a completed report to h, one PageDone per blob.
func (c *Client) download(ctx context.Context, res *Result, h paging.Handler) error {
	m := res.Manifest
	if m == nil {
		return fmt.Errorf("report %s completed without a manifest", res.Name)
	}
	if m.DataFormat != "" && !strings.EqualFold(m.DataFormat, DataFormatCSV) {
		return fmt.Errorf("report %s: data format %q is not %s", res.Name, m.DataFormat, DataFormatCSV)
	}
	log := zerolog.Ctx(ctx)
	if m.BlobCount != len(m.Blobs) {
		log.Warn().Str("operation", res.Name).Int("blob_count", m.BlobCount).Int("blobs", len(m.Blobs)).
			Msg("cost details manifest blobCount differs from the blobs listed; downloading the blobs listed")
	}
	validTill, hasExpiry := res.validTill()
	conv := &converter{}
	for i, b := range m.Blobs {
		if hasExpiry && !c.now().Before(validTill) {
			return fmt.Errorf("blob %d of %d: links valid until %s: %w", i+1, len(m.Blobs), res.ValidTill, ErrReportExpired)
		}
		page, err := c.downloadBlob(ctx, i, b, conv, h)
		if err != nil {
			if hasExpiry && !c.now().Before(validTill) {
				err = fmt.Errorf("%w (%w)", err, ErrReportExpired)
			}
			return fmt.Errorf("blob %d of %d: %w", i+1, len(m.Blobs), err)
		}
		if b.ByteCount > 0 && page.Bytes != b.ByteCount {
			log.Warn().Str("operation", res.Name).Int("blob", i).Int64("bytes", page.Bytes).Int64("manifest_bytes", b.ByteCount).
				Msg("cost details blob size differs from the manifest")
		}
		log.Debug().Str("operation", res.Name).Int("blob", i).Int("records", page.Records).Int64("bytes", page.Bytes).
			Msg("cost details blob converted")
		if err := h.PageDone(ctx, page); err != nil {
			return fmt.Errorf("blob %d done: %w", i+1, err)
		}
	}
	return nil
}

// handlerError marks an error returned by the Handler, so it is not reported as a broken blob.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// downloadBlob streams one blob through the CSV converter to h.Record.
func (c *Client) downloadBlob(ctx context.Context, index int, b Blob, conv *converter, h paging.Handler) (paging.Page, error) {
	u, err := checkBlobLink(b.BlobLink)
	if err != nil {
		return paging.Page{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body := &blobReader{c: c, link: u.String(), want: b.ByteCount}
	defer body.close()
	read := readerFunc(func(p []byte) (int, error) { return body.read(ctx, p) })
	n, err := conv.convert(read, func(obj []byte) error {
		if err := h.Record(ctx, obj); err != nil {
			return &handlerError{err}
		}
		return nil
	})
	page := paging.Page{Index: index, Records: n, Bytes: body.off, RequestID: body.requestID, StatusCode: http.StatusOK}
	if err != nil {
		var he *handlerError
		switch {
		case errors.As(err, &he):
			return page, he.err
		case body.opened:
			return page, &paging.PageError{Index: index, RecordsDelivered: n, RequestID: body.requestID, Err: err}
		default:
			return page, err // the blob could not be fetched: nothing was delivered
		}
	}
	return page, nil
}

// checkBlobLink validates a manifest blob link: an absolute https URL (http only on a loopback
// address) without user information. The error never contains the link's query.
func checkBlobLink(link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("blob link %s is not a URL", mgmt.RedactURL(link))
	}
	switch {
	case u.Scheme != "https" && !(u.Scheme == "http" && mgmt.IsLoopback(u.Hostname())):
		return nil, fmt.Errorf("blob link %s: want https (plain http only on a loopback address)", mgmt.RedactURL(link))
	case u.Host == "" || u.User != nil:
		return nil, fmt.Errorf("blob link %s: want a host and no user information", mgmt.RedactURL(link))
	}
	return u, nil
}

// blobReader reads a blob body through the credential-free pipeline. When the body breaks off,
// stalls, or ends before the byte count the report's manifest gives it (a truncated body with
// a consistent Content-Length), it waits a backoff and asks for the rest with a Range request
// from the byte where it stopped (and If-Match on the blob's ETag, so the rest belongs to the
// same blob), at most maxResumes times, so a broken connection late in a 2 GB blob does not cost
// the whole report. The converter reads one continuous stream of the blob's bytes: every row
// is delivered once, whole, whatever the breaks. azcore's retry policy retries each request
// (the first and every resume) before its body is handed over.
type blobReader struct {
	c      *Client
	link   string // secret: never logged or put in an error as is
	body   io.ReadCloser
	opened bool  // a response was accepted (bytes may have been delivered)
	off    int64 // bytes delivered
	want   int64 // the blob's size from the report manifest; 0 when unknown
	// resumedAtManifest is the offset of a resume asked for only because the body ended before
	// want: a 416 answer there means the manifest overstated the size, not a broken body.
	resumedAtManifest int64
	etag              string
	resumes           int
	requestID         string
}

// read reads the blob into p (as io.Reader.Read), resuming a broken body.
func (r *blobReader) read(ctx context.Context, p []byte) (int, error) {
	for {
		if r.body == nil {
			if err := r.open(ctx); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if err == io.EOF && r.want > 0 && r.off < r.want {
			err = fmt.Errorf("%w: the body ended at byte %d of the %d the manifest gives", io.ErrUnexpectedEOF, r.off, r.want)
			r.resumedAtManifest = r.off
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		r.close()
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if r.resumes >= maxResumes {
			return n, fmt.Errorf("body broke off at byte %d after %d resumes: %w", r.off, r.resumes, mgmt.RedactURLError(err))
		}
		r.resumes++
		zerolog.Ctx(ctx).Warn().Str("error", mgmt.RedactURLError(err).Error()).Int64("offset", r.off).Int("resume", r.resumes).
			Msg("cost details blob broke off; resuming")
		if err := r.c.sleep(ctx, resumeDelay(r.resumes)); err != nil {
			return n, err
		}
		if n > 0 {
			return n, nil // the next Read reopens from r.off
		}
	}
}

// open requests the blob from r.off on.
func (r *blobReader) open(ctx context.Context) error {
	req, err := runtime.NewRequest(ctx, http.MethodGet, r.link)
	if err != nil {
		return fmt.Errorf("building blob request for %s: %w", mgmt.RedactURL(r.link), mgmt.RedactURLError(err))
	}
	runtime.SkipBodyDownload(req)
	hdr := req.Raw().Header
	// The bytes must arrive as stored: transparent decompression would break Range offsets.
	hdr.Set("Accept-Encoding", "identity")
	if r.off > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-")
		if r.etag != "" {
			hdr.Set("If-Match", r.etag)
		}
	}
	resp, err := r.c.blobs.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", mgmt.RedactURL(r.link), mgmt.RedactURLError(err))
	}
	want := http.StatusOK
	if r.off > 0 {
		want = http.StatusPartialContent
	}
	if r.off > 0 && r.off == r.resumedAtManifest && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// Resumed only because the manifest promised more bytes, and the blob has no more: it
		// is the manifest that is wrong (download warns about the size); the body ended whole.
		resp.Body.Close()
		r.want, r.body = 0, http.NoBody
		return nil
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		if r.off > 0 && resp.StatusCode == http.StatusOK {
			return fmt.Errorf("GET %s: resuming at byte %d: the server ignored the Range request", mgmt.RedactURL(r.link), r.off)
		}
		return mgmt.NewAPIError(resp)
	}
	if r.off > 0 {
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != r.off {
			resp.Body.Close()
			return fmt.Errorf("GET %s: resuming at byte %d: Content-Range %q does not start there",
				mgmt.RedactURL(r.link), r.off, resp.Header.Get("Content-Range"))
		}
	}
	if r.etag == "" {
		r.etag = resp.Header.Get("ETag")
	}
	if id := resp.Header.Get(mgmt.HeaderRequestID); id != "" {
		r.requestID = id
	}
	r.body, r.opened = resp.Body, true
	return nil
}

// resumeDelay is the wait before the n-th resume of a blob (from 1): 1 s, 2 s, 4 s, … at most
// 30 s, like azcore's backoff, so a storage host that is briefly gone gets time to come back.
func resumeDelay(n int) time.Duration {
	return min(time.Second<<(n-1), 30*time.Second)
}

// rangeStart returns the first byte of a Content-Range value "bytes first-last/size".
func rangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil
}

// readerFunc is a read function as an io.Reader.
type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func (r *blobReader) close() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

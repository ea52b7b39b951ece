package costdetails

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/retryhint"
)

// Operation statuses (CostDetailsOperationResults.status).
const (
	StatusCompleted   = "Completed"
	StatusNoDataFound = "NoDataFound"
	StatusFailed      = "Failed"
)

// DataFormatCSV is the only report format the API has.
const DataFormatCSV = "Csv"

// Result is CostDetailsOperationResults: the final state of a report operation.
type Result struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"` // the operation id
	Type      string            `json:"type"`
	Status    string            `json:"status"`
	Manifest  *Manifest         `json:"manifest"`
	ValidTill string            `json:"validTill"` // when the blob links expire (RFC 3339, UTC)
	Error     *mgmt.ErrorDetail `json:"error"`
}

// Manifest is ReportManifest: the blobs of a completed report.
type Manifest struct {
	ManifestVersion string `json:"manifestVersion"`
	DataFormat      string `json:"dataFormat"`
	ByteCount       int64  `json:"byteCount"`
	BlobCount       int    `json:"blobCount"`
	CompressData    bool   `json:"compressData"`
	Blobs           []Blob `json:"blobs"`
}

// Blob is one part of a report. BlobLink is a SAS URL: a secret, never to be logged (use
// mgmt.RedactURL).
type Blob struct {
	BlobLink  string `json:"blobLink"`
	ByteCount int64  `json:"byteCount"`
}

// validTill parses ValidTill; ok is false when it is absent or unreadable.
func (r *Result) validTill() (t time.Time, ok bool) {
	if r.ValidTill == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, r.ValidTill)
	return t, err == nil
}

// ReportError is a report operation that ended with status Failed.
type ReportError struct {
	OperationID string
	Code        string
	Message     string
}

// Error implements error.
func (e *ReportError) Error() string {
	var b strings.Builder
	b.WriteString(ErrReportFailed.Error())
	if e.OperationID != "" {
		fmt.Fprintf(&b, " (operation %s)", e.OperationID)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": code %q", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Unwrap returns ErrReportFailed.
func (e *ReportError) Unwrap() error { return ErrReportFailed }

// generate requests the report of a validated request and waits for its final state. It
// returns a Completed or NoDataFound result; Failed is a *ReportError.
//
// The operation is an azcore Poller over a custom PollingHandler (pollHandler), driven through
// Poll, Done and Result rather than PollUntilDone: PollUntilDone lets any Retry-After, however
// short, replace the configured minimum interval, has no bound on the number of polls, and
// sleeps on a timer that can be neither capped (a nonsense hint parks the run until the context
// ends) nor observed in tests. The loop below waits max(Retry-After, PollInterval), capped at
// maxPollWait, for at most MaxPolls polls.
func (c *Client) generate(ctx context.Context, r Request) (*Result, error) {
	body, err := r.body()
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	link := c.endpoint + r.Scope.Path() + "/providers/Microsoft.CostManagement/generateCostDetailsReport?api-version=" + APIVersion
	req, err := runtime.NewRequest(ctx, http.MethodPost, link)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Raw().Header.Set("Accept", "application/json")
	if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)), "application/json"); err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	// The scope and the partition's metric are on the partition's logger.
	zerolog.Ctx(ctx).Debug().Str("report_metric", r.Metric).Str("covers", r.describe()).
		Msg("requesting cost details report")
	resp, err := c.pipeline.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", mgmt.RedactURL(link), mgmt.RedactURLError(err))
	}
	ph := &pollHandler{c: c, last: resp, requestURL: resp.Request.URL}
	switch resp.StatusCode {
	case http.StatusAccepted:
		if err := ph.accepted(resp); err != nil {
			return nil, err
		}
	case http.StatusOK, http.StatusNoContent:
		if err := ph.final(resp); err != nil {
			return nil, err
		}
	default:
		return nil, mgmt.NewAPIError(resp)
	}
	poller, err := runtime.NewPoller(resp, c.pipeline, &runtime.NewPollerOptions[Result]{Handler: ph})
	if err != nil {
		return nil, fmt.Errorf("polling report: %w", err)
	}
	for !poller.Done() {
		if ph.polls >= c.maxPolls {
			return nil, fmt.Errorf("%w after %d polls (operation %s)", ErrPollLimit, ph.polls, mgmt.RedactURL(ph.location))
		}
		if err := c.sleep(ctx, c.pollWait(ph.last)); err != nil {
			return nil, fmt.Errorf("waiting for report: %w", err)
		}
		if _, err := poller.Poll(ctx); err != nil {
			return nil, fmt.Errorf("polling report: %w", err)
		}
	}
	res, err := poller.Result(ctx)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// pollWait is the wait before the next poll: the response's Retry-After when it gives one (the
// service says when the report may be ready; waiting longer only delays the run), else the
// configured poll interval; at most maxPollWait.
func (c *Client) pollWait(resp *http.Response) time.Duration {
	if d := retryhint.Header(resp.Header); d > 0 {
		return min(d, maxPollWait)
	}
	return min(c.pollInterval, maxPollWait)
}

// pollHandler is the azcore PollingHandler of a report operation. The POST answers 202 with a
// Location to poll; each poll answers 202 (running, maybe with a new Location) or 200 with the
// operation result, whose status says Completed, NoDataFound or Failed (a Failed report is a
// 200, which is why azcore's own location poller, which takes any 200 as success, does not fit).
// A 204 means no data. Every Location must be on the management endpoint: the poll carries
// the bearer token.
type pollHandler struct {
	c          *Client
	requestURL *url.URL       // of the POST, to resolve a relative Location
	location   string         // the URL to poll, exactly as given
	last       *http.Response // the latest response, for its Retry-After
	polls      int
	done       bool
	result     Result
}

// accepted takes the Location of a 202.
func (p *pollHandler) accepted(resp *http.Response) error {
	loc := resp.Header.Get("Location")
	if loc == "" {
		if p.location != "" {
			return nil // keep polling the same URL
		}
		return fmt.Errorf("report accepted (202) without a Location header (request id %s)", resp.Header.Get(mgmt.HeaderRequestID))
	}
	u, err := p.requestURL.Parse(loc)
	if err != nil {
		return fmt.Errorf("report Location %q: %w", mgmt.RedactURL(loc), err)
	}
	if got := mgmt.OriginOf(u); got != p.c.origin || u.User != nil {
		return mgmt.Permanent(fmt.Errorf("report Location %s: %w: refusing to poll %s, the token is only sent to %s",
			mgmt.RedactURL(u.String()), mgmt.ErrForeignHost, got, p.c.origin))
	}
	p.location = u.String()
	return nil
}

// final reads a 200 or 204 answer. A 200 whose status is not final yet is still running.
func (p *pollHandler) final(resp *http.Response) error {
	if resp.StatusCode == http.StatusNoContent {
		p.result, p.done = Result{Status: StatusNoDataFound}, true
		return nil
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return fmt.Errorf("reading report status: %w", err)
	}
	var res Result
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("reading report status (request id %s): %w: body %q",
			resp.Header.Get(mgmt.HeaderRequestID), err, mgmt.Excerpt(body))
	}
	switch res.Status {
	case StatusCompleted, StatusNoDataFound, StatusFailed:
		p.result, p.done = res, true
	}
	return nil
}

// Done implements runtime.PollingHandler.
func (p *pollHandler) Done() bool { return p.done }

// Poll implements runtime.PollingHandler: one GET of the Location.
func (p *pollHandler) Poll(ctx context.Context) (*http.Response, error) {
	if p.location == "" {
		return nil, fmt.Errorf("report status answered without a final status or a Location to poll")
	}
	p.polls++
	req, err := runtime.NewRequest(ctx, http.MethodGet, p.location)
	if err != nil {
		return nil, fmt.Errorf("building poll request: %w", err)
	}
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := p.c.pipeline.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", mgmt.RedactURL(p.location), mgmt.RedactURLError(err))
	}
	p.last = resp
	switch resp.StatusCode {
	case http.StatusAccepted:
		err = p.accepted(resp)
	case http.StatusOK, http.StatusNoContent:
		err = p.final(resp)
	default:
		err = mgmt.NewAPIError(resp)
	}
	zerolog.Ctx(ctx).Debug().Int("poll", p.polls).Int("status_code", resp.StatusCode).Str("status", p.result.Status).
		Msg("polled cost details report")
	return resp, err
}

// Result implements runtime.PollingHandler: the final result, or a *ReportError when the
// report failed.
func (p *pollHandler) Result(_ context.Context, out *Result) error {
	if p.result.Status == StatusFailed {
		e := &ReportError{OperationID: p.result.Name}
		if p.result.Error != nil {
			e.Code, e.Message = p.result.Error.CodeText(), p.result.Error.Message
		}
		return e
	}
	*out = p.result
	return nil
}

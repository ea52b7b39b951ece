package sandbox

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// The Cost Details report API (consumption-api.md §11):
//
//	POST {scope}/providers/Microsoft.CostManagement/generateCostDetailsReport?api-version=2022-05-01
//	  body {metric, timePeriod{start,end} | billingPeriod (EA) | invoiceId (MCA profile/customer)}
//	  → 202, Location: {base}/{scope}/providers/Microsoft.CostManagement/costDetailsOperationResults/{id}?api-version=2022-05-01,
//	    Retry-After
//	GET Location → 202 (PollsBeforeDone times, and until the report is built), then 200
//	  CostDetailsOperationResults {id, name, status, manifest, validTill}
//	GET blobLink (no bearer token; SAS signature and expiry checked) → the CSV part
//
// The CSV rows are the usageDetails rows of the same scope, days and metric, in the same order,
// so GroundTruth holds for a report of one calendar month. Columns: see csvColumns. Each part
// starts with the header line; lines end in CRLF; cells use RFC 4180 quoting; dates are
// MM/DD/YYYY. Parts hold RowsPerBlob rows each (the last one the rest).
//
// Validation (400 with an ARM error body): a body that is not JSON or has an unknown member;
// more than one of timePeriod, billingPeriod and invoiceId; a timePeriod longer than one month;
// a start (timePeriod start, or the first day of the billingPeriod or invoice) not after the
// instant 13 months before Now — counted from now, not in calendar months, with the service's
// "Start date must be after …" message; billingPeriod on an MCA scope; invoiceId
// anywhere but an MCA billing profile or customer, or naming no invoice; a management group
// scope or a billing-period sub-scope. The InvoiceId form echoes the invoice's month as
// "billingPeriod" in requestContext.requestBody, as the published examples do.

// Cost Details constants.
const (
	costDetailsAPIVersion = "2022-05-01"
	blobPrefix            = "/sandbox-storage/"
	blobContainer         = "armreports"
	storageVersion        = "2020-05-31"
	maxReportAgeMonths    = 13
	maxGenerateBody       = 1 << 20
	opResultsPath         = "/providers/Microsoft.CostManagement/costDetailsOperationResults/"
	buildWait             = 10 * time.Second // how long a final poll waits for a report build
)

// GenerateRequest is the body of generateCostDetailsReport (GenerateCostDetailsReportRequestDefinition).
type GenerateRequest struct {
	Metric        string      `json:"metric,omitempty"`
	TimePeriod    *TimePeriod `json:"timePeriod,omitempty"`
	BillingPeriod string      `json:"billingPeriod,omitempty"`
	InvoiceID     string      `json:"invoiceId,omitempty"`
}

// TimePeriod is the date range of a report (YYYY-MM-DD, inclusive).
type TimePeriod struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Report statuses.
const (
	statusCompleted   = "Completed"
	statusNoDataFound = "NoDataFound"
	statusFailed      = "Failed"
)

type operation struct {
	id        string
	scopePath string // as requested, without the leading slash
	dq        *dataQuery
	modern    bool
	schema    *csvSchema
	body      GenerateRequest
	fault     Fault

	mu        sync.Mutex
	pollsLeft int
	validTill time.Time // set when the first 200 is served
	built     chan struct{}
	blobBytes []int64
	rows      int64
	buildErr  error
}

type costDetailsResult struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Status    string          `json:"status"`
	Manifest  *reportManifest `json:"manifest,omitempty"`
	ValidTill string          `json:"validTill,omitempty"`
	Error     *errorDetail    `json:"error,omitempty"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type reportManifest struct {
	ManifestVersion string         `json:"manifestVersion"`
	DataFormat      string         `json:"dataFormat"`
	BlobCount       int            `json:"blobCount"`
	ByteCount       int64          `json:"byteCount"`
	CompressData    bool           `json:"compressData"`
	RequestContext  requestContext `json:"requestContext"`
	Blobs           []blobRef      `json:"blobs"`
}

type requestContext struct {
	RequestScope string          `json:"requestScope"`
	RequestBody  GenerateRequest `json:"requestBody"`
}

type blobRef struct {
	BlobLink  string `json:"blobLink"`
	ByteCount int64  `json:"byteCount"`
}

func isReportFault(f Fault) bool { return f == ReportFailed || f == ReportNoData || f == ReportExpired }

func (s *Server) serveGenerate(w http.ResponseWriter, r *http.Request, scopePath string) {
	sc, subs, ok := s.reportScope(w, r.URL.Query(), scopePath)
	if !ok {
		return
	}
	key := strings.ToLower(sc.Path())
	s.stats.scope(key)
	fault := s.faults.take(TargetCostDetails, 0, nil)
	if fault != "" && !isReportFault(fault) {
		if s.respondFault(w, fault) {
			return
		}
		fault = ""
	}
	if !s.throttle(w, key, sc.Kind, apiCostManagement) {
		return
	}
	body, ok := decodeGenerate(w, r)
	if !ok {
		return
	}
	op, br := s.planReport(sc, subs, body)
	if br != nil {
		writeError(w, http.StatusBadRequest, br.code, br.msg)
		return
	}
	var err error
	if op.schema, err = s.csvSchemaFor(r.Header.Get(CSVSchemaHeader), op.modern); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	select {
	case <-s.closed:
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The sandbox is shutting down.")
		return
	default:
	}
	op.id = uuid.NewString()
	op.scopePath = strings.TrimPrefix(scopePath, "/")
	op.fault = fault
	op.pollsLeft = s.o.PollsBeforeDone
	op.built = make(chan struct{})
	s.opsMu.Lock()
	s.ops[op.id] = op
	s.opsMu.Unlock()
	s.stats.reports.Add(1)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.build(s.bgCtx, op)
	}()
	s.accepted(w, r, op)
}

// reportScope checks the api-version and the scope of a report request, answering the error
// itself when one is wrong.
func (s *Server) reportScope(w http.ResponseWriter, q url.Values, scopePath string) (scope.Scope, []*subscription, bool) {
	if !checkVersion(w, q.Get("api-version"), func(v string) bool { return v == costDetailsAPIVersion }, costDetailsAPIVersion) {
		return scope.Scope{}, nil, false
	}
	sc, bp, status, code, msg := parseScope(scopePath)
	if status != 0 {
		writeError(w, status, code, msg)
		return scope.Scope{}, nil, false
	}
	if bp != "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "Billing period sub-scopes are not supported; put billingPeriod in the request body.")
		return scope.Scope{}, nil, false
	}
	if sc.Kind == scope.ManagementGroup {
		writeError(w, http.StatusBadRequest, "BadRequest", "Cost details reports are not supported for management group scopes.")
		return scope.Scope{}, nil, false
	}
	subs, err := s.w.resolve(sc)
	if err != nil {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The scope '%s' could not be found.", scopePath))
		return scope.Scope{}, nil, false
	}
	// EA and MCA only (cost-details-and-focus.md §1.1): a pay-as-you-go subscription is refused.
	// The rule is documented; the wording is the sandbox's.
	if sc.Kind == scope.Subscription && len(subs) > 0 && subs[0].anchor > 0 {
		writeError(w, http.StatusBadRequest, "BadRequest",
			"Cost details reports are supported for Enterprise Agreement and Microsoft Customer Agreement scopes only; use usage details or exports for this subscription.")
		return scope.Scope{}, nil, false
	}
	return sc, subs, true
}

// decodeGenerate reads a report request's body: one JSON object with known members only.
func decodeGenerate(w http.ResponseWriter, r *http.Request) (GenerateRequest, bool) {
	var body GenerateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxGenerateBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "The request payload is invalid: "+err.Error())
		return body, false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "BadRequest", "The request payload is invalid: trailing data after the JSON object.")
		return body, false
	}
	return body, true
}

// planReport validates a request body and selects the report's rows.
func (s *Server) planReport(sc scope.Scope, subs []*subscription, body GenerateRequest) (*operation, *badRequest) {
	n := 0
	for _, given := range []bool{body.TimePeriod != nil, body.BillingPeriod != "", body.InvoiceID != ""} {
		if given {
			n++
		}
	}
	if n > 1 {
		return nil, &badRequest{"BadRequest", "Only one of timePeriod, billingPeriod or invoiceId can be specified."}
	}
	metric, ok := metricOf(body.Metric)
	if !ok {
		return nil, &badRequest{"BadRequest", fmt.Sprintf("Invalid metric '%s'. Allowed values are ActualCost, AmortizedCost.", body.Metric)}
	}
	if body.Metric == "" {
		body.Metric = "ActualCost"
	}
	modern := sc.Channel() == scope.Modern || subs[0].modern
	from, to, br := s.reportDays(sc, subs, &body, modern)
	if br != nil {
		return nil, br
	}
	from, to = s.clipDays(from, to)
	return &operation{
		dq:     &dataQuery{w: s.w, subs: subs, from: from, to: to, metric: metric, perDay: s.o.RecordsPerDay},
		modern: modern,
		body:   body,
	}, nil
}

// reportDays is the first and last day a report request selects: its timePeriod, billingPeriod
// or invoiceId (which body then records as the invoice's billing period), or this month so far.
func (s *Server) reportDays(sc scope.Scope, subs []*subscription, body *GenerateRequest, modern bool) (time.Time, time.Time, *badRequest) {
	var p period.Period
	switch {
	case body.TimePeriod != nil:
		return s.timePeriodDays(body.TimePeriod)
	case body.BillingPeriod != "":
		if modern {
			return time.Time{}, time.Time{}, &badRequest{"BadRequest", "billingPeriod is supported for Enterprise Agreement scopes only."}
		}
		var err error
		if p, err = period.Parse(body.BillingPeriod); err != nil || len(body.BillingPeriod) != 6 {
			return time.Time{}, time.Time{}, &badRequest{"BadRequest", fmt.Sprintf("Invalid billingPeriod '%s': want yyyyMM.", body.BillingPeriod)}
		}
	case body.InvoiceID != "":
		if sc.Kind != scope.BillingProfile && sc.Kind != scope.Customer {
			return time.Time{}, time.Time{}, &badRequest{"BadRequest", "invoiceId is supported at billing profile and customer scopes only."}
		}
		var ok bool
		if p, ok = s.invoiceMonth(subs, body.InvoiceID); !ok {
			return time.Time{}, time.Time{}, &badRequest{"BadRequest", fmt.Sprintf("Invoice '%s' was not found.", body.InvoiceID)}
		}
	default:
		today := dayOf(s.o.Now())
		return monthStart(today), today, nil
	}
	if br := s.tooOld(p.Start()); br != nil {
		return time.Time{}, time.Time{}, br
	}
	if body.InvoiceID != "" {
		*body = GenerateRequest{Metric: body.Metric, BillingPeriod: p.String()}
	}
	return p.Start(), p.End().AddDate(0, 0, -1), nil
}

// timePeriodDays checks a report request's timePeriod: dates, in order, under a month apart,
// and within reach.
func (s *Server) timePeriodDays(tp *TimePeriod) (time.Time, time.Time, *badRequest) {
	st, err1 := time.Parse(time.DateOnly, tp.Start)
	en, err2 := time.Parse(time.DateOnly, tp.End)
	if err1 != nil || err2 != nil {
		return st, en, &badRequest{"BadRequest", "timePeriod start and end are required dates (yyyy-MM-dd)."}
	}
	if en.Before(st) {
		return st, en, &badRequest{"BadRequest", "The timePeriod end date must not be earlier than its start date."}
	}
	if !en.Before(st.AddDate(0, 1, 0)) {
		return st, en, &badRequest{"BadRequest", "The maximum allowed date range is 1 months."}
	}
	return st, en, s.tooOld(st)
}

// tooOld refuses a report that starts 13 months or more before now: the service counts 13 months
// back from now (azure-in-production.md §6), so the oldest month of a 13-month window is partly
// out of reach for most of each month.
func (s *Server) tooOld(start time.Time) *badRequest {
	limit := s.o.Now().UTC().AddDate(0, -maxReportAgeMonths, 0)
	if start.After(limit) {
		return nil
	}
	return &badRequest{"BadRequest", fmt.Sprintf("Invalid time period. Start date must be after %s.", limit.Format("2006-01-02T15:04:05Z"))}
}

// invoiceMonth finds the closed month whose invoice (of the subscriptions' billing profiles)
// has id inv.
func (s *Server) invoiceMonth(subs []*subscription, inv string) (period.Period, bool) {
	cur := period.Of(s.o.Now())
	for p := s.firstMonth; p.Before(cur); p = p.Add(1) {
		yyyymm := p.Year*100 + int(p.Month)
		for _, sub := range subs {
			if sub.profile != nil && strings.EqualFold(invoiceID(sub.profile, yyyymm), inv) {
				return p, true
			}
		}
	}
	return period.Period{}, false
}

func (s *Server) opLocation(r *http.Request, op *operation) string {
	return baseURL(r) + "/" + op.scopePath + opResultsPath + op.id + "?api-version=" + costDetailsAPIVersion
}

// accepted writes a 202 with Location and Retry-After.
func (s *Server) accepted(w http.ResponseWriter, r *http.Request, op *operation) {
	h := w.Header()
	h.Set("Location", s.opLocation(r, op))
	setRetryHeaders(h, "Retry-After", s.o.PollInterval)
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) servePoll(w http.ResponseWriter, r *http.Request, scopePath, opID string) {
	if !checkVersion(w, r.URL.Query().Get("api-version"), func(v string) bool { return v == costDetailsAPIVersion }, costDetailsAPIVersion) {
		return
	}
	s.opsMu.Lock()
	op := s.ops[strings.ToLower(opID)]
	s.opsMu.Unlock()
	if op == nil || !strings.EqualFold(strings.TrimPrefix(scopePath, "/"), op.scopePath) {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The operation '%s' could not be found.", opID))
		return
	}
	if f := s.faults.take(TargetCostDetails, 0, func(f Fault) bool { return !isReportFault(f) }); f != "" {
		if s.respondFault(w, f) {
			return
		}
	}
	op.mu.Lock()
	waiting := op.pollsLeft > 0
	if waiting {
		op.pollsLeft--
	}
	op.mu.Unlock()
	if !waiting {
		// Once the polls are used up, give a small report time to finish, so a client sees
		// exactly PollsBeforeDone 202s; a big one keeps answering 202.
		t := time.NewTimer(buildWait)
		select {
		case <-op.built:
		case <-t.C:
			waiting = true
		case <-r.Context().Done():
			waiting = true
		case <-s.closed:
			waiting = true
		}
		t.Stop()
	}
	if waiting {
		s.accepted(w, r, op)
		return
	}
	writeJSON(w, http.StatusOK, s.result(r, op))
}

// result builds the operation result; the first call fixes validTill.
func (s *Server) result(r *http.Request, op *operation) costDetailsResult {
	res := costDetailsResult{
		ID:   op.scopePath + opResultsPath + op.id,
		Name: op.id,
	}
	switch {
	case op.fault == ReportFailed:
		res.Status = statusFailed
		res.Error = &errorDetail{Code: "ReportGenerationFailed", Message: "The report could not be generated. Please retry."}
		return res
	case op.buildErr != nil:
		res.Status = statusFailed
		res.Error = &errorDetail{Code: "ReportGenerationFailed", Message: op.buildErr.Error()}
		return res
	case op.fault == ReportNoData || op.rows == 0:
		res.Status = statusNoDataFound
		return res
	}
	op.mu.Lock()
	if op.validTill.IsZero() {
		op.validTill = s.o.Clock().UTC().Add(s.o.ReportValidity)
		if op.fault == ReportExpired {
			op.validTill = s.o.Clock().UTC().Add(-time.Minute)
		}
	}
	validTill := op.validTill
	op.mu.Unlock()
	m := &reportManifest{
		ManifestVersion: "2022-05-01",
		DataFormat:      "Csv",
		BlobCount:       len(op.blobBytes),
		CompressData:    s.o.CompressCSV,
		RequestContext:  requestContext{RequestScope: op.scopePath, RequestBody: op.body},
	}
	se := validTill.Format(time.RFC3339)
	for i, n := range op.blobBytes {
		m.ByteCount += n
		p := s.blobPath(op, i)
		link := baseURL(r) + p + "?sv=" + storageVersion + "&sr=b&sig=" + url.QueryEscape(s.sasSig(p, se)) + "&se=" + url.QueryEscape(se)
		m.Blobs = append(m.Blobs, blobRef{BlobLink: link, ByteCount: n})
	}
	res.Status = statusCompleted
	res.Manifest = m
	res.ValidTill = validTill.Format("2006-01-02T15:04:05.0000000Z")
	return res
}

func (s *Server) blobPath(op *operation, i int) string {
	name := fmt.Sprintf("%s%s/%s/part_%d.csv", blobPrefix, blobContainer, op.id, i)
	if s.o.CompressCSV {
		name += ".gz"
	}
	return name
}

func (s *Server) sasSig(path, se string) string {
	m := hmac.New(sha256.New, s.sasKey)
	m.Write([]byte(path + "\n" + se))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// build counts the report's rows and each part's bytes (generating the parts once), then
// marks the operation built.
func (s *Server) build(ctx context.Context, op *operation) {
	defer close(op.built)
	total := op.dq.total()
	op.rows = total
	if total == 0 || op.fault == ReportFailed || op.fault == ReportNoData {
		return
	}
	per := int64(s.o.RowsPerBlob)
	for start := int64(0); start < total; start += per {
		var cw countWriter
		if err := s.writePart(ctx, &cw, op, start, min(start+per, total)); err != nil {
			op.buildErr = fmt.Errorf("building report part %d: %w", start/per, err)
			return
		}
		op.blobBytes = append(op.blobBytes, cw.n)
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// partFlush is the buffer size at which a part's CSV is handed to the writer.
const partFlush = 64 << 10

// writePart writes rows [start, end) of a report as one CSV part (gzipped when CompressCSV).
func (s *Server) writePart(ctx context.Context, dst io.Writer, op *operation, start, end int64) error {
	out := dst
	var zw *gzip.Writer
	if s.o.CompressCSV {
		zw = gzip.NewWriter(dst)
		out = zw
	}
	cols := op.schema.cols
	buf := append(make([]byte, 0, partFlush+8<<10), byteOrderMark...)
	buf = appendCSVHeader(buf, cols)
	cm := s.currentMonth()
	var err error
	op.dq.scan(start, func(ord int64, r *row) bool {
		if ord >= end {
			return false
		}
		buf = appendCSVRow(buf, cols, &recCtx{r: r, open: r.month == cm})
		if len(buf) >= partFlush {
			if _, err = out.Write(buf); err != nil {
				return false
			}
			buf = buf[:0]
			if err = ctx.Err(); err != nil {
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if _, err := out.Write(buf); err != nil {
		return err
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

// storageError writes an Azure Storage XML error.
func storageError(w http.ResponseWriter, status int, code, msg, detail string) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><Error><Code>`)
	b.WriteString(code)
	b.WriteString(`</Code><Message>`)
	b.WriteString(msg)
	b.WriteString("\nRequestId:")
	b.WriteString(w.Header().Get("x-ms-request-id"))
	b.WriteString("\nTime:")
	b.WriteString(time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"))
	b.WriteString(`</Message>`)
	if detail != "" {
		b.WriteString(`<AuthenticationErrorDetail>`)
		b.WriteString(detail)
		b.WriteString(`</AuthenticationErrorDetail>`)
	}
	b.WriteString(`</Error>`)
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-ms-error-code", code)
	h.Set("x-ms-version", storageVersion)
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

var errCut = errors.New("body cut by fault")

// cutWriter passes at most n bytes, then fails.
type cutWriter struct {
	w io.Writer
	n int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.n {
		k, err := c.w.Write(p[:c.n])
		c.n -= int64(k)
		if err == nil {
			err = errCut
		}
		return k, err
	}
	k, err := c.w.Write(p)
	c.n -= int64(k)
	return k, err
}

// skipWriter drops the first skip bytes written to it (a ranged download from byte skip).
type skipWriter struct {
	w    io.Writer
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip > 0 {
		d := min(int64(len(p)), s.skip)
		s.skip -= d
		p = p[d:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// rangeFrom parses a Range header of the form "bytes=N-" (an open range from byte N).
func rangeFrom(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !ok {
		return 0, false
	}
	first, last, ok := strings.Cut(rest, "-")
	if !ok || last != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil && n >= 0
}

// serveBlob serves a report part: GET or HEAD /sandbox-storage/armreports/{op}/part_{i}.csv[.gz]
// with the SAS query. No bearer token is needed; the signature must match and se must not have
// passed (403 AuthenticationFailed otherwise, as Azure Storage answers).
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		storageError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb.", "")
		return
	}
	op, idx := s.lookupBlob(r.URL.Path)
	if !s.checkSAS(w, r) {
		return
	}
	if !op.hasBlob(idx) {
		storageError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.", "")
		return
	}
	fault := s.faults.take(TargetBlob, idx, nil)
	if fault != "" && !isBodyFault(fault) && s.respondFault(w, fault) {
		return
	}
	off, length, ok := s.blobHeaders(w, r, op, idx, fault)
	if !ok || r.Method == http.MethodHead {
		return
	}
	s.stats.blobs.Add(1)
	limit := length
	if fault == TruncatedJSON || fault == ResetMidBody || fault == StalledBody {
		limit = length / 2
	}
	per := int64(s.o.RowsPerBlob)
	start := int64(idx) * per
	end := min(start+per, op.rows)
	bw := bufio.NewWriterSize(w, partFlush)
	cut := &cutWriter{w: &skipWriter{w: bw, skip: off}, n: off + limit}
	err := s.writePart(r.Context(), cut, op, start, end)
	_ = bw.Flush()
	if err == nil || !errors.Is(err, errCut) {
		return
	}
	switch fault {
	case ResetMidBody, StalledBody:
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if fault == StalledBody && !s.sleep(r.Context(), s.o.StallMax) {
			return
		}
		resetConn(rc)
	}
}

// lookupBlob finds the report operation and the blob index a blob path names: nil and -1 when
// it names none.
func (s *Server) lookupBlob(path string) (*operation, int) {
	rest := strings.TrimPrefix(path, blobPrefix+blobContainer+"/")
	opID, name, _ := strings.Cut(rest, "/")
	s.opsMu.Lock()
	op := s.ops[opID]
	s.opsMu.Unlock()
	if op == nil {
		return nil, -1
	}
	num := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(name, "part_"), ".gz"), ".csv")
	if i, err := strconv.Atoi(num); err == nil && s.blobPath(op, i) == path {
		return op, i
	}
	return op, -1
}

// checkSAS checks a blob request's SAS signature and expiry, answering 403 when it fails.
func (s *Server) checkSAS(w http.ResponseWriter, r *http.Request) bool {
	const authFailed = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."
	q := r.URL.Query()
	se, sig := q.Get("se"), q.Get("sig")
	if !hmac.Equal([]byte(sig), []byte(s.sasSig(r.URL.Path, se))) || q.Get("sv") == "" || q.Get("sr") != "b" {
		storageError(w, http.StatusForbidden, "AuthenticationFailed", authFailed, "Signature did not match.")
		return false
	}
	exp, err := time.Parse(time.RFC3339, se)
	now := s.o.Clock().UTC()
	if err != nil || !now.Before(exp) {
		storageError(w, http.StatusForbidden, "AuthenticationFailed", authFailed,
			fmt.Sprintf("Signed expiry time [%s] must be after the current time [%s]", exp.Format(http.TimeFormat), now.Format(http.TimeFormat)))
		return false
	}
	return true
}

// hasBlob reports whether op (nil: none) is built and has blob idx.
func (op *operation) hasBlob(idx int) bool {
	if op == nil || idx < 0 {
		return false
	}
	select {
	case <-op.built:
	default:
		return false
	}
	return idx < len(op.blobBytes)
}

// blobHeaders answers the headers of blob idx: 200, or 206 for a Range of the form a resuming
// download sends (bytes=N-), or the precondition and range errors. It returns the offset the
// body starts at and its length; ok is false when it answered an error.
func (s *Server) blobHeaders(w http.ResponseWriter, r *http.Request, op *operation, idx int, fault Fault) (off, length int64, ok bool) {
	size := op.blobBytes[idx]
	etag := fmt.Sprintf(`"0x%016X"`, mix(uint64(len(op.id))^uint64(idx)^s.w.seed))
	h := w.Header()
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-version", storageVersion)
	h.Set("ETag", etag)
	h.Set("Accept-Ranges", "bytes")
	if im := r.Header.Get("If-Match"); im != "" && im != "*" && im != etag {
		storageError(w, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.", "")
		return 0, 0, false
	}
	ranged := false
	if rg := r.Header.Get("Range"); rg != "" {
		o, ok := rangeFrom(rg)
		if !ok || o >= size {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			storageError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.", "")
			return 0, 0, false
		}
		off, ranged = o, true
	}
	h.Set("Content-Type", "text/csv")
	if s.o.CompressCSV {
		h.Set("Content-Type", "application/x-gzip")
	}
	length = size - off
	if fault == TruncatedJSON {
		h.Set("Content-Length", strconv.FormatInt(length/2, 10))
	} else {
		h.Set("Content-Length", strconv.FormatInt(length, 10))
	}
	if ranged {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, size-1, size))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	return off, length, true
}

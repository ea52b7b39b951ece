package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/partplan"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// listLimit is how many jobs GET /api/exports returns (newest first).
const listLimit = 50

// retryAfterSeconds is the polling interval suggested to the caller of an unfinished job.
const retryAfterSeconds = "5"

// tooManyRetryAfterSeconds is the wait suggested when too many jobs are open.
const tooManyRetryAfterSeconds = "60"

// apiReply is the HTTP response the caller gets, carried in Outputs.res.
type apiReply struct {
	status  int
	body    any
	headers map[string]string
	log     string // one line for the invocation's Logs
}

func replyError(status int, code, format string, args ...any) apiReply {
	msg := fmt.Sprintf(format, args...)
	return apiReply{status: status, body: errorBody{Error: apiError{Code: code, Message: msg}}, log: code + ": " + msg}
}

// serveHTTP answers the UsageExportHttp invocation. The caller's status (202, 200, 4xx) travels
// in Outputs.res; the host always gets 200, because a non-2xx reply would replace the caller's
// response with a bare 500.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.serveAPI(w, r, HTTPFunction, s.api)
}

// serveAPI answers an HTTP-triggered invocation of function through api.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, function string, api func(context.Context, *httpRequest) apiReply) {
	ctx, log := s.begin(r, function)
	inv, err := readInvocation(w, r)
	var rep apiReply
	switch {
	case errors.Is(err, errTooLarge):
		rep = replyError(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than %d bytes", maxRequestBodyBytes)
	case err != nil:
		log.Error().Err(err).Msg("invalid invocation payload")
		writeJSON(w, http.StatusBadRequest, errorBody{Error: apiError{Code: "invalid_invocation", Message: err.Error()}})
		return
	default:
		var req httpRequest
		raw, ok := inv.Data[RequestBinding]
		if !ok {
			err = fmt.Errorf("invocation has no Data.%s (the httpTrigger binding must be named %q)", RequestBinding, RequestBinding)
		} else if uerr := json.Unmarshal(raw, &req); uerr != nil {
			err = fmt.Errorf("decoding Data.%s: %w", RequestBinding, uerr)
		}
		if err != nil {
			log.Error().Err(err).Msg("invalid invocation payload")
			writeJSON(w, http.StatusBadRequest, errorBody{Error: apiError{Code: "invalid_invocation", Message: err.Error()}})
			return
		}
		rep = api(ctx, &req)
	}
	body, merr := json.Marshal(rep.body)
	if merr != nil {
		rep = replyError(http.StatusInternalServerError, "internal_error", "encoding the response failed")
		body, _ = json.Marshal(rep.body)
	}
	headers := map[string]string{"Content-Type": "application/json"}
	for k, v := range rep.headers {
		headers[k] = v
	}
	ev := log.Info()
	if rep.status >= 500 {
		ev = log.Error()
	}
	ev.Int("status", rep.status).Msg(rep.log)
	writeJSON(w, http.StatusOK, invokeResponse{
		Outputs: map[string]any{ResponseBinding: httpOutput{StatusCode: rep.status, Body: string(body), Headers: headers}},
		Logs:    []string{fmt.Sprintf("%d %s", rep.status, rep.log)},
	})
}

// route is one endpoint of the HTTP API: a method and whether the path has an {id}.
type route struct {
	method string
	withID bool
	serve  func(s *Server, ctx context.Context, req *httpRequest) apiReply
}

// routes is the HTTP API (function.json's route is "exports/{id?}"): POST /api/exports creates
// a job, GET /api/exports lists recent ones, GET /api/exports/{id} reads one and
// DELETE /api/exports/{id} cancels it. A new endpoint is one more line here (and its method in
// function.json).
var routes = []route{
	{http.MethodPost, false, (*Server).createJob},
	{http.MethodGet, false, func(s *Server, ctx context.Context, _ *httpRequest) apiReply { return s.listJobs(ctx) }},
	{http.MethodGet, true, func(s *Server, ctx context.Context, req *httpRequest) apiReply {
		return s.getJob(ctx, req.Params["id"])
	}},
	{http.MethodDelete, true, func(s *Server, ctx context.Context, req *httpRequest) apiReply {
		return s.cancelJob(ctx, req.Params["id"])
	}},
}

// api routes the caller's request through routes.
func (s *Server) api(ctx context.Context, req *httpRequest) apiReply {
	withID := req.Params["id"] != ""
	method := strings.ToUpper(req.Method)
	var allow []string
	for _, rt := range routes {
		if rt.withID != withID {
			continue
		}
		if rt.method == method {
			return rt.serve(s, ctx, req)
		}
		allow = append(allow, rt.method)
	}
	where := "/api/exports"
	if withID {
		where += "/{id}"
	}
	rep := replyError(http.StatusMethodNotAllowed, "method_not_allowed",
		"method %s is not supported at %s (allowed: %s); POST /api/exports creates an export job, GET /api/exports/{id} reads it, DELETE /api/exports/{id} cancels it",
		req.Method, where, strings.Join(allow, ", "))
	rep.headers = map[string]string{"Allow": strings.Join(allow, ", ")}
	return rep
}

// exportRequest is the body of POST /api/exports. Unknown fields, duplicate fields and wrong
// types are refused.
type exportRequest struct {
	Scopes  []string        `json:"scopes"`
	Periods []string        `json:"periods"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	Metric  metricList      `json:"metric"`
	Source  manifest.Source `json:"source"`
	Force   bool            `json:"force"`
}

// requestFields lists the accepted fields, for error messages.
const requestFields = "scopes, periods, from, to, metric, source, force"

// metricList is a metric name or an array of them.
type metricList []string

// UnmarshalJSON accepts "actualcost" and ["actualcost","amortizedcost"].
func (m *metricList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*m = metricList{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a metric name or an array of metric names")
	}
	*m = list
	return nil
}

// plan is a validated request.
type plan struct {
	scopes  []scope.Scope
	periods []period.Period
	metrics []metric.Metric
	source  manifest.Source
	force   bool
	parts   []export.Partition
}

func (s *Server) createJob(ctx context.Context, req *httpRequest) apiReply {
	if ct := req.Headers.get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return replyError(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Content-Type %q is not JSON; send the body as application/json", ct)
		}
	}
	text := req.text()
	if len(text) > maxRequestBodyBytes {
		return replyError(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is %d bytes; at most %d are accepted", len(text), maxRequestBodyBytes)
	}
	p, rep := s.parseRequest(ctx, text)
	if rep != nil {
		return *rep
	}
	if isDryRun(req) {
		return s.dryRun(ctx, p)
	}
	req2 := jobs.Request{Metrics: p.metrics, Source: p.source, Force: p.force}
	for _, sc := range p.scopes {
		req2.Scopes = append(req2.Scopes, sc.String())
	}
	for _, pr := range p.periods {
		req2.Periods = append(req2.Periods, pr.String())
	}
	j, created, err := s.jobs.Submit(ctx, manifest.OnDemand, req2, p.parts)
	switch {
	case errors.Is(err, jobs.ErrTooManyOpen):
		rep := replyError(http.StatusTooManyRequests, "too_many_jobs",
			"%v; wait for one to finish (or cancel one with DELETE /api/exports/{id}) and try again", err)
		rep.headers = map[string]string{"Retry-After": tooManyRetryAfterSeconds}
		return rep
	case errors.Is(err, jobs.ErrEnqueue):
		zerolog.Ctx(ctx).Error().Str("job_id", j.ID).Str("error", err.Error()).Msg("enqueueing a new job")
		return replyError(http.StatusServiceUnavailable, "enqueue_failed",
			"job %s was stored but its partitions could not all be queued; send the same request again to queue them", j.ID)
	case err != nil:
		zerolog.Ctx(ctx).Error().Str("error", err.Error()).Msg("storing a new job")
		return replyError(http.StatusInternalServerError, "internal_error",
			"the job could not be stored; nothing was started. Try again")
	}
	what := "accepted"
	if !created {
		what = "identical request: the open job returned"
	}
	zerolog.Ctx(ctx).Info().Str("job_id", j.ID).Bool("created", created).Int("partitions", len(j.Partitions)).Msg("export job " + what)
	return apiReply{
		status: http.StatusAccepted, body: j,
		headers: map[string]string{"Location": jobLocation(req.URL, j.ID), "Retry-After": retryAfterSeconds},
		log:     fmt.Sprintf("job %s %s: %d partition(s)", j.ID, what, len(j.Partitions)),
	}
}

// jobLocation is the path of a job's status, built from the request's public URL so a custom
// route prefix is kept: …/api/exports → /api/exports/{id}.
func jobLocation(rawURL, id string) string {
	p := "/api/exports"
	if u, err := url.Parse(rawURL); err == nil && u.Path != "" {
		p = strings.TrimSuffix(u.Path, "/")
	}
	return p + "/" + id
}

// parseRequest decodes and validates the body against the configuration and plans it
// (partplan.Make). Every check runs before any call to Azure; a scope the operator did not
// configure is refused.
func (s *Server) parseRequest(ctx context.Context, text string) (*plan, *apiReply) {
	in, rep := decodeRequest(text)
	if rep != nil {
		return nil, rep
	}
	p := &plan{source: in.Source, force: in.Force}
	if rep = checkSource(in.Source); rep != nil {
		return nil, rep
	}
	if p.metrics, rep = s.requestMetrics(in.Metric); rep != nil {
		return nil, rep
	}
	if p.scopes, rep = s.requestScopes(in.Scopes); rep != nil {
		return nil, rep
	}
	pl, err := partplan.Make(ctx, p.scopes, partplan.Request{Periods: in.Periods, From: in.From, To: in.To}, p.metrics,
		&partplan.Options{Now: s.now(), MaxMonths: s.cfg.MaxMonths, Explicit: true, EveryScope: true})
	if err != nil {
		rep := planError(err)
		return nil, &rep
	}
	p.periods, p.parts = pl.Periods, pl.Partitions
	return p, nil
}

// decodeRequest decodes the body, refusing unknown fields.
func decodeRequest(text string) (*exportRequest, *apiReply) {
	if strings.TrimSpace(text) == "" {
		rep := replyError(http.StatusBadRequest, "invalid_json",
			`the request body is empty; send a JSON object such as {"periods":["202401"]}`)
		return nil, &rep
	}
	var in exportRequest
	if err := jsonv2.Unmarshal([]byte(text), &in, jsonv2.RejectUnknownMembers(true)); err != nil {
		rep := replyError(decodeError(err))
		return nil, &rep
	}
	return &in, nil
}

// checkSource refuses a source that is not auto, usageDetails or costDetails.
func checkSource(source manifest.Source) *apiReply {
	switch source {
	case "", manifest.SourceAuto, manifest.SourceUsageDetails, manifest.SourceCostDetails:
		return nil
	}
	rep := replyError(http.StatusBadRequest, "invalid_source", "source %q: want %q, %q or %q (or leave it out)",
		source, manifest.SourceAuto, manifest.SourceUsageDetails, manifest.SourceCostDetails)
	return &rep
}

// requestMetrics returns the metrics asked for, each once (none: the configured ones).
func (s *Server) requestMetrics(asked []string) ([]metric.Metric, *apiReply) {
	if len(asked) == 0 {
		return append([]metric.Metric(nil), s.cfg.Metrics...), nil
	}
	var out []metric.Metric
	for _, ms := range asked {
		m := metric.Metric(strings.ToLower(strings.TrimSpace(ms)))
		if !slices.Contains(metric.All, m) {
			rep := replyError(http.StatusBadRequest, "invalid_metric", "metric %q: want one of %s", m, strings.Join(metric.Strings(metric.All), ", "))
			return nil, &rep
		}
		if s.cfg.APIVersion == "2018-06-30" && m != metric.ActualCost {
			rep := replyError(http.StatusBadRequest, "invalid_metric", "metric %q: the configured API version 2018-06-30 has actualcost only", m)
			return nil, &rep
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// requestScopes returns the configured scopes asked for, each once (none: all of them).
func (s *Server) requestScopes(asked []string) ([]scope.Scope, *apiReply) {
	if len(asked) == 0 {
		return append([]scope.Scope(nil), s.cfg.Scopes...), nil
	}
	var out []scope.Scope
	for _, raw := range asked {
		sc, err := scope.Parse(raw)
		if err != nil {
			rep := replyError(http.StatusBadRequest, "invalid_scope", "%s", firstLine(err.Error()))
			return nil, &rep
		}
		allowed, ok := s.cfg.Allowed(sc)
		if !ok {
			rep := replyError(http.StatusForbidden, "scope_not_allowed",
				"scope %s is not one of the configured scopes (%s); this function exports configured scopes only",
				sc, config.EnvScopes)
			return nil, &rep
		}
		if !slices.ContainsFunc(out, allowed.Equal) {
			out = append(out, allowed)
		}
	}
	return out, nil
}

// planError maps a refused period request to a 400 with a code for its reason.
func planError(err error) apiReply {
	code := "invalid_period"
	msg := err.Error()
	switch {
	case errors.Is(err, partplan.ErrPeriodsAndRange):
		code = "conflicting_periods"
	case errors.Is(err, partplan.ErrNoPeriods):
		code = "missing_periods"
	case errors.Is(err, partplan.ErrFuturePeriod):
		code = "period_in_future"
	case errors.Is(err, partplan.ErrTooManyMonths):
		code = "range_too_long"
		msg += " (" + config.EnvMaxMonths + ")"
	}
	return replyError(http.StatusBadRequest, code, "%s", msg)
}

// decodeError maps a JSON decoding error to a status, code and message that say what to fix.
func decodeError(err error) (int, string, string) {
	var se *jsonv2.SemanticError
	var sy *jsontext.SyntacticError
	switch {
	case errors.Is(err, jsonv2.ErrUnknownName) && errors.As(err, &se):
		return http.StatusBadRequest, "unknown_field", fmt.Sprintf("unknown field %q; the accepted fields are %s (names are case-sensitive)",
			strings.TrimPrefix(string(se.JSONPointer), "/"), requestFields)
	case errors.As(err, &sy):
		return http.StatusBadRequest, "invalid_json", "the request body is not valid JSON: " + strings.TrimPrefix(sy.Error(), "jsontext: ")
	case errors.As(err, &se) && se.JSONPointer == "":
		return http.StatusBadRequest, "invalid_request", "the request body must be a JSON object with the fields " + requestFields
	case errors.As(err, &se):
		field := string(se.JSONPointer)
		want := map[string]string{"scopes": "an array of scope strings", "periods": `an array of "YYYYMM" strings`,
			"from": `a "YYYYMM" string`, "to": `a "YYYYMM" string`, "metric": "a metric name or an array of them",
			"source": "a string", "force": "true or false"}
		top := strings.SplitN(strings.TrimPrefix(field, "/"), "/", 2)[0]
		msg := fmt.Sprintf("field %s has the wrong type", field)
		if w, ok := want[top]; ok {
			msg += "; want " + w
		}
		if se.JSONKind != 0 {
			msg += fmt.Sprintf(" (got a JSON %s)", se.JSONKind)
		}
		return http.StatusBadRequest, "invalid_request", msg
	}
	return http.StatusBadRequest, "invalid_json", "the request body could not be decoded: " + err.Error()
}

// getJob returns a job's view, derived from its partition records; it never starts anything.
func (s *Server) getJob(ctx context.Context, id string) apiReply {
	j, err := s.jobs.Store().View(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		return replyError(http.StatusNotFound, "not_found", "no export job with id %q", id)
	}
	if err != nil {
		zerolog.Ctx(ctx).Error().Str("job_id", id).Str("error", err.Error()).Msg("reading a job")
		return replyError(http.StatusInternalServerError, "internal_error", "the job could not be read; try again")
	}
	rep := apiReply{status: http.StatusOK, body: j, log: fmt.Sprintf("job %s: %s", j.ID, j.State)}
	if !j.State.Final() {
		rep.headers = map[string]string{"Retry-After": retryAfterSeconds}
	}
	return rep
}

// cancelJob asks a job to stop: 202 with its view, 409 when it already ended.
func (s *Server) cancelJob(ctx context.Context, id string) apiReply {
	j, err := s.jobs.Cancel(ctx, id)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return replyError(http.StatusNotFound, "not_found", "no export job with id %q", id)
	case errors.Is(err, jobs.ErrFinished):
		return replyError(http.StatusConflict, "already_finished", "job %s already ended (%s); there is nothing to cancel", id, j.State)
	case err != nil:
		zerolog.Ctx(ctx).Error().Str("job_id", id).Str("error", err.Error()).Msg("cancelling a job")
		return replyError(http.StatusInternalServerError, "internal_error", "the job could not be cancelled; try again")
	}
	rep := apiReply{status: http.StatusAccepted, body: j, log: fmt.Sprintf("job %s: cancel requested (%s)", j.ID, j.State)}
	if !j.State.Final() {
		rep.headers = map[string]string{"Retry-After": retryAfterSeconds}
	}
	return rep
}

// jobSummary is an entry of GET /api/exports.
type jobSummary struct {
	ID           string     `json:"id"`
	State        jobs.State `json:"state"`
	CreatedTime  string     `json:"createdTime"`
	FinishedTime string     `json:"finishedTime,omitempty"`
	Partitions   int        `json:"partitions"`
	Rows         int64      `json:"rows"`
	Error        string     `json:"error,omitempty"`
}

func (s *Server) listJobs(ctx context.Context) apiReply {
	ids, err := s.jobs.Store().IDs(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Error().Str("error", err.Error()).Msg("listing jobs")
		return replyError(http.StatusInternalServerError, "internal_error", "the jobs could not be listed; try again")
	}
	out := []jobSummary{}
	for i := len(ids) - 1; i >= 0 && len(out) < listLimit; i-- {
		j, err := s.jobs.Store().View(ctx, ids[i])
		if err != nil {
			continue // deleted meanwhile, or unreadable: GET /api/exports/{id} tells which
		}
		_, rows, _ := j.Totals()
		sum := jobSummary{ID: j.ID, State: j.State, CreatedTime: j.CreatedTime.Format(timeFormat),
			Partitions: len(j.Partitions), Rows: rows, Error: j.Error}
		if j.FinishedTime != nil {
			sum.FinishedTime = j.FinishedTime.Format(timeFormat)
		}
		out = append(out, sum)
	}
	return apiReply{status: http.StatusOK, body: map[string]any{"jobs": out}, log: fmt.Sprintf("listed %d job(s)", len(out))}
}

// timeFormat is RFC 3339 with nanoseconds, as encoding/json writes time.Time.
const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

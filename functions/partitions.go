package functions

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	runplan "github.com/usage-export/usage-export/internal/plan"
	"github.com/usage-export/usage-export/internal/status"
)

// PartitionsFunction is the HTTP function of the partitions API (function.json route
// "partitions/{runId?}"): GET /api/partitions reads what has been exported, POST
// /api/partitions/{runId} publishes a run the drop guard held back, DELETE
// /api/partitions/{runId} discards it.
const PartitionsFunction = "UsageExportPartitions"

// Inventory is what the partitions API and dry runs read and do; the handler builds it over the
// output store. Its methods call no billing API.
type Inventory interface {
	// Status reads the manifests, held runs and checkpoints the filter selects.
	Status(ctx context.Context, f status.Filter) (*status.Report, error)
	// PublishHeld publishes a held run (export.ErrNoHeldRun, ErrHeldStale, ErrRunActive).
	PublishHeld(ctx context.Context, runID string) (*manifest.Manifest, error)
	// DiscardHeld deletes a held run (export.ErrNoHeldRun, ErrRunActive).
	DiscardHeld(ctx context.Context, runID string) error
	// Plan says what exporting parts (with source forced when not empty) would do.
	Plan(ctx context.Context, parts []export.Partition, source manifest.Source) (*runplan.Plan, error)
	// Clean removes the run folders the cleanup rule expires (export.Clean) and returns them.
	Clean(ctx context.Context) ([]export.RunFolder, error)
}

// cleanRunFolders applies the cleanup rule to the run folders, once per timer run (held runs 30
// days after they were held, abandoned folders after 7; unfinished runs never). Its problems are
// logged, never the timer's failure (the next run tries again).
func (s *Server) cleanRunFolders(ctx context.Context) []string {
	if s.inv == nil {
		return nil
	}
	log := zerolog.Ctx(ctx)
	removed, err := s.inv.Clean(ctx)
	if err != nil {
		log.Warn().Str("error", err.Error()).Msg("cleaning run folders; the next timer run tries again")
		return []string{"cleaning run folders failed: " + err.Error()}
	}
	var logs []string
	for _, f := range removed {
		log.Info().Str("run_id", f.RunID).Str("folder", f.Dir).Bool("held", f.Held != nil).Time("last_written", f.Newest).
			Msg("expired run folder removed")
		logs = append(logs, "expired run folder removed: "+f.Dir)
	}
	return logs
}

// servePartitions answers the UsageExportPartitions invocation.
func (s *Server) servePartitions(w http.ResponseWriter, r *http.Request) {
	s.serveAPI(w, r, PartitionsFunction, s.partitionsAPI)
}

func (s *Server) partitionsAPI(ctx context.Context, req *httpRequest) apiReply {
	if s.inv == nil {
		return replyError(http.StatusServiceUnavailable, "not_configured", "the partitions API has no output store configured")
	}
	id := req.Params["runId"]
	method := strings.ToUpper(req.Method)
	switch {
	case id == "" && method == http.MethodGet:
		return s.partitionStatus(ctx, req)
	case id != "" && method == http.MethodPost:
		return s.heldAction(ctx, id, "publish")
	case id != "" && method == http.MethodDelete:
		return s.heldAction(ctx, id, "discard")
	}
	allow := "GET"
	where := "/api/partitions"
	if id != "" {
		allow, where = "POST, DELETE", "/api/partitions/{runId}"
	}
	rep := replyError(http.StatusMethodNotAllowed, "method_not_allowed",
		"method %s is not supported at %s (allowed: %s); GET /api/partitions reads what has been exported, POST /api/partitions/{runId} publishes a held run, DELETE /api/partitions/{runId} discards it",
		req.Method, where, allow)
	rep.headers = map[string]string{"Allow": allow}
	return rep
}

// partitionStatus answers GET /api/partitions?scope=…&period=…&metric=… (each repeatable or
// comma-separated; from/to give a period range).
func (s *Server) partitionStatus(ctx context.Context, req *httpRequest) apiReply {
	q := queryOf(req)
	var f status.Filter
	for _, raw := range splitQuery(q["scope"]) {
		scopes, err := config.ParseScopes(raw)
		if err != nil {
			return replyError(http.StatusBadRequest, "invalid_scope", "%s", firstLine(err.Error()))
		}
		f.Scopes = append(f.Scopes, scopes...)
	}
	periods := splitQuery(q["period"])
	from, to := q.Get("from"), q.Get("to")
	if len(periods) > 0 && (from != "" || to != "") {
		return replyError(http.StatusBadRequest, "conflicting_periods", "give period or from/to, not both")
	}
	if from != "" || to != "" {
		var first period.Period
		last := period.Of(s.now())
		var err error
		if from == "" {
			return replyError(http.StatusBadRequest, "invalid_period", "to needs from")
		}
		if first, err = period.Parse(from); err == nil && to != "" {
			last, err = period.Parse(to)
		}
		if err != nil {
			return replyError(http.StatusBadRequest, "invalid_period", "%v", err)
		}
		list, err := period.Range(first, last, s.cfg.MaxMonths)
		if err != nil {
			return replyError(http.StatusBadRequest, "invalid_period", "%v", err)
		}
		for _, p := range list {
			periods = append(periods, p.String())
		}
	}
	for _, p := range periods {
		pr, err := period.Parse(p)
		if err != nil {
			return replyError(http.StatusBadRequest, "invalid_period", "%v", err)
		}
		if f.Periods == nil {
			f.Periods = map[string]bool{}
		}
		f.Periods[pr.String()] = true
	}
	for _, ms := range splitQuery(q["metric"]) {
		m := metric.Metric(strings.ToLower(ms))
		if !slices.Contains(metric.All, m) {
			return replyError(http.StatusBadRequest, "invalid_metric", "metric %q: want one of %s", m, strings.Join(metric.Strings(metric.All), ", "))
		}
		if f.Metrics == nil {
			f.Metrics = map[metric.Metric]bool{}
		}
		f.Metrics[m] = true
	}
	rep, err := s.inv.Status(ctx, f)
	if err != nil {
		zerolog.Ctx(ctx).Error().Str("error", err.Error()).Msg("reading the partitions' status")
		return replyError(http.StatusInternalServerError, "internal_error", "the output could not be read; try again")
	}
	return apiReply{status: http.StatusOK, body: rep, log: "partitions: " + strconv.Itoa(rep.Count)}
}

// heldAction publishes or discards a held run.
func (s *Server) heldAction(ctx context.Context, id, action string) apiReply {
	var m *manifest.Manifest
	var err error
	if action == "publish" {
		m, err = s.inv.PublishHeld(ctx, id)
	} else {
		err = s.inv.DiscardHeld(ctx, id)
	}
	switch {
	case errors.Is(err, export.ErrNoHeldRun):
		return replyError(http.StatusNotFound, "no_held_run", "%s; GET /api/partitions lists the held runs", err)
	case errors.Is(err, export.ErrHeldStale):
		return replyError(http.StatusConflict, "held_run_stale", "%s", err)
	case errors.Is(err, export.ErrRunActive):
		return replyError(http.StatusConflict, "run_unfinished", "%s", err)
	case err != nil:
		zerolog.Ctx(ctx).Error().Str("run_id", id).Str("error", err.Error()).Msg(action + " of a held run")
		return replyError(http.StatusInternalServerError, "internal_error", "the held run could not be changed; try again")
	}
	zerolog.Ctx(ctx).Info().Str("run_id", id).Msg("held run " + action + "ed")
	body := map[string]any{"runId": id, "action": action}
	if m != nil {
		body["scope"], body["billingPeriod"], body["metric"], body["rows"] = m.Scope, m.BillingPeriod, m.Metric, m.DataRowCount
	}
	return apiReply{status: http.StatusOK, body: body, log: "held run " + id + " " + action + "ed"}
}

// isDryRun reports whether POST /api/exports asks for a plan only (?dryRun=true).
func isDryRun(req *httpRequest) bool {
	v, err := strconv.ParseBool(queryOf(req).Get("dryRun"))
	return err == nil && v
}

// dryRun answers POST /api/exports?dryRun=true: what the job would export, the source of each
// partition and why, the calls and time expected, and what is committed. Nothing is stored or
// queued and no billing API is called.
func (s *Server) dryRun(ctx context.Context, p *plan) apiReply {
	if s.inv == nil {
		return replyError(http.StatusServiceUnavailable, "not_configured", "dry runs need the output store")
	}
	pl, err := s.inv.Plan(ctx, p.parts, p.source)
	if err != nil {
		zerolog.Ctx(ctx).Error().Str("error", err.Error()).Msg("planning a dry run")
		return replyError(http.StatusInternalServerError, "internal_error", "the plan could not be made; try again")
	}
	return apiReply{status: http.StatusOK, body: pl, log: "dry run: " + strconv.Itoa(len(pl.Partitions)) + " partition(s), " + strconv.Itoa(pl.Calls) + " calls"}
}

// queryOf returns the caller's query parameters, from the request URL.
func queryOf(req *httpRequest) url.Values {
	u, err := url.Parse(req.URL)
	if err != nil {
		return url.Values{}
	}
	return u.Query()
}

// splitQuery flattens repeated and comma-separated values.
func splitQuery(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

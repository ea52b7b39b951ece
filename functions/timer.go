package functions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/partplan"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// timerInfo is Data.timer. ScheduleStatus is null when useMonitor is false.
type timerInfo struct {
	Schedule       *struct{ AdjustForDST bool } `json:"Schedule"`
	ScheduleStatus *struct {
		Last, Next, LastUpdated string
	} `json:"ScheduleStatus"`
	IsPastDue bool `json:"IsPastDue"`
}

// serveTimer plans the scheduled export: every configured scope × its scheduled periods (the
// period open now and, inside its restatement window, the previous one: calendar months, or a
// subscription's own billing periods, see partplan.Make) × the configured metrics, as one job
// with one queue message per partition; the workers export them. A past-due run (IsPastDue)
// plans the same way: the plan depends only on the clock and the subscriptions' billing periods.
// While the previous scheduled job with the same plan is still open, no second one is made. The
// timer then moves the poison queue's partitions to failed in their jobs.
//
// The reply is 200 with {"Outputs":{},"Logs":[…],"ReturnValue":null} once every message is on
// the queue. It is 500 only when the job could not be stored or enqueued, so a host retry never
// re-exports committed partitions: it enqueues the same job again, whose workers skip what is
// final.
func (s *Server) serveTimer(w http.ResponseWriter, r *http.Request) {
	ctx, log := s.begin(r, TimerFunction)
	inv, err := readInvocation(w, r)
	var ti timerInfo
	if err == nil {
		raw, ok := inv.Data[TimerBinding]
		switch {
		case !ok:
			err = fmt.Errorf("invocation has no Data.%s (the timerTrigger binding must be named %q)", TimerBinding, TimerBinding)
		default:
			if uerr := json.Unmarshal(raw, &ti); uerr != nil {
				err = fmt.Errorf("decoding Data.%s: %w", TimerBinding, uerr)
			}
		}
	}
	if err != nil {
		s.failed(w, r, TimerFunction, http.StatusBadRequest, err, nil)
		return
	}
	ev := log.Info().Bool("is_past_due", ti.IsPastDue).Str("host_utc_now", inv.sys().UtcNow).Int("retry", inv.retryCount())
	if st := ti.ScheduleStatus; st != nil {
		ev = ev.Str("schedule_last", st.Last).Str("schedule_next", st.Next)
	}
	ev.Msg("timer invocation")

	logs, err := s.planTimer(ctx)
	if err != nil {
		s.failed(w, r, TimerFunction, http.StatusInternalServerError, err, logs)
		return
	}
	logs = append(logs, s.drainPoison(ctx)...)
	logs = append(logs, s.prune(ctx)...)
	logs = append(logs, s.cleanRunFolders(ctx)...)
	writeJSON(w, http.StatusOK, invokeResponse{Outputs: map[string]any{}, Logs: logs})
}

// planTimer submits the scheduled job (partplan.Make with the subscriptions' billing periods).
// Its error means "could not enqueue".
func (s *Server) planTimer(ctx context.Context) ([]string, error) {
	pl, err := partplan.Make(ctx, s.cfg.Scopes, partplan.Request{}, s.cfg.Metrics,
		&partplan.Options{Now: s.now(), RestatementDays: s.cfg.RestatementDays, Lister: s.bp})
	if err != nil {
		return nil, fmt.Errorf("planning the scheduled export: %w", err)
	}
	names := pl.PeriodNames()
	logs := []string{fmt.Sprintf("planned %d partition(s): %d scope(s) × periods %s × metrics %s",
		len(pl.Partitions), len(s.cfg.Scopes), strings.Join(names, ","), strings.Join(metric.Strings(s.cfg.Metrics), ","))}
	for _, n := range pl.Notes {
		logs = append(logs, s.logNote(ctx, n))
	}
	req := jobs.Request{Periods: names, Metrics: s.cfg.Metrics}
	for _, sc := range s.cfg.Scopes {
		req.Scopes = append(req.Scopes, sc.String())
	}
	j, created, err := s.jobs.Submit(ctx, manifest.Scheduled, req, pl.Partitions)
	if err != nil {
		return logs, fmt.Errorf("could not enqueue the scheduled export: %w", err)
	}
	if created {
		logs = append(logs, fmt.Sprintf("job %s: %d partition(s) enqueued", j.ID, len(j.Partitions)))
	} else {
		logs = append(logs, fmt.Sprintf("job %s with the same plan is still %s; nothing enqueued", j.ID, j.State))
	}
	zerolog.Ctx(ctx).Info().Str("job_id", j.ID).Bool("created", created).Int("partitions", len(j.Partitions)).Msg("scheduled export planned")
	return logs, nil
}

// logNote logs how a subscription's scheduled periods were found and returns the line for the
// invocation's log: its own billing periods (pay-as-you-go), or the calendar months with a
// warning when its billing periods cannot be read or include none open now.
func (s *Server) logNote(ctx context.Context, n partplan.Note) string {
	log := zerolog.Ctx(ctx)
	switch {
	case n.Err != nil:
		msg := n.Err.Error()
		log.Warn().Str("scope", n.Scope.String()).Str("error", msg).Msg("cannot read the subscription's billing periods: planning calendar months")
		return fmt.Sprintf("%s: cannot read its billing periods (%s): calendar months planned", n.Scope, msg)
	case len(n.Own) == 0:
		log.Warn().Str("scope", n.Scope.String()).Int("listed", n.Listed).Msg("no billing period of the subscription is open now: planning calendar months")
		return fmt.Sprintf("%s: none of its %d billing period(s) is open now: calendar months planned", n.Scope, n.Listed)
	}
	names := make([]string, len(n.Own))
	for i, p := range n.Own {
		names[i] = fmt.Sprintf("%s (%s..%s)", p, p.Start().Format(time.DateOnly), p.End().AddDate(0, 0, -1).Format(time.DateOnly))
	}
	log.Info().Str("scope", n.Scope.String()).Strs("periods", names).Msg("the subscription's own billing periods planned")
	return fmt.Sprintf("%s: its own billing periods %s", n.Scope, strings.Join(names, ", "))
}

// poisonBatch bounds the poison messages one timer run handles.
const poisonBatch = 500

// drainPoison marks the partitions of poison messages failed in their jobs. Its problems are
// logged, never the timer's failure (the next run tries again).
func (s *Server) drainPoison(ctx context.Context) []string {
	if s.poison == nil {
		return nil
	}
	log := zerolog.Ctx(ctx)
	n, err := s.poison.DrainPoison(ctx, poisonBatch, func(p workqueue.Poisoned) error {
		if p.Err != nil {
			log.Error().Str("error", p.Err.Error()).Msg("unreadable message on the poison queue; deleted")
			return nil
		}
		log.Warn().Str("job_id", p.Item.Job).Int("partition", p.Item.Index).Msg("partition on the poison queue; recorded as failed")
		return s.jobs.Poisoned(ctx, p.Item)
	})
	if err != nil {
		log.Error().Str("error", err.Error()).Msg("reading the poison queue")
		return []string{"reading the poison queue: " + err.Error()}
	}
	if n == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d poison message(s): partitions recorded as failed", n)}
}

// Retention is how long ended jobs are kept; the timer deletes older ones.
const Retention = 30 * 24 * time.Hour

// prune deletes the jobs that ended more than Retention ago. Its problems are logged, never the
// timer's failure.
func (s *Server) prune(ctx context.Context) []string {
	n, err := s.jobs.Store().Prune(ctx, s.now().Add(-Retention))
	if err != nil {
		zerolog.Ctx(ctx).Error().Str("error", err.Error()).Msg("deleting old jobs")
		return []string{"deleting old jobs: " + err.Error()}
	}
	if n == 0 {
		return nil
	}
	return []string{fmt.Sprintf("deleted %d job(s) that ended more than %d days ago", n, int(Retention.Hours()/24))}
}

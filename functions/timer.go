package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// timerInfo is Data.timer. ScheduleStatus is null when useMonitor is false.
type timerInfo struct {
	Schedule       *struct{ AdjustForDST bool } `json:"Schedule"`
	ScheduleStatus *struct {
		Last, Next, LastUpdated string
	} `json:"ScheduleStatus"`
	IsPastDue bool `json:"IsPastDue"`
}

// Partitions crosses scopes, periods and metrics, scope by scope. A scope configured with a
// billing-period sub-scope covers its own period only: it joins where periods include that
// period and is left out otherwise.
func Partitions(scopes []scope.Scope, periods []period.Period, metrics []string) []export.Partition {
	var out []export.Partition
	for _, sc := range scopes {
		for _, p := range periods {
			if sc.BillingPeriod != "" && !strings.HasPrefix(sc.BillingPeriod, p.String()) {
				continue
			}
			for _, m := range metrics {
				out = append(out, export.Partition{Scope: sc, Period: p, Metric: m})
			}
		}
	}
	return out
}

// serveTimer runs the scheduled export: every configured scope × the scheduled periods (the
// current month and, inside the restatement window, the previous one) × the configured metrics.
// A past-due run (IsPastDue) catches up the same way: the plan depends only on the clock, and
// final periods are never re-exported by the timer. It also picks up unfinished jobs.
//
// The reply is 200 with {"Outputs":{},"Logs":[…],"ReturnValue":null} unless a partition failed
// or the run was interrupted; then it is 500 so the host records the failure and applies the
// retry policy (the error goes to stderr first, because the host drops a failed reply's body).
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
		s.timerFailed(w, r, http.StatusBadRequest, err, nil)
		return
	}
	ev := log.Info().Bool("is_past_due", ti.IsPastDue).Str("host_utc_now", inv.sys().UtcNow).Int("retry", inv.retryCount())
	if st := ti.ScheduleStatus; st != nil {
		ev = ev.Str("schedule_last", st.Last).Str("schedule_next", st.Next)
	}
	ev.Msg("timer invocation")

	logs, err := s.runTimer(ctx)
	if err != nil {
		s.timerFailed(w, r, http.StatusInternalServerError, err, logs)
		return
	}
	writeJSON(w, http.StatusOK, invokeResponse{Outputs: map[string]any{}, Logs: logs})
}

// timerFailed logs err, writes it to stderr and answers the host with a non-2xx status.
func (s *Server) timerFailed(w http.ResponseWriter, r *http.Request, status int, err error, logs []string) {
	msg := s.redact(err.Error())
	s.log.Error().Str("function", TimerFunction).Str("invocation_id", invocationID(r)).Str("error", msg).Msg("timer invocation failed")
	fmt.Fprintf(s.errw, "%s invocation %s failed: %s\n", TimerFunction, invocationID(r), strings.ReplaceAll(msg, "\n", "; "))
	writeJSON(w, status, invokeResponse{Outputs: map[string]any{}, Logs: append(logs, "failed: "+msg)})
}

// runTimer plans and runs the scheduled export. It returns the invocation's log lines and an
// error when a partition failed or the run was interrupted. Busy partitions (another writer is
// on them) and held ones (the drop guard kept the previous export) are not failures of the run.
func (s *Server) runTimer(ctx context.Context) ([]string, error) {
	var logs []string
	if n, err := s.ResumeJobs(ctx); err != nil {
		logs = append(logs, "checking unfinished jobs: "+s.redact(err.Error()))
	} else if n > 0 {
		logs = append(logs, fmt.Sprintf("resumed %d unfinished job(s)", n))
	}
	now := s.now()
	periods := period.Scheduled(now, s.cfg.RestatementDays)
	parts := Partitions(s.cfg.Scopes, periods, s.cfg.Metrics)
	names := make([]string, len(periods))
	for i, p := range periods {
		names[i] = p.String()
	}
	logs = append(logs, fmt.Sprintf("planned %d partition(s): %d scope(s) × periods %s × metrics %s",
		len(parts), len(s.cfg.Scopes), strings.Join(names, ","), strings.Join(s.cfg.Metrics, ",")))
	sum, err := s.export(ctx, Run{ExecutionType: ExecScheduled, Partitions: parts})
	counts := map[string]int{}
	if sum != nil {
		for _, r := range sum.Partitions {
			counts[r.Status]++
			line := fmt.Sprintf("%s %s %s: %s, %d rows, %d bytes", r.Scope, r.Period, r.Metric, r.Status, r.Rows, r.Bytes)
			if r.Error != "" {
				line += ": " + s.redact(r.Error)
			}
			logs = append(logs, line)
		}
		logs = append(logs, fmt.Sprintf("done: %d committed, %d held, %d busy, %d failed; %d rows, %d bytes",
			counts[export.StatusCommitted], counts[export.StatusHeld], counts[export.StatusBusy],
			counts[export.StatusFailed], sum.Rows, sum.Bytes))
	}
	switch {
	case err != nil:
		return logs, fmt.Errorf("export interrupted (finished chunks are checkpointed; the next run resumes them): %w", err)
	case sum == nil:
		return logs, errors.New("export returned no summary")
	case sum.Failed() > 0:
		return logs, fmt.Errorf("%d of %d partition(s) failed: %w", sum.Failed(), len(parts), sum.Err())
	}
	return logs, nil
}

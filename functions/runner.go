package functions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// saveTimeout bounds the last save of an interrupted job, made after its context ended.
const saveTimeout = 10 * time.Second

// errTakenOver ends a job run whose document another worker overwrote.
var errTakenOver = errors.New("job taken over by another worker")

// enqueue adds a job to this process's queue unless it is queued or running here already.
func (s *Server) enqueue(id string) bool {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	if s.q.known[id] {
		return false
	}
	s.q.known[id] = true
	s.q.ids = append(s.q.ids, id)
	select {
	case s.q.wake <- struct{}{}:
	default:
	}
	return true
}

func (s *Server) next() (string, bool) {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	if len(s.q.ids) == 0 {
		return "", false
	}
	id := s.q.ids[0]
	s.q.ids = s.q.ids[1:]
	return id, true
}

func (s *Server) forget(id string) {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	delete(s.q.known, id)
}

// Run works through queued jobs, one at a time, until ctx ends or Shutdown is called. A job
// interrupted that way keeps its checkpoints and stays running in the store, so the next start
// (or timer run) resumes it. Run returns nil when it stops; it may be called once.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.q.mu.Lock()
	if s.q.started {
		s.q.mu.Unlock()
		return errors.New("functions: Run called twice")
	}
	s.q.started, s.q.stop = true, cancel
	s.q.mu.Unlock()
	defer close(s.q.done)
	for {
		if ctx.Err() != nil {
			return nil
		}
		id, ok := s.next()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-s.q.wake:
				continue
			}
		}
		s.runJob(ctx, id)
		s.forget(id)
	}
}

// Shutdown stops Run: the running job's export is cancelled, checkpoints what it finished and
// is saved as still running. Shutdown waits for that or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.q.mu.Lock()
	started, stop := s.q.started, s.q.stop
	s.q.mu.Unlock()
	if !started {
		return nil
	}
	stop()
	select {
	case <-s.q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the running job to stop: %w", ctx.Err())
	}
}

// ResumeJobs queues every unfinished job this process may take over (jobs.Claimable) and
// deletes finished jobs older than the retention. The handler calls it at start, and the timer
// at every run, so an accepted job is never lost when a process dies. It returns how many jobs
// it queued.
func (s *Server) ResumeJobs(ctx context.Context) (int, error) {
	now := s.now()
	log := zerolog.Ctx(ctx)
	if log.GetLevel() == zerolog.Disabled {
		log = &s.log
	}
	n := 0
	err := s.jobs.List(ctx, func(j *jobs.Job) error {
		if j.State.Final() {
			if j.FinishedTime != nil && now.Sub(*j.FinishedTime) > s.opts.Retention {
				if err := s.jobs.Delete(ctx, j.ID); err != nil {
					log.Warn().Str("job_id", j.ID).Str("error", s.redact(err.Error())).Msg("deleting an expired job")
				}
			}
			return nil
		}
		if jobs.Claimable(j, s.me, now, s.opts.StaleAfter) && s.enqueue(j.ID) {
			log.Info().Str("job_id", j.ID).Str("state", string(j.State)).Int("attempts", j.Attempts).Msg("unfinished job queued")
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("resuming jobs: %w", err)
	}
	return n, nil
}

// runJob claims job id and runs it to its end, or until ctx ends.
func (s *Server) runJob(ctx context.Context, id string) {
	log := s.log.With().Str("job_id", id).Logger()
	ctx = log.WithContext(ctx)
	j, err := s.jobs.Get(ctx, id)
	if err != nil {
		log.Error().Str("error", s.redact(err.Error())).Msg("reading a queued job")
		return
	}
	now := s.now().UTC()
	if !jobs.Claimable(j, s.me, now, s.opts.StaleAfter) {
		log.Info().Str("state", string(j.State)).Msg("job not claimable here (finished, or running elsewhere)")
		return
	}
	j.Attempts++
	j.State, j.Worker, j.HeartbeatTime = jobs.Running, &s.me, &now
	if j.StartedTime == nil {
		j.StartedTime = &now
	}
	if j.Attempts > s.opts.MaxAttempts {
		j.State, j.FinishedTime = jobs.Failed, &now
		j.Error = fmt.Sprintf("gave up after %d attempts: the process stopped while running this job each time", s.opts.MaxAttempts)
	}
	if err := s.jobs.Save(ctx, j); err != nil {
		if errors.Is(err, jobs.ErrConflict) {
			log.Info().Msg("job claimed by another worker first")
			return
		}
		log.Error().Str("error", s.redact(err.Error())).Msg("claiming a job")
		return
	}
	if j.State.Final() {
		log.Error().Str("error", j.Error).Msg("job failed")
		return
	}
	log.Info().Int("attempt", j.Attempts).Int("partitions", len(j.Partitions)).Msg("job started")
	t := &tracker{s: s, job: j, index: map[string]int{}}
	for i, p := range j.Partitions {
		t.index[partKey(p.Scope, p.BillingPeriod, p.Metric)] = i
	}
	t.run(ctx)
}

func partKey(sc, per, metric string) string { return strings.ToLower(sc) + "|" + per + "|" + metric }

// tracker runs one claimed job and keeps its document up to date.
type tracker struct {
	s     *Server
	index map[string]int

	mu    sync.Mutex // guards job and dirty
	job   *jobs.Job
	dirty bool

	saveMu sync.Mutex // serialises saves
}

func (t *tracker) run(ctx context.Context) {
	s := t.s
	log := zerolog.Ctx(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	stopFlush := make(chan struct{})
	flushDone := make(chan struct{})
	go t.flushLoop(ctx, cancel, stopFlush, flushDone)

	parts := t.todo()
	start := time.Now()
	var runErr error
	for len(parts) > 0 {
		t.setStatus(parts, jobs.PartRunning)
		sum, err := s.export(ctx, Run{
			ExecutionType: ExecOnDemand, Partitions: parts, Source: t.job.Request.Source,
			Force: t.job.Request.Force, Progress: t.progress,
		})
		interrupted := err != nil || ctx.Err() != nil
		if sum != nil {
			t.apply(sum, interrupted)
		}
		if interrupted {
			runErr = err
			if runErr == nil {
				runErr = context.Cause(ctx)
			}
			break
		}
		busy := t.withStatus(parts, export.StatusBusy)
		if len(busy) == 0 || time.Since(start)+s.opts.BusyRetryInterval > s.opts.BusyRetryFor {
			break
		}
		log.Info().Int("busy", len(busy)).Dur("retry_in", s.opts.BusyRetryInterval).Msg("partitions held by another writer; retrying")
		timer := time.NewTimer(s.opts.BusyRetryInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			runErr = context.Cause(ctx)
		case <-timer.C:
		}
		if runErr != nil {
			break
		}
		parts = busy
	}
	close(stopFlush)
	<-flushDone

	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTakenOver):
		log.Warn().Msg("job taken over by another worker; stopping here")
		return
	case runErr != nil:
		t.mu.Lock()
		for i := range t.job.Partitions {
			if p := &t.job.Partitions[i]; p.Status == jobs.PartRunning {
				p.Status = jobs.PartPending
			}
		}
		// Released: any worker, on any instance, may take the job up at once.
		t.job.Worker = nil
		t.mu.Unlock()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
		defer scancel()
		if err := t.save(sctx); err != nil {
			log.Error().Str("error", s.redact(err.Error())).Msg("saving an interrupted job")
		}
		log.Warn().Str("reason", s.redact(runErr.Error())).Msg("job interrupted; it resumes at the next start or timer run")
		return
	}
	t.finish()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer scancel()
	if err := t.save(sctx); err != nil {
		log.Error().Str("error", s.redact(err.Error())).Msg("saving a finished job")
		return
	}
	pages, rows, bytes := t.job.Totals()
	ev := log.Info()
	if t.job.State == jobs.Failed {
		ev = log.Error().Str("error", t.job.Error)
	}
	ev.Str("state", string(t.job.State)).Int("pages", pages).Int64("rows", rows).Int64("bytes", bytes).Msg("job finished")
}

// todo returns the partitions still to export: everything not committed or held. A scope that
// is no longer configured fails its partitions instead: jobs never read a scope the settings
// do not allow.
func (t *tracker) todo() []export.Partition {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []export.Partition
	for i := range t.job.Partitions {
		p := &t.job.Partitions[i]
		if p.Status == export.StatusCommitted || p.Status == export.StatusHeld {
			continue
		}
		sc, err := scope.Parse(p.Scope)
		var ok bool
		if err == nil {
			sc, ok = t.s.cfg.Allowed(sc)
		}
		pr, perr := period.Parse(p.BillingPeriod)
		if err != nil || !ok || perr != nil {
			p.Status, p.Error = export.StatusFailed, "scope or period is no longer allowed by the settings"
			t.dirty = true
			continue
		}
		out = append(out, export.Partition{Scope: sc, Period: pr, Metric: p.Metric})
	}
	return out
}

func (t *tracker) lookup(p export.Partition) *jobs.Partition {
	i, ok := t.index[partKey(p.Scope.String(), p.Period.String(), p.Metric)]
	if !ok {
		return nil
	}
	return &t.job.Partitions[i]
}

func (t *tracker) setStatus(parts []export.Partition, status string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range parts {
		if jp := t.lookup(p); jp != nil {
			jp.Status, jp.Error = status, ""
		}
	}
	t.dirty = true
}

func (t *tracker) withStatus(parts []export.Partition, status string) []export.Partition {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []export.Partition
	for _, p := range parts {
		if jp := t.lookup(p); jp != nil && jp.Status == status {
			out = append(out, p)
		}
	}
	return out
}

// progress records the exporter's progress; it never blocks on I/O.
func (t *tracker) progress(pr export.Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	jp := t.lookup(pr.Partition)
	if jp == nil {
		return
	}
	jp.Pages, jp.Rows, jp.Bytes = pr.Pages, pr.Rows, pr.Bytes
	if pr.Done && pr.Status != "" {
		jp.Status = pr.Status // final per partition unless the run was interrupted (see apply)
	}
	t.dirty = true
}

// apply records the outcome of each partition. When the run was interrupted, a partition that
// failed because of it goes back to pending.
func (t *tracker) apply(sum *export.Summary, interrupted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range sum.Partitions {
		jp := t.lookup(r.Partition)
		if jp == nil {
			continue
		}
		if interrupted && r.Status != export.StatusCommitted && r.Status != export.StatusHeld {
			jp.Status, jp.Error = jobs.PartPending, ""
			continue
		}
		jp.Status, jp.Pages, jp.Rows, jp.Bytes, jp.Manifest = r.Status, r.Pages, r.Rows, r.Bytes, r.Manifest
		jp.Source, jp.SourceReason = r.Source, r.Reason
		jp.Error = t.s.redact(r.Error)
	}
	t.dirty = true
}

// finish sets the end state: succeeded when every partition is committed, failed otherwise.
func (t *tracker) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	counts := map[string]int{}
	for _, p := range t.job.Partitions {
		counts[p.Status]++
	}
	now := t.s.now().UTC()
	t.job.FinishedTime = &now
	n := len(t.job.Partitions)
	if counts[export.StatusCommitted] == n {
		t.job.State, t.job.Error = jobs.Succeeded, ""
		return
	}
	t.job.State = jobs.Failed
	var why []string
	if c := counts[export.StatusFailed]; c > 0 {
		why = append(why, fmt.Sprintf("%d failed", c))
	}
	if c := counts[export.StatusHeld]; c > 0 {
		why = append(why, fmt.Sprintf("%d held by the drop guard (re-run with \"force\": true to publish)", c))
	}
	if c := counts[export.StatusBusy]; c > 0 {
		why = append(why, fmt.Sprintf("%d busy: another export kept the partition for longer than %s", c, t.s.opts.BusyRetryFor))
	}
	if c := n - counts[export.StatusCommitted] - counts[export.StatusFailed] - counts[export.StatusHeld] - counts[export.StatusBusy]; c > 0 {
		why = append(why, fmt.Sprintf("%d not exported", c))
	}
	t.job.Error = fmt.Sprintf("%d of %d partition(s) not committed: %s", n-counts[export.StatusCommitted], n, strings.Join(why, "; "))
}

// save writes a copy of the job with a fresh heartbeat.
func (t *tracker) save(ctx context.Context) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	now := t.s.now().UTC()
	t.job.HeartbeatTime = &now
	snap := t.job.Clone()
	t.dirty = false
	t.mu.Unlock()
	if err := t.s.jobs.Save(ctx, snap); err != nil {
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
		return err
	}
	t.mu.Lock()
	t.job.SetETag(snap.ETag())
	t.mu.Unlock()
	return nil
}

// flushLoop saves progress every FlushInterval when something changed, and at least every
// HeartbeatInterval. A conflict means another worker took the job over: the run is cancelled.
func (t *tracker) flushLoop(ctx context.Context, cancel context.CancelCauseFunc, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(t.s.opts.FlushInterval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		dirty := t.dirty
		t.mu.Unlock()
		if !dirty && time.Since(last) < t.s.opts.HeartbeatInterval {
			continue
		}
		err := t.save(ctx)
		switch {
		case errors.Is(err, jobs.ErrConflict):
			cancel(errTakenOver)
			return
		case err != nil && ctx.Err() == nil:
			zerolog.Ctx(ctx).Warn().Str("error", t.s.redact(err.Error())).Msg("saving job progress")
		case err == nil:
			last = time.Now()
		}
	}
}

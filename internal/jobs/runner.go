package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// Run is one export the runner asks for: one partition of a job.
type Run struct {
	// ExecutionType is manifest.Scheduled or manifest.OnDemand.
	ExecutionType manifest.ExecutionType
	Partitions    []export.Partition
	// Source forces usageDetails or costDetails; empty means per scope from the settings.
	Source manifest.Source
	// Force publishes even when the drop guard would hold an export back.
	Force bool
	// Progress, when set, receives the exporter's progress; it must not block.
	Progress func(export.Progress)
}

// ExportFunc runs an export and returns its summary. Its error is non-nil only when ctx ended
// the run (partition failures are in the summary), as with export.Exporter.Run.
type ExportFunc func(ctx context.Context, r Run) (*export.Summary, error)

// Enqueuer puts work items on the queue (workqueue.Queue).
type Enqueuer interface {
	Enqueue(ctx context.Context, items []workqueue.Item) error
}

// Options tune the runner. Zero fields get the documented defaults.
type Options struct {
	// FlushInterval is how often a running partition's progress is saved (default 2 s).
	FlushInterval time.Duration
	// HeartbeatInterval is how often a running partition's record is saved even without
	// progress, to show its worker is alive (default 30 s).
	HeartbeatInterval time.Duration
	// CancelPollInterval is how often a running partition reads its job to see a cancel
	// (default 10 s); the export then stops at its next checkpoint.
	CancelPollInterval time.Duration
	// StaleAfter is how old a running record's heartbeat must be before a delivery of another
	// message takes the partition over (default 3 min).
	StaleAfter time.Duration
	// MaxDequeueCount is the delivery on which a partition that still fails is recorded as
	// failed before the host moves its message to the poison queue (default
	// workqueue.MaxDequeueCount, which host.json must match).
	MaxDequeueCount int
	// MaxOpenJobs bounds the on-demand jobs not yet finished (default 10).
	MaxOpenJobs int
	// ReenqueueAfter: a job found open by an identical request whose messages were not all
	// put this long after its creation is enqueued again (default 2 min).
	ReenqueueAfter time.Duration
}

// Defaults of Options.
const (
	DefaultFlushInterval      = 2 * time.Second
	DefaultHeartbeatInterval  = 30 * time.Second
	DefaultCancelPollInterval = 10 * time.Second
	DefaultStaleAfter         = 3 * time.Minute
	DefaultMaxOpenJobs        = 10
	DefaultReenqueueAfter     = 2 * time.Minute
)

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.FlushInterval, DefaultFlushInterval)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.CancelPollInterval, DefaultCancelPollInterval)
	def(&c.StaleAfter, DefaultStaleAfter)
	def(&c.ReenqueueAfter, DefaultReenqueueAfter)
	if c.MaxDequeueCount <= 0 {
		c.MaxDequeueCount = workqueue.MaxDequeueCount
	}
	if c.MaxOpenJobs <= 0 {
		c.MaxOpenJobs = DefaultMaxOpenJobs
	}
	return c
}

// Runner plans jobs onto the queue and runs one partition per delivery. It is safe for
// concurrent use; it keeps no work of its own between calls.
type Runner struct {
	store  *Store
	queue  Enqueuer
	export ExportFunc
	// allowed maps a stored scope to the configured one; false when the settings no longer
	// allow it.
	allowed func(scope.Scope) (scope.Scope, bool)
	me      Worker
	now     func() time.Time
	o       Options
}

// Deps is what a Runner needs.
type Deps struct {
	Store   *Store
	Queue   Enqueuer
	Export  ExportFunc
	Allowed func(scope.Scope) (scope.Scope, bool)
	// Worker is this process's identity.
	Worker Worker
	// Now is the clock; nil means time.Now.
	Now     func() time.Time
	Options *Options
}

// NewRunner returns a Runner.
func NewRunner(d Deps) *Runner {
	r := &Runner{store: d.Store, queue: d.Queue, export: d.Export, allowed: d.Allowed, me: d.Worker,
		now: d.Now, o: d.Options.withDefaults()}
	if r.now == nil {
		r.now = time.Now
	}
	r.store = r.store.WithClock(r.now)
	return r
}

// Store returns the job store.
func (r *Runner) Store() *Store { return r.store }

// Worker returns this process's identity.
func (r *Runner) Worker() Worker { return r.me }

// Errors of Submit and Cancel.
var (
	// ErrTooManyOpen reports that MaxOpenJobs on-demand jobs are not finished yet.
	ErrTooManyOpen = errors.New("too many open export jobs")
	// ErrFinished reports a cancel of a job that already ended.
	ErrFinished = errors.New("job already finished")
	// ErrEnqueue reports that the job was stored but its partitions could not all be put on the
	// queue; the same request again enqueues them.
	ErrEnqueue = errors.New("could not enqueue the job's partitions")
)

// RequestKey is the identity of a request: identical requests (same execution type, scopes,
// periods, metrics, source and force, in any order) have the same key.
func RequestKey(execType manifest.ExecutionType, req Request) string {
	norm := func(in []string, lower bool) []string {
		out := make([]string, len(in))
		for i, v := range in {
			if lower {
				v = strings.ToLower(v)
			}
			out[i] = v
		}
		sort.Strings(out)
		return out
	}
	b, _ := json.Marshal([]any{execType, norm(req.Scopes, true), norm(req.Periods, false), norm(metric.Strings(req.Metrics), false), req.Source, req.Force})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Submit stores a job for parts and puts one message per partition on the queue. An identical
// request whose job is still open returns that job (created false) instead of a new one. An
// on-demand job past MaxOpenJobs fails with ErrTooManyOpen. The returned job is its view.
func (r *Runner) Submit(ctx context.Context, execType manifest.ExecutionType, req Request, parts []export.Partition) (*Job, bool, error) {
	key := RequestKey(execType, req)
	for try := 0; try < 3; try++ {
		kr, err := r.store.getKey(ctx, key)
		if err != nil {
			return nil, false, err
		}
		if j, err := r.openJob(ctx, kr); err != nil || j != nil {
			return j, false, err
		}
		if execType == manifest.OnDemand {
			if err := r.underOpenLimit(ctx); err != nil {
				return nil, false, err
			}
		}
		now := r.now().UTC()
		j := &Job{ID: NewID(now), ExecutionType: execType, State: Queued, CreatedTime: now, RequestKey: key, Request: req}
		for _, p := range parts {
			j.Partitions = append(j.Partitions, Partition{Scope: p.Scope.String(), BillingPeriod: p.Period.String(), Metric: p.Metric, Status: PartQueued})
		}
		if err := r.store.Create(ctx, j); err != nil {
			return nil, false, err
		}
		if err := r.store.putKey(ctx, key, j.ID, kr); errors.Is(err, ErrConflict) {
			_ = r.store.Delete(ctx, j.ID) // an identical request won the race: use its job
			continue
		} else if err != nil {
			return nil, false, err
		}
		if err := r.store.markOpen(ctx, j.ID); err != nil {
			return nil, false, err
		}
		if err := r.enqueue(ctx, j); err != nil {
			return j, true, err
		}
		return j, true, nil
	}
	return nil, false, errors.New("submitting a job: identical requests kept racing; try again")
}

// openJob returns the unfinished job of the request key record kr (nil: none), enqueuing it
// again when its enqueue was lost (no EnqueuedTime after Options.ReenqueueAfter).
func (r *Runner) openJob(ctx context.Context, kr *keyRecord) (*Job, error) {
	if kr == nil {
		return nil, nil
	}
	j, err := r.store.View(ctx, kr.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case j.State.Final():
		return nil, nil
	}
	if j.EnqueuedTime == nil && r.now().Sub(j.CreatedTime) > r.o.ReenqueueAfter {
		if err := r.enqueue(ctx, j); err != nil {
			return j, err
		}
	}
	return j, nil
}

// underOpenLimit returns ErrTooManyOpen when Options.MaxOpenJobs jobs are open.
func (r *Runner) underOpenLimit(ctx context.Context) error {
	n, err := r.store.openCount(ctx)
	if err != nil {
		return err
	}
	if n >= r.o.MaxOpenJobs {
		return fmt.Errorf("%w: %d of %d", ErrTooManyOpen, n, r.o.MaxOpenJobs)
	}
	return nil
}

// enqueue puts j's partitions on the queue and records when that was done.
func (r *Runner) enqueue(ctx context.Context, j *Job) error {
	items := make([]workqueue.Item, len(j.Partitions))
	for i, p := range j.Partitions {
		items[i] = workqueue.Item{Version: workqueue.Version, Job: j.ID, Index: i, Scope: p.Scope, Period: p.BillingPeriod, Metric: p.Metric}
	}
	if err := r.queue.Enqueue(ctx, items); err != nil {
		return fmt.Errorf("%w: %w", ErrEnqueue, err)
	}
	for try := 0; ; try++ {
		doc, err := r.store.Get(ctx, j.ID)
		if err != nil {
			return err
		}
		now := r.now().UTC()
		doc.EnqueuedTime = &now
		err = r.store.Save(ctx, doc)
		if errors.Is(err, ErrConflict) && try < 3 {
			continue
		}
		if err == nil {
			j.EnqueuedTime = &now
		}
		return err
	}
}

// Cancel asks job id to stop: partitions not started are skipped, a running one stops at its
// next checkpoint. It returns the job's view.
func (r *Runner) Cancel(ctx context.Context, id string) (*Job, error) {
	for try := 0; try < 5; try++ {
		j, err := r.store.View(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.State.Final() {
			return j, ErrFinished
		}
		if j.CancelTime != nil {
			return j, nil
		}
		doc, err := r.store.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		now := r.now().UTC()
		doc.CancelTime = &now
		if err := r.store.Save(ctx, doc); errors.Is(err, ErrConflict) {
			continue
		} else if err != nil {
			return nil, err
		}
		return r.store.View(ctx, id)
	}
	return nil, fmt.Errorf("cancelling job %s: %w", id, ErrConflict)
}

// Delivery is what the host says about a queue message.
type Delivery struct {
	MessageID    string
	DequeueCount int
}

// Outcome is the result of one delivery. Done means the message may be deleted (the host's
// reply is 2xx): the partition is final, was skipped, or the message was a duplicate. Otherwise
// the message must come back (non-2xx): the partition is retried from its checkpoint, or, on the
// last delivery, it was recorded failed and the message goes to the poison queue.
type Outcome struct {
	Done   bool
	Status export.Status
	// Message says what happened, for the log and the invocation's Logs.
	Message string
}

// errCancelled is the cause of a run stopped by the job's cancel.
var errCancelled = errors.New("job cancelled")

// Work runs the partition of one delivery synchronously and records its progress and outcome.
func (r *Runner) Work(ctx context.Context, it workqueue.Item, d Delivery) Outcome {
	log := zerolog.Ctx(ctx).With().Str("job_id", it.Job).Int("partition", it.Index).
		Str("scope", it.Scope).Str("billing_period", it.Period).Str("metric", string(it.Metric)).Int("dequeue_count", d.DequeueCount).Logger()
	ctx = log.WithContext(ctx)
	retry := func(format string, a ...any) Outcome {
		return Outcome{Message: fmt.Sprintf(format, a...)}
	}
	job, err := r.store.Get(ctx, it.Job)
	if errors.Is(err, ErrNotFound) {
		return Outcome{Done: true, Status: "skipped", Message: "the job no longer exists (deleted after retention); message dropped"}
	}
	if err != nil {
		return retry("reading the job: %s", err.Error())
	}
	if it.Index >= len(job.Partitions) {
		return Outcome{Done: true, Status: "skipped", Message: fmt.Sprintf("the job has %d partitions, not %d; message dropped", len(job.Partitions), it.Index+1)}
	}
	jp := job.Partitions[it.Index]
	if !strings.EqualFold(jp.Scope, it.Scope) || jp.BillingPeriod != it.Period || jp.Metric != it.Metric {
		return Outcome{Done: true, Status: "skipped", Message: "the message does not match the job's partition; message dropped"}
	}
	prev, err := r.store.GetRecord(ctx, it.Job, it.Index)
	if err != nil {
		return retry("reading the partition record: %s", err.Error())
	}
	now := r.now().UTC()
	switch {
	case prev != nil && FinalStatus(prev.Status):
		return Outcome{Done: true, Status: prev.Status, Message: "partition already " + string(prev.Status) + "; duplicate delivery"}
	case prev != nil && prev.Status == PartRunning && prev.Message != d.MessageID && now.Sub(prev.Heartbeat) < r.o.StaleAfter:
		return Outcome{Done: true, Status: PartRunning, Message: "another message's worker " + prev.Worker.String() + " is running the partition; duplicate delivery"}
	}
	rec := &Record{Attempts: d.DequeueCount, Message: d.MessageID, Worker: &r.me, Started: now, Heartbeat: now}
	if prev != nil {
		rec.Started = prev.Started
	}
	final := func(status export.Status, msg string) Outcome {
		rec.Status, rec.Error, rec.Finished = status, msg, &now
		if err := r.store.PutRecord(ctx, it.Job, it.Index, rec, prev); err != nil {
			return retry("recording %s: %s", status, err.Error())
		}
		return Outcome{Done: true, Status: status, Message: msg}
	}
	if job.CancelTime != nil {
		return final(PartCancelled, "skipped: the job was cancelled")
	}
	sc, serr := scope.Parse(jp.Scope)
	pr, perr := period.Parse(jp.BillingPeriod)
	ok := false
	if serr == nil && perr == nil {
		sc, ok = r.allowed(sc)
	}
	if !ok {
		return final(export.StatusFailed, "scope or period is no longer allowed by the settings")
	}
	rec.Status = PartRunning
	if err := r.store.PutRecord(ctx, it.Job, it.Index, rec, prev); errors.Is(err, ErrConflict) {
		return retry("another worker took the partition at the same moment; the message comes back")
	} else if err != nil {
		return retry("recording the start: %s", err.Error())
	}
	log.Info().Int("attempt", d.DequeueCount).Msg("partition started")
	return r.run(ctx, job, it, d, rec, export.Partition{Scope: sc, Period: pr, Metric: jp.Metric})
}

// run exports the partition with rec recorded as running, saving progress as it goes.
func (r *Runner) run(ctx context.Context, job *Job, it workqueue.Item, d Delivery, rec *Record, part export.Partition) Outcome {
	log := zerolog.Ctx(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := &tracker{r: r, job: it.Job, index: it.Index, rec: rec}
	stop := make(chan struct{})
	done := make(chan struct{})
	go t.loop(ctx, cancel, stop, done)
	sum, err := r.export(ctx, Run{ExecutionType: job.ExecutionType, Partitions: []export.Partition{part},
		Source: job.Request.Source, Force: job.Request.Force, Progress: t.progress})
	close(stop)
	<-done

	cause := context.Cause(ctx)
	var res *export.Result
	if sum != nil && len(sum.Partitions) == 1 {
		res = &sum.Partitions[0]
	}
	now := r.now().UTC()
	t.mu.Lock()
	rec.Heartbeat = now
	if res != nil {
		rec.Pages, rec.Rows, rec.Bytes, rec.Manifest = res.Pages, res.Rows, res.Bytes, res.Manifest
		rec.Source, rec.SourceReason = res.Source, res.Reason
	}
	var out Outcome
	switch {
	case errors.Is(cause, errTakenOver):
		t.mu.Unlock()
		return Outcome{Message: "another worker took the partition over; stopped here"}
	case res != nil && (res.Status == export.StatusCommitted || res.Status == export.StatusHeld):
		rec.Status, rec.Error, rec.Finished = res.Status, "", &now
		out = Outcome{Done: true, Status: res.Status, Message: fmt.Sprintf("%s: %d rows, %d bytes", res.Status, res.Rows, res.Bytes)}
	case errors.Is(cause, errCancelled):
		rec.Status, rec.Error, rec.Finished = PartCancelled, "stopped at a checkpoint: the job was cancelled", &now
		out = Outcome{Done: true, Status: PartCancelled, Message: rec.Error}
	default:
		why := "the run was interrupted (shutdown or timeout); finished chunks are checkpointed"
		switch {
		case err == nil && res == nil:
			why = "the export returned no result"
		case err == nil && res.Status == export.StatusBusy:
			why = "another writer holds the partition (its lease expires within a minute)"
		case err == nil:
			why = res.Error
		}
		if d.DequeueCount >= r.o.MaxDequeueCount {
			rec.Status, rec.Error, rec.Finished = export.StatusFailed,
				fmt.Sprintf("failed on delivery %d of %d (the message goes to the poison queue): %s", d.DequeueCount, r.o.MaxDequeueCount, why), &now
			out = Outcome{Status: export.StatusFailed, Message: rec.Error}
		} else {
			rec.Status, rec.Error = PartRetrying, fmt.Sprintf("attempt %d: %s", d.DequeueCount, why)
			out = Outcome{Status: PartRetrying, Message: rec.Error + "; the message comes back and the partition resumes from its checkpoint"}
		}
	}
	t.mu.Unlock()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer scancel()
	if err := t.save(sctx); err != nil {
		log.Error().Str("error", err.Error()).Msg("recording the partition outcome")
		if out.Done {
			return Outcome{Message: "the outcome could not be recorded; the message comes back: " + err.Error()}
		}
	}
	return out
}

// saveTimeout bounds the final save of a record after the run's context ended.
const saveTimeout = 15 * time.Second

// errTakenOver is the cause of a run stopped because another worker wrote its record.
var errTakenOver = errors.New("partition taken over by another worker")

// tracker keeps a running partition's record up to date.
type tracker struct {
	r     *Runner
	job   string
	index int

	mu    sync.Mutex // guards rec and dirty
	rec   *Record
	dirty bool

	saveMu sync.Mutex
	// prev is the stored version rec replaces (the one written last).
	prev *Record
}

func (t *tracker) progress(pr export.Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rec.Pages, t.rec.Rows, t.rec.Bytes = pr.Pages, pr.Rows, pr.Bytes
	t.dirty = true
}

// save writes the record, conditional on the version this worker wrote last.
func (t *tracker) save(ctx context.Context) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	snap := *t.rec
	t.dirty = false
	t.mu.Unlock()
	prev := t.prev
	if prev == nil {
		prev = &Record{etag: t.rec.etag}
	}
	if err := t.r.store.PutRecord(ctx, t.job, t.index, &snap, prev); err != nil {
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
		return err
	}
	t.prev = &snap
	return nil
}

// loop saves progress every FlushInterval when something changed and at least every
// HeartbeatInterval, and reads the job every CancelPollInterval to see a cancel. A conflict
// means another worker took the partition over: the run is cancelled.
func (t *tracker) loop(ctx context.Context, cancel context.CancelCauseFunc, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	o := t.r.o
	tick := time.NewTicker(o.FlushInterval)
	defer tick.Stop()
	lastSave, lastPoll := time.Now(), time.Now()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(lastPoll) >= o.CancelPollInterval {
			lastPoll = time.Now()
			if j, err := t.r.store.Get(ctx, t.job); err == nil && j.CancelTime != nil {
				cancel(errCancelled)
				return
			}
		}
		t.mu.Lock()
		dirty := t.dirty
		if dirty || time.Since(lastSave) >= o.HeartbeatInterval {
			t.rec.Heartbeat = t.r.now().UTC()
		}
		t.mu.Unlock()
		if !dirty && time.Since(lastSave) < o.HeartbeatInterval {
			continue
		}
		err := t.save(ctx)
		switch {
		case errors.Is(err, ErrConflict):
			cancel(errTakenOver)
			return
		case err != nil && ctx.Err() == nil:
			zerolog.Ctx(ctx).Warn().Str("error", err.Error()).Msg("saving partition progress")
		case err == nil:
			lastSave = time.Now()
		}
	}
}

// Poisoned records the partition of a message found on the poison queue as failed, unless it
// already ended (the worker records the failure on the last delivery; this covers a worker
// killed during it).
func (r *Runner) Poisoned(ctx context.Context, it workqueue.Item) error {
	prev, err := r.store.GetRecord(ctx, it.Job, it.Index)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if prev != nil && FinalStatus(prev.Status) {
		return nil
	}
	if _, err := r.store.Get(ctx, it.Job); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	now := r.now().UTC()
	rec := &Record{Status: export.StatusFailed, Started: now, Heartbeat: now, Finished: &now,
		Error: fmt.Sprintf("the message went to the poison queue after %d deliveries", r.o.MaxDequeueCount)}
	if prev != nil {
		c := *prev
		rec = &c
		rec.Status, rec.Finished, rec.Heartbeat = export.StatusFailed, &now, now
		rec.Error = fmt.Sprintf("the message went to the poison queue after %d deliveries; the last attempt (worker %s) stopped without recording an outcome; before it: %s",
			prev.Attempts, prev.Worker, prev.Error)
	}
	err = r.store.PutRecord(ctx, it.Job, it.Index, rec, prev)
	if errors.Is(err, ErrConflict) {
		return nil // a worker wrote it meanwhile
	}
	return err
}

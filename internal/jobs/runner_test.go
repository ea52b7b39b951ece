package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// listQueue keeps enqueued items in memory.
type listQueue struct {
	mu    sync.Mutex
	items []workqueue.Item
}

func (q *listQueue) Enqueue(_ context.Context, items []workqueue.Item) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, items...)
	return nil
}

// runnerEnv is a Runner over a local store whose export outcome is set per test.
type runnerEnv struct {
	r     *Runner
	q     *listQueue
	now   time.Time
	calls int
	// outcome returns the partition's status for an export call; it may block on ctx.
	outcome func(ctx context.Context) export.Status
}

func newRunnerEnv(t *testing.T, o *Options) *runnerEnv {
	t.Helper()
	s, _ := newStore(t)
	e := &runnerEnv{q: &listQueue{}, now: time.Date(2024, 3, 3, 12, 0, 0, 0, time.UTC)}
	e.outcome = func(context.Context) export.Status { return export.StatusCommitted }
	e.r = NewRunner(Deps{
		Store: s, Queue: e.q, Allowed: func(sc scope.Scope) (scope.Scope, bool) { return sc, true },
		Worker: Worker{Instance: "i1", Process: "p1"}, Now: func() time.Time { return e.now }, Options: o,
		Export: func(ctx context.Context, r Run) (*export.Summary, error) {
			e.calls++
			p := r.Partitions[0]
			st := e.outcome(ctx)
			res := export.Result{Partition: p, Status: st, Rows: 7}
			if st == export.StatusFailed {
				res.Error = "usage details: 500 after retries"
			}
			if ctx.Err() != nil {
				return &export.Summary{Partitions: []export.Result{{Partition: p, Status: export.StatusFailed, Error: "interrupted"}}}, ctx.Err()
			}
			return &export.Summary{Partitions: []export.Result{res}}, nil
		},
	})
	return e
}

func (e *runnerEnv) submit(t *testing.T, n int) *Job {
	t.Helper()
	var parts []export.Partition
	req := Request{Metrics: []metric.Metric{"actualcost"}}
	for i := 0; i < n; i++ {
		sc := scope.MustParse(fmt.Sprintf("/subscriptions/%08d-1111-1111-1111-111111111111", i))
		parts = append(parts, export.Partition{Scope: sc, Period: period.Period{Year: 2024, Month: 1}, Metric: "actualcost"})
		req.Scopes = append(req.Scopes, sc.String())
	}
	req.Periods = []string{"202401"}
	j, created, err := e.r.Submit(context.Background(), manifest.OnDemand, req, parts)
	if err != nil || !created {
		t.Fatalf("Submit: created %v, %v", created, err)
	}
	return j
}

func (e *runnerEnv) view(t *testing.T, id string) *Job {
	t.Helper()
	j, err := e.r.Store().View(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func itemOf(j *Job, i int) workqueue.Item {
	p := j.Partitions[i]
	return workqueue.Item{Version: workqueue.Version, Job: j.ID, Index: i, Scope: p.Scope, Period: p.BillingPeriod, Metric: p.Metric}
}

// TestWorkDeliveries: what one delivery does with the message and the partition record.
func TestWorkDeliveries(t *testing.T) {
	ctx := context.Background()
	t.Run("committed, then a duplicate delivery is dropped without exporting", func(t *testing.T) {
		e := newRunnerEnv(t, nil)
		j := e.submit(t, 1)
		if out := e.r.Work(ctx, itemOf(j, 0), Delivery{"m1", 1}); !out.Done || out.Status != export.StatusCommitted {
			t.Fatalf("first delivery: %+v", out)
		}
		if out := e.r.Work(ctx, itemOf(j, 0), Delivery{"m2", 1}); !out.Done || e.calls != 1 {
			t.Fatalf("duplicate: %+v, %d exports; want done and 1 export", out, e.calls)
		}
		if v := e.view(t, j.ID); v.State != Succeeded || v.Partitions[0].Rows != 7 || v.Partitions[0].Worker.Process != "p1" {
			t.Errorf("view %+v", v)
		}
	})
	t.Run("a failure is retried; on the last delivery it is recorded failed and the message goes on", func(t *testing.T) {
		e := newRunnerEnv(t, &Options{MaxDequeueCount: 3})
		e.outcome = func(context.Context) export.Status { return export.StatusFailed }
		j := e.submit(t, 1)
		for d := 1; d <= 3; d++ {
			out := e.r.Work(ctx, itemOf(j, 0), Delivery{"m1", d})
			if out.Done {
				t.Fatalf("delivery %d: done; a failure must bring the message back (and to the poison queue at the end)", d)
			}
			want := PartRetrying
			if d == 3 {
				want = export.StatusFailed
			}
			if v := e.view(t, j.ID); v.Partitions[0].Status != want || v.Partitions[0].Attempts != d {
				t.Errorf("delivery %d: partition %+v, want %s", d, v.Partitions[0], want)
			}
		}
		if v := e.view(t, j.ID); v.State != Failed || v.Partitions[0].Error == "" {
			t.Errorf("job %s %q, want failed with the last error", v.State, v.Partitions[0].Error)
		}
	})
	t.Run("a redelivery of the same message takes a dead worker's partition over at once", func(t *testing.T) {
		e := newRunnerEnv(t, nil)
		j := e.submit(t, 1)
		// The first worker died while running: its record says running, fresh heartbeat.
		rec := &Record{Status: PartRunning, Attempts: 1, Message: "m1", Worker: &Worker{"i2", "dead"}, Started: e.now, Heartbeat: e.now}
		if err := e.r.Store().PutRecord(ctx, j.ID, 0, rec, nil); err != nil {
			t.Fatal(err)
		}
		if out := e.r.Work(ctx, itemOf(j, 0), Delivery{"m2", 1}); !out.Done || e.calls != 0 {
			t.Fatalf("another message while the partition runs: %+v, %d exports; want a dropped duplicate", out, e.calls)
		}
		if out := e.r.Work(ctx, itemOf(j, 0), Delivery{"m1", 2}); !out.Done || out.Status != export.StatusCommitted {
			t.Fatalf("redelivery of m1: %+v", out)
		}
	})
	t.Run("cancel: queued partitions are skipped, a running one stops at its next checkpoint", func(t *testing.T) {
		e := newRunnerEnv(t, &Options{FlushInterval: time.Millisecond, CancelPollInterval: time.Millisecond})
		j := e.submit(t, 2)
		started := make(chan struct{})
		e.outcome = func(ctx context.Context) export.Status {
			close(started)
			<-ctx.Done()
			return export.StatusFailed
		}
		outc := make(chan Outcome)
		go func() { outc <- e.r.Work(ctx, itemOf(j, 0), Delivery{"m1", 1}) }()
		<-started
		if v, err := e.r.Cancel(ctx, j.ID); err != nil || v.State != Running {
			t.Fatalf("Cancel: %v, state %v; want running until the partition stops", err, v)
		}
		if out := <-outc; !out.Done || out.Status != PartCancelled {
			t.Fatalf("running partition: %+v, want cancelled", out)
		}
		if out := e.r.Work(ctx, itemOf(j, 1), Delivery{"m2", 1}); !out.Done || out.Status != PartCancelled || e.calls != 1 {
			t.Fatalf("queued partition: %+v, %d exports; want skipped", out, e.calls)
		}
		if v := e.view(t, j.ID); v.State != Cancelled {
			t.Errorf("job %s, want cancelled", v.State)
		}
		if _, err := e.r.Cancel(ctx, j.ID); !errors.Is(err, ErrFinished) {
			t.Errorf("second Cancel: %v, want ErrFinished", err)
		}
	})
	t.Run("the poison queue fails a partition whose last worker died", func(t *testing.T) {
		e := newRunnerEnv(t, nil)
		j := e.submit(t, 1)
		rec := &Record{Status: PartRunning, Attempts: 5, Message: "m1", Worker: &Worker{"i2", "dead"}, Error: "attempt 4: 500", Started: e.now, Heartbeat: e.now}
		if err := e.r.Store().PutRecord(ctx, j.ID, 0, rec, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.r.Poisoned(ctx, itemOf(j, 0)); err != nil {
			t.Fatal(err)
		}
		if v := e.view(t, j.ID); v.State != Failed || v.Partitions[0].Status != export.StatusFailed {
			t.Errorf("job %s partition %+v, want failed", v.State, v.Partitions[0])
		}
	})
}

// TestSubmitKeyAndBound: identical requests make one job; open on-demand jobs are bounded.
func TestSubmitKeyAndBound(t *testing.T) {
	ctx := context.Background()
	e := newRunnerEnv(t, &Options{MaxOpenJobs: 2})
	a := e.submit(t, 1)
	req := a.Request
	parts := []export.Partition{{Scope: scope.MustParse(a.Partitions[0].Scope), Period: period.Period{Year: 2024, Month: 1}, Metric: "actualcost"}}
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, created, err := e.r.Submit(ctx, manifest.OnDemand, req, parts)
			if err != nil || created {
				t.Errorf("identical request: created %v, %v", created, err)
				return
			}
			ids[i] = j.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != a.ID {
			t.Errorf("identical request got job %s, want %s", id, a.ID)
		}
	}
	e.submit(t, 2)
	if _, _, err := e.r.Submit(ctx, manifest.OnDemand, Request{Scopes: []string{"/subscriptions/x"}, Periods: []string{"202402"}, Metrics: []metric.Metric{"usage"}}, parts); !errors.Is(err, ErrTooManyOpen) {
		t.Fatalf("third open job: %v, want ErrTooManyOpen", err)
	}
	// Finishing a job frees its slot; a scheduled job is never refused.
	if out := e.r.Work(ctx, itemOf(a, 0), Delivery{"m", 1}); !out.Done {
		t.Fatal(out)
	}
	if _, created, err := e.r.Submit(ctx, manifest.OnDemand, Request{Scopes: []string{"/subscriptions/x"}, Periods: []string{"202402"}, Metrics: []metric.Metric{"usage"}}, parts); err != nil || !created {
		t.Fatalf("after one job ended: created %v, %v", created, err)
	}
	if _, created, err := e.r.Submit(ctx, manifest.Scheduled, req, parts); err != nil || !created {
		t.Fatalf("scheduled job past the bound: created %v, %v", created, err)
	}
	if n := len(e.q.items); n != 1+2+1+1 {
		t.Errorf("%d messages enqueued, want 5 (identical requests enqueue nothing)", n)
	}
}

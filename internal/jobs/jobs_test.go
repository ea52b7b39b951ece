package jobs

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/store"
)

func newStore(t *testing.T) (*Store, *store.Local) {
	t.Helper()
	l, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return New(l, "usage"), l
}

func sampleJob(now time.Time) *Job {
	return &Job{
		ID: NewID(now), State: Queued, CreatedTime: now,
		Request: Request{Scopes: []string{"/subscriptions/s1"}, Periods: []string{"202401"}, Metrics: []metric.Metric{"actualcost"}},
		Partitions: []Partition{{
			Scope: "/subscriptions/s1", BillingPeriod: "202401", Metric: "actualcost", Status: PartQueued,
		}},
	}
}

func TestCreateGetSave(t *testing.T) {
	ctx := context.Background()
	s, l := newStore(t)
	now := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	j := sampleJob(now)
	if err := s.Create(ctx, j); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if got, want := s.Name(j.ID), "usage/_control/jobs/"+j.ID+".json"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	if _, _, err := l.Get(ctx, s.Name(j.ID)); err != nil {
		t.Fatalf("job blob not at its name: %v", err)
	}
	if err := s.Create(ctx, sampleJobWithID(j.ID, now)); !errors.Is(err, ErrConflict) {
		t.Errorf("second Create with the same id: got %v, want ErrConflict", err)
	}

	a, err := s.Get(ctx, j.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	b, err := s.Get(ctx, j.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if a.State != Queued || a.Version != SchemaVersion || len(a.Partitions) != 1 || !a.CreatedTime.Equal(now) {
		t.Errorf("read back %+v", a)
	}
	a.State = Running
	if err := s.Save(ctx, a); err != nil {
		t.Fatalf("Save of the current version: %v", err)
	}
	b.State = Failed
	if err := s.Save(ctx, b); !errors.Is(err, ErrConflict) {
		t.Errorf("Save of a stale version: got %v, want ErrConflict", err)
	}
	a.Partitions[0].Rows = 42
	if err := s.Save(ctx, a); err != nil {
		t.Fatalf("second Save by the same writer: %v", err)
	}
	c, err := s.Get(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Running || c.Partitions[0].Rows != 42 {
		t.Errorf("after saves: state %s rows %d, want running 42", c.State, c.Partitions[0].Rows)
	}
}

func sampleJobWithID(id string, now time.Time) *Job {
	j := sampleJob(now)
	j.ID = id
	return j
}

func TestGetMissingAndMalformed(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, id := range []string{"20240115-103000-000000000000", "../../etc/passwd", "", "20240115-103000-ABCDEF000000", "x.json"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestListOrderAndDelete(t *testing.T) {
	ctx := context.Background()
	s, l := newStore(t)
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for i := range 3 {
		j := sampleJob(base.Add(time.Duration(2-i) * time.Hour)) // created in reverse order
		if err := s.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		want = append([]string{j.ID}, want...)
	}
	// Unrelated objects under the jobs folder are ignored.
	if _, err := l.Put(ctx, "usage/_control/jobs/notes.txt", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.List(ctx, func(j *Job) error { got = append(got, j.ID); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("List order = %v, want %v", got, want)
	}
	ids, err := s.IDs(ctx)
	if err != nil || strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("IDs = %v, %v; want %v", ids, err, want)
	}
	if err := s.Delete(ctx, want[0]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, want[0]); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
	if _, err := s.Get(ctx, want[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

func TestListReportsUnreadable(t *testing.T) {
	ctx := context.Background()
	s, l := newStore(t)
	good := sampleJob(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	if err := s.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, s.Name("20240301-000001-aaaaaaaaaaaa"), strings.NewReader("{not json"), nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := s.List(ctx, func(*Job) error { n++; return nil })
	if n != 1 || err == nil {
		t.Errorf("List: %d jobs, err %v; want 1 job and an error for the unreadable one", n, err)
	}
}

func TestNewIDValid(t *testing.T) {
	now := time.Date(2024, 1, 15, 10, 30, 5, 0, time.FixedZone("x", 3600))
	id := NewID(now)
	if !ValidID(id) {
		t.Fatalf("NewID = %q, not ValidID", id)
	}
	if !strings.HasPrefix(id, "20240115-093005-") {
		t.Errorf("NewID = %q, want the UTC creation time first", id)
	}
	if NewID(now) == id {
		t.Error("two NewID calls gave the same id")
	}
}

// TestDerive: a job's state comes from its partitions' records alone.
func TestDerive(t *testing.T) {
	t0 := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	rec := func(status export.Status) *Record {
		r := &Record{Status: status, Started: t0, Heartbeat: t1}
		if FinalStatus(status) {
			r.Finished = &t1
		}
		return r
	}
	tests := []struct {
		name   string
		cancel bool
		recs   []*Record
		want   State
		parts  string
	}{
		{"nothing started", false, []*Record{nil, nil}, Queued, "queued,queued"},
		{"one running", false, []*Record{rec(PartRunning), nil}, Running, "running,queued"},
		{"retrying is not final", false, []*Record{rec(PartRetrying), rec(export.StatusCommitted)}, Running, "retrying,committed"},
		{"all committed", false, []*Record{rec(export.StatusCommitted), rec(export.StatusCommitted)}, Succeeded, "committed,committed"},
		{"one held", false, []*Record{rec(export.StatusHeld), rec(export.StatusCommitted)}, Failed, "held,committed"},
		{"one failed", false, []*Record{rec(export.StatusFailed), rec(export.StatusCommitted)}, Failed, "failed,committed"},
		{"cancelled, nothing running", true, []*Record{rec(export.StatusCommitted), nil}, Cancelled, "committed,cancelled"},
		{"cancelled, one still running", true, []*Record{rec(PartRunning), nil}, Running, "running,cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &Job{Partitions: make([]Partition, len(tt.recs))}
			if tt.cancel {
				j.CancelTime = &t1
			}
			Derive(j, tt.recs)
			var got []string
			for _, p := range j.Partitions {
				got = append(got, string(p.Status))
			}
			if j.State != tt.want || strings.Join(got, ",") != tt.parts {
				t.Errorf("state %s partitions %v, want %s %s", j.State, got, tt.want, tt.parts)
			}
			if j.State.Final() != (j.FinishedTime != nil) {
				t.Errorf("state %s with finishedTime %v", j.State, j.FinishedTime)
			}
			if (j.State == Failed || j.State == Cancelled) != (j.Error != "") {
				t.Errorf("state %s with error %q", j.State, j.Error)
			}
		})
	}
}

// failingBackend fails every call, to check that errors carry the operation.
type failingBackend struct{}

var errBackend = errors.New("backend down")

func (failingBackend) Put(context.Context, string, io.Reader, *store.PutOptions) (store.Props, error) {
	return store.Props{}, errBackend
}
func (failingBackend) Get(context.Context, string) (io.ReadCloser, store.Props, error) {
	return nil, store.Props{}, errBackend
}
func (failingBackend) List(context.Context, string, func(store.Item) error) error { return errBackend }
func (failingBackend) Delete(context.Context, string) error                       { return errBackend }

func TestBackendErrorsWrapped(t *testing.T) {
	ctx := context.Background()
	s := New(failingBackend{}, "")
	j := sampleJob(time.Now())
	checks := map[string]error{
		"create": s.Create(ctx, j),
		"save":   s.Save(ctx, j),
		"list":   s.List(ctx, func(*Job) error { return nil }),
		"delete": s.Delete(ctx, j.ID),
	}
	_, checks["get"] = s.Get(ctx, j.ID)
	for op, err := range checks {
		if !errors.Is(err, errBackend) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			t.Errorf("%s: %v, want the backend error wrapped", op, err)
		}
	}
	if got := s.Name(j.ID); got != "_control/jobs/"+j.ID+".json" {
		t.Errorf("Name without prefix = %q", got)
	}
}

// TestDeriveStaleWorker: GET judges a running record by its heartbeat: a dead worker's
// partition shows retrying (its message comes back), or failed after the last delivery.
func TestDeriveStaleWorker(t *testing.T) {
	t0 := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name     string
		attempts int
		age      time.Duration
		part     export.Status
		state    State
	}{
		{"fresh heartbeat", 5, time.Minute, PartRunning, Running},
		{"stale, deliveries left", 2, 10 * time.Minute, PartRetrying, Running},
		{"stale on the last delivery", 5, 10 * time.Minute, export.StatusFailed, Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &Job{Partitions: make([]Partition, 1)}
			DeriveAt(j, []*Record{{Status: PartRunning, Attempts: tt.attempts, Started: t0, Heartbeat: t0}}, t0.Add(tt.age))
			if j.Partitions[0].Status != tt.part || j.State != tt.state {
				t.Errorf("partition %s, job %s; want %s, %s", j.Partitions[0].Status, j.State, tt.part, tt.state)
			}
			if tt.part != PartRunning && j.Partitions[0].Error == "" {
				t.Error("no error says why")
			}
		})
	}
}

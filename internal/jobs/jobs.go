// Package jobs plans export jobs onto the work queue and runs their partitions, one per queue
// invocation.
package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/redact"
	"github.com/usage-export/usage-export/internal/store"
)

// State is the state of a job.
type State string

// Job states, derived from the partition records the workers write (see View): queued (no
// partition started), running, then succeeded (every partition committed), failed (every
// partition finished, not all committed) or cancelled (cancel asked and no partition running).
const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Final reports whether s is an end state.
func (s State) Final() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Partition statuses in a job: queued until a worker records it, running, retrying (an attempt
// ended without a final outcome; the message comes back), then an end status: the export
// outcome (committed, held, failed; see package export) or cancelled.
const (
	PartQueued    export.Status = "queued"
	PartRunning   export.Status = "running"
	PartRetrying  export.Status = "retrying"
	PartCancelled export.Status = "cancelled"
)

// FinalStatus reports whether a partition status is an end status.
func FinalStatus(s export.Status) bool {
	return s == export.StatusCommitted || s == export.StatusHeld || s == export.StatusFailed || s == PartCancelled
}

// SchemaVersion is the version of the job document; it grows only with incompatible changes.
const SchemaVersion = 2

// Request is what the job was asked to do, normalised: scopes as configured, the full list of
// billing periods (a month range expanded), and the metrics.
type Request struct {
	Scopes  []string        `json:"scopes"`
	Periods []string        `json:"periods"`
	Metrics []metric.Metric `json:"metrics"`
	// Source forces auto, usageDetails or costDetails for every scope; empty means per scope
	// from the settings.
	Source manifest.Source `json:"source,omitempty"`
	// Force publishes even when the drop guard would hold an export back.
	Force bool `json:"force"`
}

// Partition is the progress and outcome of one scope × billing period × metric.
type Partition struct {
	Scope         string        `json:"scope"`
	BillingPeriod string        `json:"billingPeriod"`
	Metric        metric.Metric `json:"metric"`
	Status        export.Status `json:"status"`
	Pages         int           `json:"pages"`
	Rows          int64         `json:"rows"`
	Bytes         int64         `json:"bytes"`
	Manifest      string        `json:"manifest,omitempty"`
	Error         string        `json:"error,omitempty"`
	// Attempts is the delivery count of the partition's message at its last attempt.
	Attempts int `json:"attempts"`
	// Worker is the process that last worked on the partition.
	Worker      *Worker    `json:"worker,omitempty"`
	UpdatedTime *time.Time `json:"updatedTime,omitempty"`
	// Source is the source that exported the partition and SourceReason why it was chosen
	// (docs/sources.md).
	Source       manifest.Source `json:"source,omitempty"`
	SourceReason string          `json:"sourceReason,omitempty"`
}

// Worker identifies a handler process: its instance (CONTAINER_NAME on Flex Consumption, else
// WEBSITE_INSTANCE_ID, else the host name) and a random id drawn at each start, so two
// processes never share an identity even where instance names repeat.
type Worker struct {
	Instance string `json:"instance"`
	Process  string `json:"process"`
}

// String returns instance/process.
func (w Worker) String() string { return w.Instance + "/" + w.Process }

// Job is one export: the stored document ({prefix}/_control/jobs/{id}.json, written when the
// job is created and when it is cancelled) with the partitions' progress and the state filled
// in from the workers' records by View.
type Job struct {
	Version       int                    `json:"version"`
	ID            string                 `json:"id"`
	ExecutionType manifest.ExecutionType `json:"executionType"`
	State         State                  `json:"state"`
	CreatedTime   time.Time              `json:"createdTime"`
	StartedTime   *time.Time             `json:"startedTime,omitempty"`
	FinishedTime  *time.Time             `json:"finishedTime,omitempty"`
	// CancelTime is when DELETE asked for the job to stop.
	CancelTime *time.Time `json:"cancelTime,omitempty"`
	// EnqueuedTime is when every partition's message was on the queue.
	EnqueuedTime *time.Time  `json:"enqueuedTime,omitempty"`
	RequestKey   string      `json:"requestKey"`
	Request      Request     `json:"request"`
	Partitions   []Partition `json:"partitions"`
	Error        string      `json:"error,omitempty"`

	etag string // of the stored version this value was read from or written as
}

// ETag returns the store version this value was last read from or saved as ("" if never).
func (j *Job) ETag() string { return j.etag }

// Totals sums the partitions' pages, rows and bytes.
func (j *Job) Totals() (pages int, rows, bytes int64) {
	for _, p := range j.Partitions {
		pages += p.Pages
		rows += p.Rows
		bytes += p.Bytes
	}
	return pages, rows, bytes
}

// Clone returns a deep copy of j (the etag included).
func (j *Job) Clone() *Job {
	c := *j
	c.Request.Scopes = append([]string(nil), j.Request.Scopes...)
	c.Request.Periods = append([]string(nil), j.Request.Periods...)
	c.Request.Metrics = append([]metric.Metric(nil), j.Request.Metrics...)
	c.Partitions = append([]Partition(nil), j.Partitions...)
	return &c
}

// Errors that callers branch on with errors.Is.
var (
	// ErrNotFound reports that no job has the id (or the id is malformed).
	ErrNotFound = errors.New("job not found")
	// ErrConflict reports that the stored job changed since it was read: another worker wrote it.
	ErrConflict = errors.New("job changed by another worker")
)

// Backend is what the job store needs from an output store (store.Local, store.Blob).
type Backend interface {
	Put(ctx context.Context, name string, r io.Reader, o *store.PutOptions) (store.Props, error)
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
	List(ctx context.Context, prefix string, fn func(store.Item) error) error
	Delete(ctx context.Context, name string) error
}

// Store keeps job documents in a Backend. It is safe for concurrent use; concurrent writers of
// one job are told apart by ETags (Save fails with ErrConflict).
type Store struct {
	be  Backend
	dir string
	now func() time.Time // the clock View judges heartbeats by
}

// controlDir is the control tree beside the data tree; lake engines skip "_" folders.
const controlDir = "_control"

// New returns a Store that keeps jobs under prefix/_control/jobs.
func New(be Backend, prefix string) *Store {
	dir := path.Join(controlDir, "jobs")
	if p := strings.Trim(prefix, "/"); p != "" {
		dir = path.Join(p, dir)
	}
	return &Store{be: be, dir: dir, now: time.Now}
}

// WithClock returns a Store over the same documents whose View judges heartbeats by now.
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

// Name returns the blob name of job id.
func (s *Store) Name(id string) string { return s.dir + "/" + id + ".json" }

// idPattern is the shape of a job id: creation time (UTC, sortable) and 48 random bits.
var idPattern = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}-[0-9a-f]{12}$`)

// NewID returns a new job id for a job created at now, e.g. 20240115-103000-a1b2c3d4e5f6. Ids
// sort by creation time.
func NewID(now time.Time) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("jobs: reading random bytes: %v", err)) // crypto/rand does not fail on Linux
	}
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the shape NewID produces. Only valid ids reach the store, so a
// request path can never name another blob.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Create stores a new job; it fails if a job with the same id exists.
func (s *Store) Create(ctx context.Context, j *Job) error {
	return s.put(ctx, j, &store.PutOptions{ContentType: "application/json", IfNoneMatch: true})
}

// Save stores j. When j was read from or written to the store before, the write succeeds only
// if the stored version is still that one; otherwise it fails with ErrConflict.
func (s *Store) Save(ctx context.Context, j *Job) error {
	return s.put(ctx, j, &store.PutOptions{ContentType: "application/json", IfMatch: j.etag})
}

func (s *Store) put(ctx context.Context, j *Job, o *store.PutOptions) error {
	if !ValidID(j.ID) {
		return fmt.Errorf("saving job: %w: malformed id %q", ErrNotFound, j.ID)
	}
	j.Version = SchemaVersion
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding job %s: %w", j.ID, err)
	}
	b = redact.JSON(b) // a partition's error text, kept in the record and read through the API
	props, err := s.be.Put(ctx, s.Name(j.ID), bytes.NewReader(append(b, '\n')), o)
	if errors.Is(err, store.ErrPrecondition) {
		return fmt.Errorf("saving job %s: %w", j.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("saving job %s: %w", j.ID, err)
	}
	j.etag = props.ETag
	return nil
}

// maxJobBytes bounds a job document read back (36 months × many scopes × 3 metrics stays far
// below it).
const maxJobBytes = 8 << 20

// Get reads job id, or fails with ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Job, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("reading job: %w: malformed id %q", ErrNotFound, id)
	}
	return s.read(ctx, s.Name(id))
}

func (s *Store) read(ctx context.Context, name string) (*Job, error) {
	rc, props, err := s.be.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading job %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxJobBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading job %s: %w", name, err)
	}
	if len(b) > maxJobBytes {
		return nil, fmt.Errorf("reading job %s: larger than %d bytes", name, maxJobBytes)
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("decoding job %s: %w", name, err)
	}
	j.etag = props.ETag
	return &j, nil
}

// List calls fn for every stored job, oldest first. A document that cannot be read is skipped
// and reported in the returned error after the others were listed.
func (s *Store) List(ctx context.Context, fn func(*Job) error) error {
	var names []string
	err := s.be.List(ctx, s.dir+"/", func(it store.Item) error {
		base := path.Base(it.Name)
		if strings.HasSuffix(base, ".json") && ValidID(strings.TrimSuffix(base, ".json")) {
			names = append(names, it.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	var errs []error
	for _, n := range names {
		j, err := s.read(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := fn(j); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// IDs returns the ids of the stored jobs, oldest first, without reading them.
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.be.List(ctx, s.dir+"/", func(it store.Item) error {
		id := strings.TrimSuffix(path.Base(it.Name), ".json")
		if strings.HasSuffix(it.Name, ".json") && ValidID(id) {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	return ids, nil
}

// Delete removes job id; a missing job is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("deleting job: %w: malformed id %q", ErrNotFound, id)
	}
	if err := s.be.Delete(ctx, s.Name(id)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting job %s: %w", id, err)
	}
	return nil
}

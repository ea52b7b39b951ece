package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/redact"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// Record is what a worker writes about one partition of a job: the status of its last attempt,
// progress and outcome. Records are written with conditional puts, so two workers never
// overwrite each other unseen.
type Record struct {
	Status   export.Status `json:"status"`
	Attempts int           `json:"attempts"`
	// Message is the queue message id of the delivery that wrote the record: a redelivery of the
	// same message after its worker died takes the partition over at once.
	Message  string  `json:"message,omitempty"`
	Worker   *Worker `json:"worker,omitempty"`
	Pages    int     `json:"pages"`
	Rows     int64   `json:"rows"`
	Bytes    int64   `json:"bytes"`
	Manifest string  `json:"manifest,omitempty"`
	Error    string  `json:"error,omitempty"`
	// Source and SourceReason say which source exported the partition and why.
	Source       manifest.Source `json:"source,omitempty"`
	SourceReason string          `json:"sourceReason,omitempty"`
	Started      time.Time       `json:"startedTime"`
	// Heartbeat is refreshed while the worker runs; a running record whose heartbeat is older
	// than Options.StaleAfter belongs to a dead worker.
	Heartbeat time.Time  `json:"heartbeatTime"`
	Finished  *time.Time `json:"finishedTime,omitempty"`

	etag string
}

// recordName is the blob of partition i of job id.
func (s *Store) recordName(id string, i int) string {
	return s.dir + "/" + id + "/p" + strconv.Itoa(i) + ".json"
}

// GetRecord reads partition i's record; (nil, nil) when no worker wrote one yet.
func (s *Store) GetRecord(ctx context.Context, id string, i int) (*Record, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("reading partition record: %w: malformed id %q", ErrNotFound, id)
	}
	rc, props, err := s.be.Get(ctx, s.recordName(id, i))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %s partition %d: %w", id, i, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxJobBytes))
	if err != nil {
		return nil, fmt.Errorf("reading job %s partition %d: %w", id, i, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding job %s partition %d: %w", id, i, err)
	}
	r.etag = props.ETag
	return &r, nil
}

// PutRecord writes partition i's record. prev is the record it replaces (nil: none may exist);
// the write fails with ErrConflict when another worker wrote the record since.
func (s *Store) PutRecord(ctx context.Context, id string, i int, r *Record, prev *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding job %s partition %d: %w", id, i, err)
	}
	b = redact.JSON(b) // the partition's error text, read back through the API
	o := &store.PutOptions{ContentType: "application/json", IfNoneMatch: prev == nil}
	if prev != nil {
		o.IfMatch = prev.etag
	}
	props, err := s.be.Put(ctx, s.recordName(id, i), bytes.NewReader(b), o)
	if errors.Is(err, store.ErrPrecondition) {
		return fmt.Errorf("saving job %s partition %d: %w", id, i, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("saving job %s partition %d: %w", id, i, err)
	}
	r.etag = props.ETag
	return nil
}

// View reads job id with every partition's record and derives its state.
func (s *Store) View(ctx context.Context, id string) (*Job, error) {
	j, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	recs := make([]*Record, len(j.Partitions))
	err = s.be.List(ctx, s.dir+"/"+id+"/", func(it store.Item) error {
		base := it.Name[strings.LastIndexByte(it.Name, '/')+1:]
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(base, "p"), ".json"))
		if err != nil || n < 0 || n >= len(recs) {
			return nil // not a record of this plan
		}
		r, err := s.GetRecord(ctx, id, n)
		if err != nil {
			return err
		}
		recs[n] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading job %s: %w", id, err)
	}
	DeriveAt(j, recs, s.now())
	return j, nil
}

// Derive is DeriveAt without judging heartbeats (every running record counts as running).
func Derive(j *Job, recs []*Record) { DeriveAt(j, recs, time.Time{}) }

// DeriveAt fills j's partitions from their records (nil: not started) and sets its state,
// start, end and error. A cancelled job's unstarted partitions show as cancelled (the workers
// skip them). When now is set, a running record whose heartbeat is older than DefaultStaleAfter
// belongs to a worker that died: the partition shows as retrying (its message comes back), or as
// failed when that was its last delivery (the message is on the poison queue; the timer records
// the failure for good).
func DeriveAt(j *Job, recs []*Record, now time.Time) {
	counts := map[export.Status]int{}
	var started, finished *time.Time
	running := 0
	for i := range j.Partitions {
		p := &j.Partitions[i]
		var r *Record
		if i < len(recs) {
			r = recs[i]
		}
		if r == nil {
			p.Status = PartQueued
			if j.CancelTime != nil {
				p.Status = PartCancelled
			}
			counts[p.Status]++
			continue
		}
		p.Status, p.Attempts, p.Pages, p.Rows, p.Bytes = r.Status, r.Attempts, r.Pages, r.Rows, r.Bytes
		p.Manifest, p.Error, p.Worker = r.Manifest, r.Error, r.Worker
		p.Source, p.SourceReason = r.Source, r.SourceReason
		hb := r.Heartbeat
		p.UpdatedTime = &hb
		if p.Status == PartRunning && !now.IsZero() && now.Sub(hb) > DefaultStaleAfter {
			p.Status = PartRetrying
			p.Error = fmt.Sprintf("the worker of delivery %d stopped without an outcome (no heartbeat since %s); the message comes back", r.Attempts, hb.Format(time.RFC3339))
			if r.Attempts >= workqueue.MaxDequeueCount {
				p.Status = export.StatusFailed
				p.Error = fmt.Sprintf("the worker of the last delivery (%d) stopped without an outcome; the message is on the poison queue", r.Attempts)
				fin := hb
				r = &Record{Finished: &fin, Started: r.Started}
			}
		}
		if p.Status == PartRunning || p.Status == PartRetrying {
			running++
		}
		counts[p.Status]++
		if st := r.Started; started == nil || st.Before(*started) {
			started = &st
		}
		if r.Finished != nil && (finished == nil || r.Finished.After(*finished)) {
			finished = r.Finished
		}
	}
	n := len(j.Partitions)
	final := counts[export.StatusCommitted] + counts[export.StatusHeld] + counts[export.StatusFailed] + counts[PartCancelled]
	j.StartedTime, j.FinishedTime, j.Error = started, nil, ""
	switch {
	case j.CancelTime != nil && counts[PartRunning] == 0:
		j.State = Cancelled
		j.FinishedTime = j.CancelTime
		if finished != nil && finished.After(*j.CancelTime) {
			j.FinishedTime = finished
		}
		j.Error = fmt.Sprintf("cancelled: %d of %d partition(s) committed before the cancel", counts[export.StatusCommitted], n)
	case final == n && counts[export.StatusCommitted] == n:
		j.State, j.FinishedTime = Succeeded, finished
	case final == n:
		j.State, j.FinishedTime = Failed, finished
		var why []string
		if c := counts[export.StatusFailed]; c > 0 {
			why = append(why, fmt.Sprintf("%d failed", c))
		}
		if c := counts[export.StatusHeld]; c > 0 {
			why = append(why, fmt.Sprintf("%d held by the drop guard (re-run with \"force\": true to publish)", c))
		}
		if c := counts[PartCancelled]; c > 0 {
			why = append(why, fmt.Sprintf("%d cancelled", c))
		}
		j.Error = fmt.Sprintf("%d of %d partition(s) not committed: %s", n-counts[export.StatusCommitted], n, strings.Join(why, "; "))
	case started != nil:
		j.State = Running
	default:
		j.State = Queued
	}
}

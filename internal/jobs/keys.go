package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/store"
)

// keyRecord maps a request key to the job made for it ({dir}/keys/{key}.json).
type keyRecord struct {
	ID   string `json:"id"`
	etag string
}

func (s *Store) keyName(key string) string { return s.dir + "/keys/" + key + ".json" }

// getKey returns the job recorded for a request key, or nil.
func (s *Store) getKey(ctx context.Context, key string) (*keyRecord, error) {
	rc, props, err := s.be.Get(ctx, s.keyName(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading request key: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return nil, fmt.Errorf("reading request key: %w", err)
	}
	var k keyRecord
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("decoding request key: %w", err)
	}
	k.etag = props.ETag
	return &k, nil
}

// putKey records id for key, replacing prev (nil: the key must not exist); ErrConflict when an
// identical request recorded its job first.
func (s *Store) putKey(ctx context.Context, key, id string, prev *keyRecord) error {
	b, _ := json.Marshal(keyRecord{ID: id})
	o := &store.PutOptions{ContentType: "application/json", IfNoneMatch: prev == nil}
	if prev != nil {
		o.IfMatch = prev.etag
	}
	_, err := s.be.Put(ctx, s.keyName(key), bytes.NewReader(b), o)
	if errors.Is(err, store.ErrPrecondition) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("recording request key: %w", err)
	}
	return nil
}

func (s *Store) openName(id string) string { return s.dir + "/open/" + id }

// markOpen records an on-demand job as open (counted against MaxOpenJobs until it ends).
func (s *Store) markOpen(ctx context.Context, id string) error {
	if _, err := s.be.Put(ctx, s.openName(id), bytes.NewReader(nil), &store.PutOptions{}); err != nil {
		return fmt.Errorf("recording an open job: %w", err)
	}
	return nil
}

// openCount counts the open on-demand jobs. Markers of jobs that have ended (or vanished) are
// removed on the way, so the count costs one read per open job.
func (s *Store) openCount(ctx context.Context) (int, error) {
	var ids []string
	err := s.be.List(ctx, s.dir+"/open/", func(it store.Item) error {
		if id := path.Base(it.Name); ValidID(id) && strings.HasPrefix(it.Name, s.dir+"/open/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("listing open jobs: %w", err)
	}
	n := 0
	for _, id := range ids {
		j, err := s.View(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		if err == nil && !j.State.Final() {
			n++
			continue
		}
		if err := s.be.Delete(ctx, s.openName(id)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("removing an ended job's open marker: %w", err)
		}
	}
	return n, nil
}

// Prune deletes the jobs that ended before cutoff: their documents, partition records and open
// markers. Jobs are listed oldest first, so it stops at the first job created after cutoff. It
// returns how many jobs it deleted.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	ids, err := s.IDs(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if id >= cutoff.UTC().Format("20060102-150405") {
			break
		}
		j, err := s.View(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if !j.State.Final() || j.FinishedTime == nil || !j.FinishedTime.Before(cutoff) {
			continue
		}
		var names []string
		if err := s.be.List(ctx, s.dir+"/"+id+"/", func(it store.Item) error { names = append(names, it.Name); return nil }); err != nil {
			return n, fmt.Errorf("pruning job %s: %w", id, err)
		}
		names = append(names, s.openName(id))
		for _, name := range names {
			if err := s.be.Delete(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return n, fmt.Errorf("pruning job %s: %w", id, err)
			}
		}
		if err := s.Delete(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

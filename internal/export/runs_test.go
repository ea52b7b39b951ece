package export

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/verify"
)

// holdOne runs p with a dropping source and returns the held run's id.
func holdOne(t *testing.T, e *Exporter, src *fakeSource, p Partition) string {
	t.Helper()
	src.drop = true
	defer func() { src.drop = false }()
	sum, _ := e.Run(context.Background(), []Partition{p})
	if r := sum.Partitions[0]; r.Status != StatusHeld {
		t.Fatalf("status %s (%s), want held", r.Status, r.Error)
	}
	return sum.Partitions[0].RunID
}

// TestPublishHeld: a held run published by hand becomes the live export, checked against its
// manifest by verify; the run folder is gone.
func TestPublishHeld(t *testing.T) {
	st := newLocalStore(t)
	ctx := context.Background()
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	src := &fakeSource{perDay: 2}
	e := newTestExporter(t, st, src, Options{PartDays: 7})
	if sum, _ := e.Run(ctx, []Partition{p}); sum.Partitions[0].Status != StatusCommitted {
		t.Fatal("first run did not commit")
	}
	id := holdOne(t, e, src, p)
	folders, err := e.RunFolders(ctx)
	if err != nil || len(folders) != 1 || folders[0].Held == nil || folders[0].RunID != id || folders[0].Active {
		t.Fatalf("run folders %+v %v, want the one held run", folders, err)
	}
	m, err := e.PublishHeld(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	live := liveManifest(t, st, e, p)
	if live.RunInfo.RunID != id || live.Status != manifest.StatusCommitted || live.DataRowCount != m.DataRowCount || live.DataRowCount != 10 {
		t.Errorf("live after publish: run %s status %s rows %d, want run %s committed 10", live.RunInfo.RunID, live.Status, live.DataRowCount, id)
	}
	b, _ := os.ReadFile(filepath.Join(st.Dir(), e.ManifestName(p)))
	if err := schemas.Validate(schemas.Manifest, b); err != nil {
		t.Error(err)
	}
	rep, err := verify.Partition(ctx, st, e.ManifestName(p))
	if err != nil || !rep.OK() {
		t.Errorf("verify after publish: %+v %v", rep, err)
	}
	if got := readLines(t, filepath.Join(st.Dir(), e.Dir(p))); len(got) != 10 {
		t.Errorf("%d lines live, want 10", len(got))
	}
	if folders, _ := e.RunFolders(ctx); len(folders) != 0 {
		t.Errorf("run folders left: %+v", folders)
	}
	if _, err := e.PublishHeld(ctx, id); !errors.Is(err, ErrNoHeldRun) {
		t.Errorf("second publish: %v, want ErrNoHeldRun", err)
	}
}

// TestHeldStaleAndDiscard: a held run whose live export was replaced since cannot be published;
// it can be discarded, which leaves the live export alone.
func TestHeldStaleAndDiscard(t *testing.T) {
	st := newLocalStore(t)
	ctx := context.Background()
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	src := &fakeSource{perDay: 2}
	e := newTestExporter(t, st, src, Options{PartDays: 7})
	e.Run(ctx, []Partition{p})
	id := holdOne(t, e, src, p)
	if sum, _ := e.Run(ctx, []Partition{p}); sum.Partitions[0].Status != StatusCommitted {
		t.Fatal("later run did not commit")
	}
	later := liveManifest(t, st, e, p).RunInfo.RunID
	if _, err := e.PublishHeld(ctx, id); !errors.Is(err, ErrHeldStale) {
		t.Fatalf("publish over a newer export: %v, want ErrHeldStale", err)
	}
	if err := e.DiscardHeld(ctx, id); err != nil {
		t.Fatal(err)
	}
	if folders, _ := e.RunFolders(ctx); len(folders) != 0 {
		t.Errorf("run folders left: %+v", folders)
	}
	if got := liveManifest(t, st, e, p).RunInfo.RunID; got != later {
		t.Errorf("discard changed the live export: %s, want %s", got, later)
	}
}

// TestClean: held runs expire after the held retention, abandoned folders after the abandoned
// one; nothing younger, and no folder of an unfinished run, is removed.
func TestClean(t *testing.T) {
	st := newLocalStore(t)
	ctx := context.Background()
	p := Partition{Scope: testScope, Period: feb2024, Metric: "actualcost"}
	src := &fakeSource{perDay: 2}
	e := newTestExporter(t, st, src, Options{PartDays: 7})
	e.Run(ctx, []Partition{p})
	held := holdOne(t, e, src, p)
	abandoned := join(e.opts.Prefix, controlDir, "runs", "abandoned-run", p.RelPath(), "part-20240201-20240207.jsonl.gz.staged")
	if _, err := st.Put(ctx, abandoned, strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		after time.Duration
		want  []string
	}{
		{time.Hour, nil},
		{DefaultAbandonedRetention + time.Hour, []string{"abandoned-run"}},
		{DefaultHeldRetention + time.Hour, []string{held}},
	} {
		got, err := e.Clean(ctx, now.Add(tc.after), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range got {
			ids = append(ids, f.RunID)
		}
		if len(ids) != len(tc.want) || (len(ids) == 1 && ids[0] != tc.want[0]) {
			t.Errorf("clean after %v removed %v, want %v", tc.after, ids, tc.want)
		}
	}
	if folders, _ := e.RunFolders(ctx); len(folders) != 0 {
		t.Errorf("run folders left: %+v", folders)
	}
}

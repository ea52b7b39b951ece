package export

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// Run folders under _control/runs/<runId>/<metric=…/scope=…/billingPeriod=…>/ hold a run's
// staged parts until it publishes. A folder outlives its run when the drop guard held the run
// (its _manifest.json says "held") or when the run was abandoned (an incompatible checkpoint was
// discarded, or a crash left staged parts the checkpoint no longer names).

// Cleanup rule defaults: how long a held run waits for a person, and how long an abandoned run
// folder is kept for inspection, after its newest object was written.
const (
	DefaultHeldRetention      = 30 * 24 * time.Hour
	DefaultAbandonedRetention = 7 * 24 * time.Hour
)

// Errors of held-run actions.
var (
	// ErrNoHeldRun: the run id names no held run.
	ErrNoHeldRun = errors.New("no held run with this id")
	// ErrHeldStale: the live export changed after the run was held; publishing it would
	// replace newer data.
	ErrHeldStale = errors.New("the live export changed since the run was held")
	// ErrRunActive: the run folder belongs to an unfinished run that the next export continues.
	ErrRunActive = errors.New("the run is unfinished and is continued by the next export")
)

// RunFolder is one run folder of the control tree.
type RunFolder struct {
	RunID   string
	RelPath string // metric=…/scope=…/billingPeriod=…
	Dir     string // the folder's store name, without the trailing '/'
	// Held is the held manifest, nil when the folder holds no held run.
	Held *manifest.Manifest
	// Newest is when the folder's newest object was written.
	Newest time.Time
	// Active says that the partition's checkpoint names this run: it is unfinished, not abandoned.
	Active bool
	// Objects and Bytes count what the folder holds.
	Objects int
	Bytes   int64
}

// Partition returns the partition of a held run, from its manifest.
func (f *RunFolder) Partition() (Partition, error) {
	if f.Held == nil {
		return Partition{}, fmt.Errorf("run %s: %w", f.RunID, ErrNoHeldRun)
	}
	sc, err := scope.Parse(f.Held.Scope)
	if err != nil {
		return Partition{}, fmt.Errorf("held manifest of run %s: %w", f.RunID, err)
	}
	p, err := period.Parse(f.Held.BillingPeriod)
	if err != nil {
		return Partition{}, fmt.Errorf("held manifest of run %s: %w", f.RunID, err)
	}
	return Partition{Scope: sc, Period: p, Metric: f.Held.Metric}, nil
}

// RunFolders lists the run folders of the control tree, oldest first.
func (e *Exporter) RunFolders(ctx context.Context) ([]RunFolder, error) {
	root := join(e.opts.Prefix, controlDir, "runs") + "/"
	byDir := map[string]*RunFolder{}
	err := e.st.List(ctx, root, func(it store.Item) error {
		rest := strings.TrimPrefix(it.Name, root)
		segs := strings.SplitN(rest, "/", 5) // runId, metric=, scope=, billingPeriod=, name
		if len(segs) < 5 {
			return nil
		}
		dir := root + strings.Join(segs[:4], "/")
		f := byDir[dir]
		if f == nil {
			f = &RunFolder{RunID: segs[0], RelPath: strings.Join(segs[1:4], "/"), Dir: dir}
			byDir[dir] = f
		}
		f.Objects++
		f.Bytes += it.Size
		if it.LastModified.After(f.Newest) {
			f.Newest = it.LastModified
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing run folders: %w", err)
	}
	out := make([]RunFolder, 0, len(byDir))
	for _, f := range byDir {
		m, err := e.readManifest(ctx, path.Join(f.Dir, manifest.FileName))
		if err != nil {
			return nil, err
		}
		if m != nil && m.Status == manifest.StatusHeld {
			f.Held = m
		}
		cpName := join(e.opts.Prefix, controlDir, "checkpoints", f.RelPath, "checkpoint.json")
		if b, err := e.readBlob(ctx, cpName); err != nil {
			return nil, err
		} else if b != nil && strings.Contains(string(b), `"runId":"`+f.RunID+`"`) {
			f.Active = true
		}
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Newest.Equal(out[j].Newest) {
			return out[i].Newest.Before(out[j].Newest)
		}
		return out[i].Dir < out[j].Dir
	})
	return out, nil
}

// heldRun returns the held run folder with the given id.
func (e *Exporter) heldRun(ctx context.Context, runID string) (*RunFolder, error) {
	folders, err := e.RunFolders(ctx)
	if err != nil {
		return nil, err
	}
	for i := range folders {
		if folders[i].RunID == runID && folders[i].Held != nil {
			return &folders[i], nil
		}
	}
	return nil, fmt.Errorf("run %s: %w", runID, ErrNoHeldRun)
}

// PublishHeld publishes a run the drop guard held back, as the run itself would have without
// the guard: under the partition's lease, its parts replace the live ones and its manifest is
// written last. It refuses (ErrHeldStale) when the live export is no longer the one the run was
// compared with, and (ErrRunActive) while another run of the partition is unfinished. It is
// idempotent: an interrupted publish is finished by calling it again.
func (e *Exporter) PublishHeld(ctx context.Context, runID string) (*manifest.Manifest, error) {
	f, err := e.heldRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	p, err := f.Partition()
	if err != nil {
		return nil, err
	}
	lease, err := e.st.AcquireLease(ctx, e.leaseName(p), e.opts.LeaseTTL)
	if err != nil {
		return nil, fmt.Errorf("taking partition lease: %w", err)
	}
	defer func() { _ = lease.Release(context.WithoutCancel(ctx)) }()
	if b, err := e.readBlob(ctx, e.checkpointName(p)); err != nil {
		return nil, err
	} else if b != nil {
		return nil, fmt.Errorf("partition %s: another run is unfinished; publish after it ends: %w", p.RelPath(), ErrRunActive)
	}
	live, err := e.readManifest(ctx, e.ManifestName(p))
	if err != nil {
		return nil, err
	}
	m := f.Held
	if live != nil && live.RunInfo.RunID != runID && (m.Previous == nil || live.RunInfo.RunID != m.Previous.RunID) {
		return nil, fmt.Errorf("run %s of %s: live run is %s: %w; discard it", runID, p.RelPath(), live.RunInfo.RunID, ErrHeldStale)
	}
	dir := e.Dir(p)
	keep := map[string]bool{}
	lastRenew := time.Now()
	for i, b := range m.Blobs {
		liveName := path.Join(dir, strings.TrimSuffix(path.Base(b.BlobName), stagedSuffix))
		keep[liveName] = true
		if time.Since(lastRenew) > e.opts.LeaseTTL/3 {
			if err := lease.Renew(ctx); err != nil {
				return nil, fmt.Errorf("renewing partition lease: %w", err)
			}
			lastRenew = time.Now()
		}
		meta := map[string]string{"runid": runID, "rows": strconv.FormatInt(b.DataRowCount, 10), "sha256": b.SHA256}
		err := e.st.Move(ctx, b.BlobName, liveName, &store.PutOptions{Metadata: meta, ContentType: contentTypeOf(liveName)})
		if errors.Is(err, store.ErrNotFound) {
			// Moved by an earlier, interrupted publish: the live part must be this run's.
			props, perr := e.st.Props(ctx, liveName)
			if perr != nil || props.Metadata["runid"] != runID {
				return nil, fmt.Errorf("publishing held part %s: staged part missing and live part not from run %s", liveName, runID)
			}
		} else if err != nil {
			return nil, fmt.Errorf("publishing held part %s: %w", liveName, err)
		}
		m.Blobs[i].BlobName = liveName
	}
	var stale []string
	err = e.st.List(ctx, dir+"/", func(it store.Item) error {
		if strings.HasPrefix(path.Base(it.Name), partPrefix) && !keep[it.Name] {
			stale = append(stale, it.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing live parts: %w", err)
	}
	for _, name := range stale {
		if err := e.st.Delete(ctx, name); err != nil {
			return nil, fmt.Errorf("removing stale part %s: %w", name, err)
		}
	}
	m.Status = manifest.StatusCommitted
	if err := e.putManifest(ctx, e.ManifestName(p), m); err != nil {
		return nil, err
	}
	e.deleteTree(ctx, f.Dir+"/")
	return m, nil
}

// DiscardHeld deletes a held run's folder; the live export stays as it is.
func (e *Exporter) DiscardHeld(ctx context.Context, runID string) error {
	f, err := e.heldRun(ctx, runID)
	if err != nil {
		return err
	}
	if f.Active {
		return fmt.Errorf("run %s: %w", runID, ErrRunActive)
	}
	e.deleteTree(ctx, f.Dir+"/")
	return nil
}

// CleanRule says when a run folder is removed: a held run HeldRetention after it was held, an
// abandoned folder AbandonedRetention after its newest object was written; 0 means the default.
// Folders of unfinished runs (named by their partition's checkpoint) are never removed.
type CleanRule struct {
	HeldRetention      time.Duration
	AbandonedRetention time.Duration
}

// Clean removes the run folders the rule expires at now and returns them. With dryRun it only
// returns them.
func (e *Exporter) Clean(ctx context.Context, now time.Time, rule *CleanRule, dryRun bool) ([]RunFolder, error) {
	held, abandoned := DefaultHeldRetention, DefaultAbandonedRetention
	if rule != nil && rule.HeldRetention > 0 {
		held = rule.HeldRetention
	}
	if rule != nil && rule.AbandonedRetention > 0 {
		abandoned = rule.AbandonedRetention
	}
	folders, err := e.RunFolders(ctx)
	if err != nil {
		return nil, err
	}
	var out []RunFolder
	for _, f := range folders {
		age := now.Sub(f.Newest)
		if f.Active || (f.Held != nil && age < held) || (f.Held == nil && age < abandoned) {
			continue
		}
		if !dryRun {
			e.deleteTree(ctx, f.Dir+"/")
		}
		out = append(out, f)
	}
	return out, nil
}

// LiveManifest returns the live manifest of p, or nil when p has none.
func (e *Exporter) LiveManifest(ctx context.Context, p Partition) (*manifest.Manifest, error) {
	return e.readManifest(ctx, e.ManifestName(p))
}

// Unfinished reports whether p has a checkpoint: an unfinished run the next export resumes.
func (e *Exporter) Unfinished(ctx context.Context, p Partition) (bool, error) {
	b, err := e.readBlob(ctx, e.checkpointName(p))
	return b != nil, err
}

package export

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
)

// runPartition exports p under its lease: it picks the source, resumes the unfinished run or
// starts one, writes the listings not yet checkpointed, builds the manifest and publishes it,
// unless the drop guard holds the new export back.
func (e *Exporter) runPartition(ctx context.Context, p Partition, src Source, sem *slots, res *Result) error {
	ctx, release, err := e.holdLease(ctx, p)
	if err != nil {
		return err
	}
	defer release()

	now := e.opts.Now().UTC()
	status := p.Period.StatusAt(now, e.opts.RestatementDays)
	if status == period.Future {
		return fmt.Errorf("billing period %s has not started", p.Period)
	}
	live, err := e.readManifest(ctx, e.ManifestName(p))
	if err != nil {
		return err
	}
	src, cp, err := e.startRun(ctx, p, src, live, res)
	if err != nil {
		return err
	}
	if cp.Phase == phaseWriting {
		if err := e.writeListings(ctx, p, src, cp, sem, res); err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return err
		}
	}
	m := e.runManifest(p, src, cp, live, status, now, res)
	if cp.Phase == phaseWriting && live != nil && status != period.Open && !e.opts.NoDropGuard {
		if why := e.dropGuard(live, m); why != "" {
			return e.hold(ctx, p, cp, m, why, res)
		}
	}
	return e.commitRun(ctx, p, cp, m, res)
}

// startRun picks the source of p (Options.Pick, given the live manifest) and loads the
// partition's unfinished run, or starts a new one.
func (e *Exporter) startRun(ctx context.Context, p Partition, src Source, live *manifest.Manifest, res *Result) (Source, *checkpoint, error) {
	log := zerolog.Ctx(ctx)
	if e.opts.Pick != nil {
		var err error
		if src, res.Reason, err = e.opts.Pick(p, live); err != nil {
			return nil, nil, fmt.Errorf("choosing the source: %w", err)
		}
		log.Info().Str("source", src.Name()).Str("reason", res.Reason).Msg("source chosen")
	}
	res.Source = src.Name()
	cp, err := e.loadCheckpoint(ctx, p, src, live)
	if err != nil {
		return nil, nil, err
	}
	res.RunID, res.Resumed = cp.RunID, cp.Resumed > 0
	if cp.Resumed > 0 {
		log.Info().Str("run_id", cp.RunID).Int("done_parts", len(cp.Parts)).Str("phase", cp.Phase).Msg("resuming interrupted export")
	}
	return src, cp, nil
}

// runManifest builds the manifest of the run with its change report against the live one, and
// records its figures in res.
func (e *Exporter) runManifest(p Partition, src Source, cp *checkpoint, live *manifest.Manifest, status period.Status, now time.Time, res *Result) *manifest.Manifest {
	m := e.buildManifest(p, src, cp, status, now)
	m.SourceReason = res.Reason
	res.Rows, res.Bytes, res.Parts = m.DataRowCount, m.ByteCount, m.BlobCount
	res.subs = m.Coverage.SubscriptionIDs
	for _, ld := range cp.Listings {
		res.Pages += ld.Pages
	}
	switch {
	case live != nil && live.RunInfo.RunID == cp.RunID:
		// This run's manifest is live already (it crashed after writing it, before clearing
		// the checkpoint): keep the change report it made against the export it replaced.
		m.Previous = live.Previous
	case live != nil && live.Status == manifest.StatusCommitted:
		m.Previous = previous(live, m)
	}
	return m
}

// writeListings runs every listing of the plan not yet in the checkpoint, one after another
// (a scope's calls share one rate budget), recording each with its parts as it completes. An
// interrupted listing is run again from its first page: a nextLink is never kept across runs.
func (e *Exporter) writeListings(ctx context.Context, p Partition, src Source, cp *checkpoint, sem *slots, res *Result) error {
	layout := layoutOf(p, cp.PartDays)
	meta := map[string]string{"runid": cp.RunID}
	var pages int
	var records, received int64
	for _, ld := range cp.Listings {
		pages += ld.Pages
		records += ld.Records
	}
	if cp.Interrupted != "" {
		if plan, ok := split(cp.Plan, cp.Interrupted, cp.PartDays); ok {
			zerolog.Ctx(ctx).Info().Str("listing", cp.Interrupted).Msg("the listing did not finish in the last run: listing it in two halves")
			cp.Plan = plan
		}
		cp.Interrupted = ""
	}
	for i := 0; i < len(cp.Plan); i++ {
		pl := cp.Plan[i]
		if _, ok := cp.Listings[pl.Key]; ok {
			continue
		}
		c, err := pl.chunk(p)
		if err != nil {
			return err
		}
		done := len(cp.Listings)
		saved := savedRows(cp)
		onPage := func(pg paging.Page) {
			pages++
			records += int64(pg.Records)
			received += pg.Bytes
			if e.opts.Progress != nil {
				e.opts.Progress(Progress{Partition: p, Pages: pages, Rows: records, Chunks: len(cp.Plan), ChunksDone: done,
					Received: received, PartsSaved: len(cp.Parts), RowsSaved: saved})
			}
		}
		select {
		case sem.shared <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		r, err := e.runListing(ctx, src, c, layout, e.runDir(cp.RunID, p), cp.Ext, meta, onPage)
		<-sem.shared
		if err != nil {
			if ctx.Err() != nil && !e.ignoresRanges(context.WithoutCancel(ctx), p) {
				// Stopped from outside: the listing may be too long for one invocation. The next
				// run splits it (a scope that ignores date ranges cannot be split).
				cp.Interrupted = pl.Key
				if serr := e.saveCheckpoint(context.WithoutCancel(ctx), p, cp); serr != nil {
					zerolog.Ctx(ctx).Warn().Err(serr).Msg("recording the interrupted listing")
				}
			}
			return fmt.Errorf("listing %s: %w", c.Key(), err)
		}
		for _, ps := range r.Parts {
			cp.Parts[ps.Key] = &ps
		}
		cp.Listings[pl.Key] = &listingDone{Pages: r.Pages, Records: r.Records, Outside: r.Outside, Other: r.Other}
		if !c.ByPeriod && (r.Other.Rows > 0 || r.Outside.Rows > 0) {
			// The service ignored the date range: splitting this scope by dates only multiplies
			// calls. Remember it, and list the rest of the partition in one go.
			e.noteIgnoredRange(ctx, p, c, r)
			cp.Plan = collapse(cp.Plan, cp.Listings)
		}
		if err := e.saveCheckpoint(ctx, p, cp); err != nil {
			return err
		}
		if e.opts.Progress != nil {
			e.opts.Progress(Progress{Partition: p, Pages: pages, Rows: records, Chunks: len(cp.Plan), ChunksDone: len(cp.Listings),
				Received: received, PartsSaved: len(cp.Parts), RowsSaved: savedRows(cp)})
		}
	}
	return nil
}

// savedRows counts the rows of the checkpointed parts.
func savedRows(cp *checkpoint) int64 {
	var n int64
	for _, ps := range cp.Parts {
		n += ps.Rows
	}
	return n
}

package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/store"
)

// checkpointVersion is bumped when the checkpoint format changes; an unknown version is ignored
// (the run starts over) rather than misread.
const checkpointVersion = 2

// Checkpoint phases.
const (
	phaseWriting    = "writing"
	phasePublishing = "publishing"
)

// checkpoint is the persisted state of an unfinished run of one partition.
type checkpoint struct {
	Version       int       `json:"version"`
	RunID         string    `json:"runId"`
	SubmittedTime time.Time `json:"submittedTime"`
	ExecutionType string    `json:"executionType"`
	Source        string    `json:"source"`
	APIVersion    string    `json:"apiVersion"`
	Ext           string    `json:"ext"`
	PartDays      int       `json:"partDays"`
	RowKey        bool      `json:"rowKey"`
	Phase         string    `json:"phase"`
	Resumed       int       `json:"resumed"`
	// Plan is the partition's listings, fixed when the run starts (a scope seen ignoring date
	// ranges collapses the unfinished ones into one); Listings the finished ones, by key.
	Plan     []plannedListing        `json:"plan"`
	Listings map[string]*listingDone `json:"listings"`
	Parts    map[string]*partStats   `json:"parts"`
	// Interrupted is the listing a run was stopped in (the invocation ended, the process was
	// told to stop): the next run splits it in two before starting it again from its first page.
	Interrupted string `json:"interrupted,omitempty"`
}

// plannedListing is one listing of the plan.
type plannedListing struct {
	Key      string `json:"key"` // first and last usage day, YYYYMMDD-YYYYMMDD
	Whole    bool   `json:"whole,omitempty"`
	ByPeriod bool   `json:"byPeriod,omitempty"`
}

// listingDone is what a finished listing returned besides its parts.
type listingDone struct {
	Pages   int       `json:"pages"`
	Records int64     `json:"records"`
	Outside dropStats `json:"outside"`
	Other   dropStats `json:"other"`
}

func (e *Exporter) runPartition(ctx context.Context, p Partition, src Source, sem *slots, res *Result) (err error) {
	log := zerolog.Ctx(ctx)
	lease, err := e.st.AcquireLease(ctx, e.leaseName(p), e.opts.LeaseTTL)
	if err != nil {
		return fmt.Errorf("taking partition lease: %w", err)
	}
	ctx, stop := lease.Keep(ctx)
	defer func() {
		if rerr := stop(); rerr != nil {
			log.Warn().Err(rerr).Msg("releasing partition lease")
		}
	}()

	now := e.opts.Now().UTC()
	status := p.Period.StatusAt(now, e.opts.RestatementDays)
	if status == period.Future {
		return fmt.Errorf("billing period %s has not started", p.Period)
	}
	live, err := e.readManifest(ctx, e.ManifestName(p))
	if err != nil {
		return err
	}
	if e.opts.Pick != nil {
		if src, res.Reason, err = e.opts.Pick(p, live); err != nil {
			return fmt.Errorf("choosing the source: %w", err)
		}
		log.Info().Str("source", src.Name()).Str("reason", res.Reason).Msg("source chosen")
	}
	res.Source = src.Name()
	cp, err := e.loadCheckpoint(ctx, p, src, live)
	if err != nil {
		return err
	}
	res.RunID, res.Resumed = cp.RunID, cp.Resumed > 0
	if cp.Resumed > 0 {
		log.Info().Str("run_id", cp.RunID).Int("done_parts", len(cp.Parts)).Str("phase", cp.Phase).Msg("resuming interrupted export")
	}

	if cp.Phase == phaseWriting {
		if err := e.writeListings(ctx, p, src, cp, sem, res); err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return err
		}
	}
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
	if cp.Phase == phaseWriting && live != nil && status != period.Open && !e.opts.NoDropGuard {
		if why := e.dropGuard(live, m); why != "" {
			return e.hold(ctx, p, cp, m, why, res)
		}
	}
	if cp.Phase == phaseWriting {
		cp.Phase = phasePublishing
		if err := e.saveCheckpoint(ctx, p, cp); err != nil {
			return err
		}
	}
	if err := e.publish(ctx, p, cp, m); err != nil {
		return err
	}
	res.Status, res.Manifest = StatusCommitted, e.ManifestName(p)
	return nil
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
		onPage := func(pg consumption.Page) {
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

// chunk turns a planned listing back into its query.
func (pl plannedListing) chunk(p Partition) (Chunk, error) {
	from, to, err := parseKey(pl.Key)
	if err != nil {
		return Chunk{}, fmt.Errorf("checkpoint plan: %w", err)
	}
	return Chunk{Partition: p, From: from, To: to, Whole: pl.Whole, ByPeriod: pl.ByPeriod}, nil
}

// split replaces the listing key of plan with its two halves (whole parts each; the halves list
// by date range); false when it holds a single part.
func split(plan []plannedListing, key string, partDays int) ([]plannedListing, bool) {
	from, to, err := parseKey(key)
	if err != nil {
		return plan, false
	}
	width := max(1, partDays)
	parts := (int(to.Sub(from).Hours()/24) + width) / width
	if partDays <= 0 || parts < 2 {
		return plan, false
	}
	mid := from.AddDate(0, 0, width*(parts/2)) // first day of the second half
	var out []plannedListing
	for _, pl := range plan {
		if pl.Key != key {
			out = append(out, pl)
			continue
		}
		out = append(out,
			plannedListing{Key: from.Format("20060102") + "-" + mid.AddDate(0, 0, -1).Format("20060102")},
			plannedListing{Key: mid.Format("20060102") + "-" + to.Format("20060102")})
	}
	return out, true
}

// collapse replaces the unfinished listings of plan with one listing from the first unfinished
// day to the last.
func collapse(plan []plannedListing, done map[string]*listingDone) []plannedListing {
	var out []plannedListing
	var rest []plannedListing
	for _, pl := range plan {
		if _, ok := done[pl.Key]; ok {
			out = append(out, pl)
		} else {
			rest = append(rest, pl)
		}
	}
	if len(rest) <= 1 {
		return plan
	}
	first, _, _ := parseKey(rest[0].Key)
	_, last, _ := parseKey(rest[len(rest)-1].Key)
	return append(out, plannedListing{Key: first.Format("20060102") + "-" + last.Format("20060102")})
}

// loadCheckpoint returns the unfinished run of p to continue, or a new one.
func (e *Exporter) loadCheckpoint(ctx context.Context, p Partition, src Source, live *manifest.Manifest) (*checkpoint, error) {
	partDays, ext := e.opts.PartDays, e.ext()
	if src.Name() == SourceCostDetails && partDays == DefaultPartDays && e.opts.PartDays == DefaultPartDays {
		partDays = -1 // one report per month unless a layout already exists
	}
	if live != nil { // keep the layout of an existing partition: part names must stay stable
		partDays = live.PartDays
		if live.Compression == "gzip" {
			ext = ".jsonl.gz"
		} else {
			ext = ".jsonl"
		}
	}
	b, err := e.readBlob(ctx, e.checkpointName(p))
	if err != nil {
		return nil, err
	}
	if b != nil {
		var cp checkpoint
		if jerr := json.Unmarshal(b, &cp); jerr == nil && cp.Version == checkpointVersion &&
			cp.Source == src.Name() && cp.APIVersion == src.APIVersion() && cp.Ext == ext &&
			cp.PartDays == partDays && cp.RowKey == e.opts.RowKey && cp.Parts != nil && cp.Listings != nil {
			if cp.Phase == phaseWriting {
				// A staged part that vanished (deleted by hand, lifecycle rule) is written again,
				// with the rest of its listing.
				for k, ps := range cp.Parts {
					if _, err := e.st.Props(ctx, ps.Staged); errors.Is(err, store.ErrNotFound) {
						cp.forgetListingOf(k)
					} else if err != nil {
						return nil, fmt.Errorf("checking staged part %s: %w", k, err)
					}
				}
			}
			cp.Resumed++
			return &cp, e.saveCheckpoint(ctx, p, &cp)
		}
		zerolog.Ctx(ctx).Warn().Msg("discarding checkpoint of an incompatible earlier run")
		var old checkpoint
		if json.Unmarshal(b, &old) == nil && old.RunID != "" {
			e.deleteTree(ctx, e.runDir(old.RunID, p)+"/")
		}
	}
	cp := &checkpoint{
		Version: checkpointVersion, RunID: uuid.NewString(), SubmittedTime: e.opts.Now().UTC(),
		ExecutionType: e.opts.ExecutionType, Source: src.Name(), APIVersion: src.APIVersion(),
		Ext: ext, PartDays: partDays, RowKey: e.opts.RowKey, Phase: phaseWriting,
		Listings: map[string]*listingDone{}, Parts: map[string]*partStats{},
	}
	cp.Plan = e.plan(ctx, p, src, partDays, live)
	return cp, e.saveCheckpoint(ctx, p, cp)
}

// forgetListingOf drops the finished listing that wrote part key, and all of its parts, so
// the listing runs again.
func (cp *checkpoint) forgetListingOf(key string) {
	from, _, err := parseKey(key)
	for _, pl := range cp.Plan {
		c, cerr := pl.chunk(Partition{})
		if err == nil && cerr == nil && !pl.ByPeriod && !c.Contains(from) {
			continue
		}
		delete(cp.Listings, pl.Key)
		for k := range cp.Parts {
			f, _, kerr := parseKey(k)
			if kerr != nil || cerr != nil || pl.ByPeriod || c.Contains(f) {
				delete(cp.Parts, k)
			}
		}
	}
}

func (e *Exporter) saveCheckpoint(ctx context.Context, p Partition, cp *checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	if _, err := e.st.Put(ctx, e.checkpointName(p), bytes.NewReader(b), &store.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

// readBlob returns the blob's bytes, or nil when it does not exist.
func (e *Exporter) readBlob(ctx context.Context, name string) ([]byte, error) {
	b, err := store.ReadSmall(ctx, e.st, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}

func (e *Exporter) readManifest(ctx context.Context, name string) (*manifest.Manifest, error) {
	b, err := e.readBlob(ctx, name)
	if err != nil || b == nil {
		return nil, err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("live manifest %s: %w", name, err)
	}
	return m, nil
}

func (e *Exporter) buildManifest(p Partition, src Source, cp *checkpoint, status period.Status, now time.Time) *manifest.Manifest {
	keys := make([]string, 0, len(cp.Parts))
	for k := range cp.Parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m := &manifest.Manifest{
		ManifestVersion: manifest.Version, Status: manifest.StatusCommitted,
		RunInfo: manifest.RunInfo{
			RunID: cp.RunID, ExecutionType: cp.ExecutionType, SubmittedTime: cp.SubmittedTime,
			StartDate: p.Period.Start().Format(time.DateOnly),
			EndDate:   p.Period.End().AddDate(0, 0, -1).Format(time.DateOnly), Resumed: cp.Resumed,
		},
		Scope: p.Scope.String(), ScopeFolder: p.Scope.Folder(), BillingPeriod: p.Period.String(),
		PeriodStatus: string(status), Metric: p.Metric, Source: src.Name(), APIVersion: src.APIVersion(),
		Format: "jsonl", Compression: "none", PartDays: cp.PartDays, RowKey: cp.RowKey,
		RecordKinds: map[string]int64{}, Blobs: []manifest.Blob{},
	}
	if cp.Ext == ".jsonl.gz" {
		m.Compression = "gzip"
	}
	totals := map[string]map[string]*decimal.Sum{}
	subs := map[string]struct{}{}
	invoices := map[string]struct{}{}
	var minDate, maxDate string
	for _, k := range keys {
		ps := cp.Parts[k]
		for kind, n := range ps.Kinds {
			m.RecordKinds[kind] += n
		}
		for _, s := range ps.Subs {
			subs[s] = struct{}{}
		}
		for _, inv := range ps.Invoices {
			invoices[inv] = struct{}{}
		}
		_ = addTotals(totals, ps.Totals) // values were produced by decimal.Sum
		if ps.Rows == 0 {
			continue
		}
		if minDate == "" || ps.MinDate < minDate {
			minDate = ps.MinDate
		}
		if ps.MaxDate > maxDate {
			maxDate = ps.MaxDate
		}
		from, to, _ := parseKey(k)
		m.Blobs = append(m.Blobs, manifest.Blob{
			BlobName: path.Join(e.Dir(p), partPrefix+k+cp.Ext), ByteCount: ps.Bytes, DataRowCount: ps.Rows,
			SHA256: ps.SHA256, UsageDateStart: from.Format(time.DateOnly), UsageDateEnd: to.Format(time.DateOnly),
			Totals: ps.Totals,
		})
		m.ByteCount += ps.Bytes
		m.DataRowCount += ps.Rows
	}
	m.BlobCount = len(m.Blobs)
	m.Totals = map[string]map[string]string{}
	for field, byCur := range totals {
		m.Totals[field] = map[string]string{}
		for cur, s := range byCur {
			m.Totals[field][cur] = s.String()
		}
	}
	if minDate != "" {
		m.UsageDateRange = &manifest.DateRange{Min: minDate, Max: maxDate}
	}
	m.Coverage.SubscriptionIDs = sortedSet(subs, manifest.MaxCoverageIDs)
	m.Coverage.Subscriptions = len(subs)
	m.InvoiceIDs = sortedSet(invoices, maxInvoiceIDs)
	var outside, other dropStats
	lkeys := make([]string, 0, len(cp.Listings))
	for k := range cp.Listings {
		lkeys = append(lkeys, k)
	}
	sort.Strings(lkeys)
	for _, k := range lkeys {
		ld := cp.Listings[k]
		m.Listings++
		m.Pages += ld.Pages
		m.RecordsReturned += ld.Records
		outside.add(ld.Outside)
		other.add(ld.Other)
	}
	for _, nw := range []struct {
		reason string
		d      dropStats
	}{{manifest.NotWrittenOutsidePeriod, outside}, {manifest.NotWrittenOtherListing, other}} {
		if nw.d.Rows == 0 {
			continue
		}
		x := manifest.NotWritten{Reason: nw.reason, Rows: nw.d.Rows, Totals: nw.d.Totals}
		if nw.d.MinDate != "" {
			x.UsageDateRange = &manifest.DateRange{Min: nw.d.MinDate, Max: nw.d.MaxDate}
		}
		m.ReturnedNotWritten = append(m.ReturnedNotWritten, x)
	}
	return m
}

// previous builds the change report of m against the live manifest.
func previous(live, m *manifest.Manifest) *manifest.Previous {
	pv := &manifest.Previous{RunID: live.RunInfo.RunID, DataRowCount: live.DataRowCount, Totals: live.Totals}
	pv.Delta.DataRowCount = m.DataRowCount - live.DataRowCount
	pv.Delta.Totals = map[string]map[string]string{}
	fields := map[string]bool{}
	for f := range m.Totals {
		fields[f] = true
	}
	for f := range live.Totals {
		fields[f] = true
	}
	for f := range fields {
		curs := map[string]bool{}
		for c := range m.Totals[f] {
			curs[c] = true
		}
		for c := range live.Totals[f] {
			curs[c] = true
		}
		pv.Delta.Totals[f] = map[string]string{}
		for c := range curs {
			nw, _ := decimal.Parse(orZero(m.Totals[f][c]))
			old, _ := decimal.Parse(orZero(live.Totals[f][c]))
			d := nw.Rat()
			d.Sub(d, old.Rat())
			pv.Delta.Totals[f][c] = decimal.Format(d)
		}
	}
	return pv
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// dropGuard returns why m must be held back against live, or "".
func (e *Exporter) dropGuard(live, m *manifest.Manifest) string {
	g := e.opts.DropGuard
	if live.DataRowCount > 0 && float64(m.DataRowCount) < float64(live.DataRowCount)*(1-g) {
		return fmt.Sprintf("row count dropped from %d to %d (more than %.0f%%)", live.DataRowCount, m.DataRowCount, g*100)
	}
	for field, byCur := range live.Totals {
		for cur, v := range byCur {
			old, err := decimal.Parse(v)
			if err != nil {
				continue
			}
			nw, _ := decimal.Parse(orZero(m.Totals[field][cur]))
			of, nf := old.Float(), nw.Float()
			if of > 0 && nf < of*(1-g) {
				return fmt.Sprintf("%s total in %s dropped from %s to %s (more than %.0f%%)", field, cur, v, orZero(m.Totals[field][cur]), g*100)
			}
		}
	}
	return ""
}

// hold keeps the new export aside: its parts stay in the run folder with a held manifest, the
// live partition is untouched, and the checkpoint is cleared so the next run starts afresh.
func (e *Exporter) hold(ctx context.Context, p Partition, cp *checkpoint, m *manifest.Manifest, why string, res *Result) error {
	m.Status = manifest.StatusHeld
	dir := e.runDir(cp.RunID, p)
	for i := range m.Blobs {
		m.Blobs[i].BlobName = path.Join(dir, path.Base(m.Blobs[i].BlobName)) + stagedSuffix
	}
	name := path.Join(dir, manifest.FileName)
	if err := e.putManifest(ctx, name, m); err != nil {
		return err
	}
	if err := e.st.Delete(ctx, e.checkpointName(p)); err != nil {
		return fmt.Errorf("clearing checkpoint: %w", err)
	}
	zerolog.Ctx(ctx).Warn().Str("reason", why).Str("held_manifest", name).Msg("drop guard: re-export held back, previous export stays live")
	res.Status, res.Manifest = StatusHeld, name
	res.Error = "drop guard: " + why + "; previous export kept live, new export kept aside at " + name
	return nil
}

func (e *Exporter) putManifest(ctx context.Context, name string, m *manifest.Manifest) error {
	m.RunInfo.FinishedTime = e.opts.Now().UTC() // when the manifest is written, not when the run began
	b, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("encoding manifest: %w", err)
	}
	if _, err := e.st.Put(ctx, name, bytes.NewReader(b), &store.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("writing manifest %s: %w", name, err)
	}
	return nil
}

// publish moves the staged parts to their live names (each an atomic replace), deletes live
// parts the new run does not have, writes the manifest last, and clears the run's control
// state. Every step is idempotent, so an interrupted publish is finished by the next run.
func (e *Exporter) publish(ctx context.Context, p Partition, cp *checkpoint, m *manifest.Manifest) error {
	dir := e.Dir(p)
	keep := map[string]bool{}
	for _, b := range m.Blobs {
		keep[b.BlobName] = true
	}
	keys := make([]string, 0, len(cp.Parts))
	for k := range cp.Parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps := cp.Parts[k]
		live := path.Join(dir, partPrefix+k+cp.Ext)
		if ps.Rows == 0 {
			if err := e.st.Delete(ctx, ps.Staged); err != nil {
				return fmt.Errorf("removing empty part %s: %w", k, err)
			}
			continue
		}
		meta := map[string]string{"runid": cp.RunID, "rows": strconv.FormatInt(ps.Rows, 10), "sha256": ps.SHA256}
		if err := e.st.Move(ctx, ps.Staged, live, &store.PutOptions{Metadata: meta, ContentType: contentTypeOf(cp.Ext)}); err != nil {
			return fmt.Errorf("publishing part %s: %w", k, err)
		}
	}
	var stale []string
	err := e.st.List(ctx, dir+"/", func(it store.Item) error {
		base := path.Base(it.Name)
		if strings.HasPrefix(base, partPrefix) && !keep[it.Name] {
			stale = append(stale, it.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing live parts: %w", err)
	}
	for _, name := range stale {
		if err := e.st.Delete(ctx, name); err != nil {
			return fmt.Errorf("removing stale part %s: %w", name, err)
		}
	}
	if err := e.putManifest(ctx, e.ManifestName(p), m); err != nil {
		return err
	}
	if err := e.st.Delete(ctx, e.checkpointName(p)); err != nil {
		return fmt.Errorf("clearing checkpoint: %w", err)
	}
	e.deleteTree(ctx, e.runDir(cp.RunID, p)+"/")
	return nil
}

func contentTypeOf(ext string) string {
	if strings.HasSuffix(ext, ".gz") {
		return "application/gzip"
	}
	return "application/x-ndjson"
}

// deleteTree removes what is left under prefix, best effort (leftovers are harmless: they live
// in the control tree).
func (e *Exporter) deleteTree(ctx context.Context, prefix string) {
	var names []string
	_ = e.st.List(ctx, prefix, func(it store.Item) error {
		names = append(names, it.Name)
		return nil
	})
	for _, n := range names {
		if err := e.st.Delete(ctx, n); err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Str("blob", n).Msg("cleaning run folder")
		}
	}
}

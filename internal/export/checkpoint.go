package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/manifest"
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
	Version       int                    `json:"version"`
	RunID         string                 `json:"runId"`
	SubmittedTime time.Time              `json:"submittedTime"`
	ExecutionType manifest.ExecutionType `json:"executionType"`
	Source        manifest.Source        `json:"source"`
	APIVersion    string                 `json:"apiVersion"`
	Ext           string                 `json:"ext"`
	PartDays      int                    `json:"partDays"`
	RowKey        bool                   `json:"rowKey"`
	Phase         string                 `json:"phase"`
	Resumed       int                    `json:"resumed"`
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
	partDays, ext := e.runLayout(src, live)
	b, err := e.readBlob(ctx, e.checkpointName(p))
	if err != nil {
		return nil, err
	}
	if b != nil {
		var cp checkpoint
		if jerr := json.Unmarshal(b, &cp); jerr == nil && cp.continues(src, ext, partDays, e.opts.RowKey) {
			return e.resumeCheckpoint(ctx, p, &cp)
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

// runLayout returns the part width and file extension of a run of src: those of the live
// partition when there is one (part names must stay stable), else the configured ones.
func (e *Exporter) runLayout(src Source, live *manifest.Manifest) (partDays int, ext string) {
	partDays, ext = e.opts.PartDays, e.ext()
	if src.Name() == manifest.SourceCostDetails && partDays == DefaultPartDays && e.opts.PartDays == DefaultPartDays {
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
	return partDays, ext
}

// continues reports whether cp is a run this one can continue: same format, source, API
// version and layout.
func (cp *checkpoint) continues(src Source, ext string, partDays int, rowKey bool) bool {
	return cp.Version == checkpointVersion && cp.Source == src.Name() && cp.APIVersion == src.APIVersion() &&
		cp.Ext == ext && cp.PartDays == partDays && cp.RowKey == rowKey && cp.Parts != nil && cp.Listings != nil
}

// resumeCheckpoint continues cp: while it is still writing, a staged part that vanished
// (deleted by hand, lifecycle rule) is written again, with the rest of its listing.
func (e *Exporter) resumeCheckpoint(ctx context.Context, p Partition, cp *checkpoint) (*checkpoint, error) {
	if cp.Phase == phaseWriting {
		for k, ps := range cp.Parts {
			if _, err := e.st.Props(ctx, ps.Staged); errors.Is(err, store.ErrNotFound) {
				cp.forgetListingOf(k)
			} else if err != nil {
				return nil, fmt.Errorf("checking staged part %s: %w", k, err)
			}
		}
	}
	cp.Resumed++
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

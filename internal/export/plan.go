package export

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/store"
)

// The plan (docs/architecture.md, "The plan"): a partition costs at most ⌈rows/page size⌉ + 1
// listing calls. By default it is one listing of the whole period — the billing-period
// sub-scope where the scope has one (EA, pay-as-you-go on api-versions that accept it), else a
// date range over the whole period (MCA) — and the records are split into day parts on the
// client. A partition whose previous export shows it cannot be listed within ListingTime at the
// scope's rate is listed in steps of whole parts instead, each step a date range sized from
// those figures; a scope seen ignoring date ranges is never split.

// DefaultListingTime is how long one listing may take at the scope's rate before the partition
// is split into steps: a listing interrupted by the end of an invocation (the Functions
// timeout, a restart) starts again from its first page, so a step must fit in one invocation
// with room to spare.
const DefaultListingTime = 30 * time.Minute

// plan returns the listings of a new run of p.
func (e *Exporter) plan(ctx context.Context, p Partition, src Source, partDays int, live *manifest.Manifest) []plannedListing {
	layout := layoutOf(p, partDays)
	whole := plannedListing{Key: layout.first.Format("20060102") + "-" + layout.last.Format("20060102"), Whole: true}
	// The billing-period sub-scope for calendar periods only: a pay-as-you-go (Web Direct)
	// subscription's period is refused there from api-version 2019-10-01 on, and its days are
	// known, so it is listed by its date range.
	whole.ByPeriod = src.Name() == manifest.SourceUsageDetails && p.Scope.SupportsBillingPeriod() && p.Period.Calendar()
	steps := e.stepCount(ctx, p, live)
	if steps <= 1 || layout.whole() {
		return []plannedListing{whole}
	}
	days := int(layout.last.Sub(layout.first).Hours()/24) + 1
	// Steps are whole parts: partDays × ⌈parts / steps⌉ days each.
	parts := (days + layout.partDays - 1) / layout.partDays
	stepDays := layout.partDays * ((parts + steps - 1) / steps)
	var out []plannedListing
	for d := layout.first; !d.After(layout.last); d = d.AddDate(0, 0, stepDays) {
		to := d.AddDate(0, 0, stepDays-1)
		if to.After(layout.last) {
			to = layout.last
		}
		out = append(out, plannedListing{Key: d.Format("20060102") + "-" + to.Format("20060102")})
	}
	zerolog.Ctx(ctx).Info().Int("listings", len(out)).Int("days_each", stepDays).
		Msg("partition too large for one listing at the scope's rate: listing it in steps")
	return out
}

// stepCount returns how many listings p needs so that each fits in ListingTime at the scope's
// rate, judged from the previous export's rows (of p, else of the month before p); 1 when
// nothing is known or the scope ignores date ranges.
func (e *Exporter) stepCount(ctx context.Context, p Partition, live *manifest.Manifest) int {
	if e.opts.CallsPerMinute == nil {
		return 1
	}
	if live == nil {
		// A first export: the previous month of the same scope and metric is the best guess.
		prev := Partition{Scope: p.Scope, Period: p.Period.Add(-1), Metric: p.Metric}
		if m, err := e.readManifest(ctx, e.ManifestName(prev)); err == nil && m != nil {
			live = m
		}
	}
	if live == nil || live.DataRowCount == 0 {
		return 1
	}
	rate := e.opts.CallsPerMinute(p.Scope)
	if rate <= 0 {
		return 1
	}
	pages := math.Ceil(float64(live.DataRowCount)/consumption.MaxTop) + 1
	minutes := pages / rate
	n := int(math.Ceil(minutes / e.opts.ListingTime.Minutes()))
	if n <= 1 {
		return 1
	}
	if e.ignoresRanges(ctx, p) {
		zerolog.Ctx(ctx).Info().Msg("scope ignores date ranges: listing the partition in one go")
		return 1
	}
	return n
}

// rangeNote is the persisted observation that a scope's listings ignore date ranges.
type rangeNote struct {
	IgnoresDateRange bool      `json:"ignoresDateRange"`
	ObservedTime     time.Time `json:"observedTime"`
	Asked            string    `json:"asked"`    // the listing's days, YYYYMMDD-YYYYMMDD
	Received         string    `json:"received"` // the usage days returned outside them
}

func (e *Exporter) rangeNoteName(p Partition) string {
	return join(e.opts.Prefix, controlDir, "scopes", "scope="+p.Scope.Folder(), "dateRanges.json")
}

// ignoresRanges reports whether the scope of p was seen ignoring a date range.
func (e *Exporter) ignoresRanges(ctx context.Context, p Partition) bool {
	b, err := e.readBlob(ctx, e.rangeNoteName(p))
	if err != nil || b == nil {
		return false
	}
	var n rangeNote
	return json.Unmarshal(b, &n) == nil && n.IgnoresDateRange
}

// noteIgnoredRange records that listing c of p returned records outside its date range.
func (e *Exporter) noteIgnoredRange(ctx context.Context, p Partition, c Chunk, r listingResult) {
	var d dropStats
	d.add(r.Other)
	d.add(r.Outside)
	n := rangeNote{IgnoresDateRange: true, ObservedTime: e.opts.Now().UTC(), Asked: c.Key(), Received: d.MinDate + ".." + d.MaxDate}
	log := zerolog.Ctx(ctx)
	log.Warn().Str("asked", n.Asked).Str("received", n.Received).
		Msg("the service ignored the listing's date range: this scope is no longer split by dates")
	b, _ := json.Marshal(n)
	if _, err := e.st.Put(ctx, e.rangeNoteName(p), bytes.NewReader(b), &store.PutOptions{ContentType: "application/json"}); err != nil {
		log.Warn().Err(err).Msg("recording that the scope ignores date ranges")
	}
}

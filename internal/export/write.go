package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/store"
)

// The day split's memory (docs/architecture.md, "Memory"). A listing of a whole period
// delivers its records in no useful order, so every part of the period is open at once: per
// open part the exporter holds at most lineFlush bytes of lines, a dictionary of
// statelessDict bytes and one block of blockSize bytes (plus one flush's output). With 31 day
// parts that is at most about 10 MiB per partition in flight, whatever the partition's size
// (TestCompressorMemory).
const (
	// lineFlush is how many bytes of lines a part collects before they are compressed: large
	// enough that deflate finds its matches, small enough for 31 open parts.
	lineFlush = 64 << 10
	// blockSize is the compressed bytes a part collects before they are staged as one block
	// (store.StageBlock). 1 M records of ~1.5 KB compress to ~120 MB: ~15 blocks per day part,
	// far below store.MaxBlocks even for one part per period uncompressed (~6000).
	blockSize = 256 << 10
)

// partStats is what one written part contributes to the manifest. It is persisted in the
// checkpoint, so a resumed run does not need to re-read finished parts.
type partStats struct {
	Key     string                       `json:"key"`
	Staged  string                       `json:"staged"`
	Rows    int64                        `json:"rows"`
	Bytes   int64                        `json:"bytes"`
	SHA256  string                       `json:"sha256"`
	MinDate string                       `json:"minDate,omitempty"`
	MaxDate string                       `json:"maxDate,omitempty"`
	Totals  map[string]map[string]string `json:"totals,omitempty"`
	Kinds   map[string]int64             `json:"kinds,omitempty"`
	Subs    []string                     `json:"subs,omitempty"`
	// Invoices are the MCA invoice ids of the part's records (at most maxInvoiceIDs).
	Invoices []string `json:"invoices,omitempty"`
}

// maxInvoiceIDs bounds the invoice ids kept per part and per manifest: a billing profile has
// one invoice a month, a few with credits or Marketplace charges.
const maxInvoiceIDs = 50

// tally counts records with their usage-day span and cost per currency: the written records of
// a part, or the records a listing returned that it does not keep.
type tally struct {
	rows   int64
	minDay time.Time // zero: no dated record yet
	maxDay time.Time
	totals map[string]map[string]*decimal.Sum
}

func (t *tally) addDay(d time.Time) {
	if d.IsZero() {
		return
	}
	if t.minDay.IsZero() || d.Before(t.minDay) {
		t.minDay = d
	}
	if d.After(t.maxDay) {
		t.maxDay = d
	}
}

// addCost adds the record's cost fields to the totals.
func (t *tally) addCost(f *record.Fields) error {
	if t.totals == nil {
		t.totals = map[string]map[string]*decimal.Sum{}
	}
	if len(f.Cost) > 0 {
		if err := addSum(t.totals, f.CostField, f.Currency, f.Cost); err != nil {
			return fmt.Errorf("%s: %w", f.CostField, err)
		}
	}
	if len(f.CostUSD) > 0 {
		if err := addSum(t.totals, record.FieldCostInUSD, []byte("USD"), f.CostUSD); err != nil {
			return fmt.Errorf("costInUSD: %w", err)
		}
	}
	return nil
}

func (t *tally) span() (string, string) {
	if t.minDay.IsZero() {
		return "", ""
	}
	return t.minDay.Format(time.DateOnly), t.maxDay.Format(time.DateOnly)
}

func addSum(totals map[string]map[string]*decimal.Sum, field string, currency, value []byte) error {
	byCur := totals[field]
	if byCur == nil {
		byCur = map[string]*decimal.Sum{}
		totals[field] = byCur
	}
	s := byCur[string(currency)]
	if s == nil {
		s = new(decimal.Sum)
		byCur[string(currency)] = s
	}
	return s.Add(value)
}

// partOut is one part being written by a listing: its lines are compressed into one gzip stream
// whose bytes are staged as blocks of the part's staged blob and committed when the listing
// ends. Nothing is visible before the commit.
type partOut struct {
	key    string
	staged string
	lines  []byte // lines not yet compressed
	gz     *gzip.Writer
	sgz    *statelessGzip
	block  []byte // compressed bytes not yet staged
	blocks int    // blocks staged
	sum    hash.Hash
	n      int64 // bytes of the stream so far
	tally
	kinds    map[string]int64
	subs     map[string]struct{}
	invoices map[string]struct{}
}

// Write implements io.Writer for the compressor: it collects the stream's bytes into blocks.
func (p *partOut) Write(b []byte) (int, error) {
	p.block = append(p.block, b...)
	p.sum.Write(b)
	p.n += int64(len(b))
	return len(b), nil
}

// listing is the paging.Handler (a consumption.MemberFilter) of one runListing call: it
// receives the records of one listing and writes each into the part that owns its usage day.
type listing struct {
	e      *Exporter
	c      Chunk // the listing's query: a whole billing period or a range of days
	layout partLayout
	runDir string
	ext    string
	meta   map[string]string
	onPage func(paging.Page)
	log    *zerolog.Logger

	parts   map[int64]*partOut // by usage day (Unix days); several days can share one part
	byKey   map[string]*partOut
	fields  record.Fields
	fed     bool // fields already hold the current record's members (RecordMember)
	scratch []byte
	keyBuf  []byte
	pages   int
	records int64 // records received
	written int64
	// Records returned that the listing does not write: outside the partition's period (a date
	// range the service ignored, or answered with another period) and inside the period but
	// outside this listing's days (written by the listing that owns their days).
	outside tally
	other   tally
}

// listingResult is what a finished listing hands to the checkpoint.
type listingResult struct {
	Parts   []partStats
	Pages   int
	Records int64
	Outside dropStats
	Other   dropStats
}

// dropStats is a persisted tally.
type dropStats struct {
	Rows    int64                        `json:"rows"`
	MinDate string                       `json:"minDate,omitempty"`
	MaxDate string                       `json:"maxDate,omitempty"`
	Totals  map[string]map[string]string `json:"totals,omitempty"`
}

func (t *tally) freeze() dropStats {
	d := dropStats{Rows: t.rows, Totals: freezeTotals(t.totals)}
	d.MinDate, d.MaxDate = t.span()
	return d
}

// add merges b into d.
func (d *dropStats) add(b dropStats) {
	if b.Rows == 0 {
		return
	}
	d.Rows += b.Rows
	if b.MinDate != "" && (d.MinDate == "" || b.MinDate < d.MinDate) {
		d.MinDate = b.MinDate
	}
	if b.MaxDate > d.MaxDate {
		d.MaxDate = b.MaxDate
	}
	sums := map[string]map[string]*decimal.Sum{}
	_ = addTotals(sums, d.Totals) // values were produced by decimal.Sum
	_ = addTotals(sums, b.Totals)
	d.Totals = freezeTotals(sums)
}

// runListing fetches listing c from src and writes its records into the parts of layout,
// staged under runDir; each part is committed (store.CommitBlocks) only when the listing ended
// without error. A listing that returns records none of which belong to the partition fails.
func (e *Exporter) runListing(ctx context.Context, src Source, c Chunk, layout partLayout, runDir, ext string,
	meta map[string]string, onPage func(paging.Page)) (listingResult, error) {
	l := &listing{
		e: e, c: c, layout: layout, runDir: runDir, ext: ext, meta: meta, onPage: onPage,
		log: zerolog.Ctx(ctx), parts: map[int64]*partOut{}, byKey: map[string]*partOut{},
	}
	if err := src.Fetch(ctx, c, l); err != nil {
		return listingResult{}, err
	}
	if l.records > 0 && l.written == 0 && l.other.rows == 0 {
		lo, hi := l.outside.span()
		return listingResult{}, fmt.Errorf("%w: the listing of %s returned %d records, none in the partition's days %s..%s: usage dates received %s..%s",
			ErrNothingBelongs, c.Key(), l.records, l.layout.first.Format(time.DateOnly), l.layout.last.Format(time.DateOnly), lo, hi)
	}
	res := listingResult{Pages: l.pages, Records: l.records, Outside: l.outside.freeze(), Other: l.other.freeze()}
	keys := make([]string, 0, len(l.byKey))
	for k := range l.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps, err := l.commit(ctx, l.byKey[k])
		if err != nil {
			return listingResult{}, err
		}
		res.Parts = append(res.Parts, ps)
	}
	l.warn("outside the billing period: not written", res.Outside)
	l.warn("outside this listing's days: written by the listing of their days", res.Other)
	return res, nil
}

// ErrNothingBelongs is wrapped by the error of a listing that returned records of which none
// belong to the partition (the service answered with another period).
var ErrNothingBelongs = fmt.Errorf("no returned record belongs to the partition")

func (l *listing) warn(what string, d dropStats) {
	if d.Rows == 0 {
		return
	}
	ev := l.log.Warn().Str("listing", l.c.Key()).Int64("records", d.Rows).Str("min_date", d.MinDate).Str("max_date", d.MaxDate)
	if len(d.Totals) > 0 {
		ev = ev.Interface("totals", d.Totals)
	}
	ev.Msg("records returned " + what + " (counted in the manifest's returnedNotWritten)")
}

// part returns the part that owns usage day d, opening it on first use.
func (l *listing) part(d time.Time) (*partOut, error) {
	day := d.Unix() / 86400
	if p := l.parts[day]; p != nil {
		return p, nil
	}
	key := l.layout.keyOf(d)
	p := l.byKey[key]
	if p == nil {
		p = &partOut{key: key, staged: l.runDir + "/" + partPrefix + key + l.ext + stagedSuffix, sum: sha256.New(),
			kinds: map[string]int64{}, subs: map[string]struct{}{}, invoices: map[string]struct{}{}}
		if !l.e.opts.NoGzip {
			if lvl := l.e.opts.GzipLevel; lvl != 0 {
				gz, err := gzip.NewWriterLevel(p, lvl)
				if err != nil {
					return nil, fmt.Errorf("gzip: %w", err)
				}
				p.gz = gz
			} else {
				p.sgz = newStatelessGzip(p)
			}
		}
		l.byKey[key] = p
	}
	l.parts[day] = p
	return p, nil
}

// MemberNames implements consumption.MemberFilter: the members RecordMember uses.
func (l *listing) MemberNames() []string { return record.MemberNames }

// RecordMember implements consumption.MemberHandler: the page decoder hands over the record's
// members as it validates them, so the fields need no second pass over the record. It collects
// the fields of the current record.
func (l *listing) RecordMember(name, value []byte, inProperties bool) {
	if !l.fed {
		l.fields.Reset()
		l.fed = true
	}
	l.fields.Member(name, value, inProperties)
}

// Record implements paging.Handler: it writes one record into the part of its usage day, or
// counts it as not written.
func (l *listing) Record(ctx context.Context, raw []byte) error {
	l.records++
	f := &l.fields
	if l.fed {
		l.fed = false // filled by RecordMember
	} else if err := f.Extract(raw); err != nil {
		return fmt.Errorf("record %d of listing %s: %w", l.records, l.c.Key(), err)
	}
	var d time.Time
	if len(f.Date) > 0 {
		var err error
		if d, err = record.Day(f.Date); err != nil {
			return fmt.Errorf("record %d of listing %s: %w", l.records, l.c.Key(), err)
		}
	} else if !l.layout.whole() {
		return fmt.Errorf("record %d of listing %s: no usage date (date/usageStart), cannot place it in a part",
			l.records, l.c.Key())
	}
	// A record returned for a billing-period query belongs to that period whatever its date;
	// a date-range query's record belongs to the listing when its day is in the range.
	if !l.c.ByPeriod && !d.IsZero() && !l.c.Contains(d) {
		t := &l.outside
		if l.layout.contains(d) {
			t = &l.other
		}
		t.rows++
		t.addDay(d)
		if err := t.addCost(f); err != nil {
			return fmt.Errorf("record %d of listing %s: %w", l.records, l.c.Key(), err)
		}
		return nil
	}
	p, err := l.part(d)
	if err != nil {
		return err
	}
	p.addDay(d)
	if err := p.addCost(f); err != nil {
		return fmt.Errorf("record %d of listing %s: %w", l.records, l.c.Key(), err)
	}
	p.kinds[string(f.Kind)]++
	if len(f.SubscriptionID) > 0 && len(p.subs) < manifest.MaxCoverageIDs {
		if _, ok := p.subs[string(f.SubscriptionID)]; !ok {
			p.subs[string(f.SubscriptionID)] = struct{}{}
		}
	}
	if len(f.InvoiceID) > 0 && len(p.invoices) < maxInvoiceIDs {
		if _, ok := p.invoices[string(f.InvoiceID)]; !ok {
			p.invoices[string(f.InvoiceID)] = struct{}{}
		}
	}
	if err := l.writeLine(ctx, p, raw); err != nil {
		return err
	}
	p.rows++
	l.written++
	return nil
}

// writeLine appends the record as one line to p. The API's bytes are kept; only a record that
// spans lines (pretty-printed) is compacted, which changes whitespace and nothing else.
func (l *listing) writeLine(ctx context.Context, p *partOut, raw []byte) error {
	line := raw
	if bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') >= 0 { // SIMD; a byte loop or ContainsAny is ~200x slower
		l.scratch = append(l.scratch[:0], raw...)
		v := jsontext.Value(l.scratch)
		if err := v.Compact(); err != nil {
			return fmt.Errorf("compacting record: %w", err)
		}
		line = v
	}
	if l.e.opts.RowKey {
		var err error
		if l.keyBuf, err = withRowKey(l.keyBuf[:0], line); err != nil {
			return err
		}
		line = l.keyBuf
	}
	p.lines = append(p.lines, line...)
	p.lines = append(p.lines, '\n')
	if len(p.lines) >= lineFlush {
		return l.flush(ctx, p, false)
	}
	return nil
}

// flush compresses p's lines into its block and stages the block once it is full (or at the
// end, whatever its size).
func (l *listing) flush(ctx context.Context, p *partOut, end bool) error {
	var err error
	switch {
	case p.gz != nil:
		_, err = p.gz.Write(p.lines)
		if err == nil && end {
			err = p.gz.Close()
		}
	case p.sgz != nil:
		err = p.sgz.write(p.lines, end)
	default:
		_, err = p.Write(p.lines)
	}
	if err != nil {
		return fmt.Errorf("compressing part %s: %w", p.key, err)
	}
	p.lines = p.lines[:0]
	if len(p.block) >= blockSize || (end && len(p.block) > 0) {
		if err := l.e.st.StageBlock(ctx, p.staged, p.blocks, p.block); err != nil {
			return fmt.Errorf("staging part %s: %w", p.key, err)
		}
		p.blocks++
		p.block = p.block[:0]
	}
	return nil
}

// commit finishes p's stream and commits its staged blob.
func (l *listing) commit(ctx context.Context, p *partOut) (partStats, error) {
	if err := l.flush(ctx, p, true); err != nil {
		return partStats{}, err
	}
	o := &store.PutOptions{Metadata: l.meta, ContentType: contentTypeOf(l.ext)}
	if _, err := l.e.st.CommitBlocks(ctx, p.staged, p.blocks, o); err != nil {
		return partStats{}, fmt.Errorf("storing part %s: %w", p.key, err)
	}
	ps := partStats{Key: p.key, Staged: p.staged, Rows: p.rows, Bytes: p.n, SHA256: hex.EncodeToString(p.sum.Sum(nil)),
		Totals: freezeTotals(p.totals), Subs: sortedSet(p.subs, manifest.MaxCoverageIDs),
		Invoices: sortedSet(p.invoices, maxInvoiceIDs)}
	ps.MinDate, ps.MaxDate = p.span()
	for kind, n := range p.kinds {
		if kind == "" {
			kind = "none"
		}
		if ps.Kinds == nil {
			ps.Kinds = map[string]int64{}
		}
		ps.Kinds[kind] += n
	}
	return ps, nil
}

// PageDone implements paging.Handler: it logs the page and reports it to onPage; a cancelled
// ctx stops the listing.
func (l *listing) PageDone(ctx context.Context, p paging.Page) error {
	l.pages++
	l.log.Info().Str("listing", l.c.Key()).Int("page", p.Index).Int("page_records", p.Records).
		Int64("records", l.records).Int64("written", l.written).Bool("more", p.NextLink != "").Msg("page")
	if l.onPage != nil {
		l.onPage(p)
	}
	return ctx.Err()
}

func freezeTotals(m map[string]map[string]*decimal.Sum) map[string]map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]map[string]string, len(m))
	for field, byCur := range m {
		out[field] = make(map[string]string, len(byCur))
		for cur, s := range byCur {
			out[field][cur] = s.String()
		}
	}
	return out
}

func sortedSet(m map[string]struct{}, max int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// addTotals adds b into a (both field → currency → decimal string).
func addTotals(a map[string]map[string]*decimal.Sum, b map[string]map[string]string) error {
	for field, byCur := range b {
		if a[field] == nil {
			a[field] = map[string]*decimal.Sum{}
		}
		for cur, v := range byCur {
			if a[field][cur] == nil {
				a[field][cur] = new(decimal.Sum)
			}
			if err := a[field][cur].AddString(v); err != nil {
				return fmt.Errorf("totals %s %s: %w", field, cur, err)
			}
		}
	}
	return nil
}

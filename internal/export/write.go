package export

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/store"
)

// lineBufferSize is the buffer between the line encoder and gzip: large enough that gzip works on
// big slices, small enough to be irrelevant to memory.
const lineBufferSize = 256 << 10

// outBufferSize is the buffer between gzip and the store's pipe. The deflate encoder emits its
// output a few hundred bytes at a time; unbuffered, each of those was a pipe hand-over to the
// uploader goroutine and, for the local store, a write system call.
const outBufferSize = 64 << 10

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
	Dropped int64                        `json:"dropped,omitempty"`
	Pages   int                          `json:"pages"`
}

// partWriter receives the records of one chunk (it is the consumption.Handler) and writes them as
// JSON lines through gzip into the pipe that feeds the store.
type partWriter struct {
	ctx      context.Context
	chunk    Chunk
	filter   bool // drop records outside the chunk's days (the query used a date range)
	rowKey   bool
	onPage   func(consumption.Page, int64, int64)
	log      *zerolog.Logger
	buf      *bufio.Writer
	gz       *gzip.Writer
	gzOut    *bufio.Writer // gzip's output, buffered before out
	out      *countHash
	fields   record.Fields
	fed      bool // fields already hold the current record's members (RecordMember)
	scratch  []byte
	keyBuf   []byte
	stats    partStats
	totals   map[string]map[string]*decimal.Sum
	subs     map[string]struct{}
	kinds    map[string]*int64 // record kind ("" when absent) → rows; a lookup by []byte allocates nothing
	minDay   time.Time         // first and last usage day written (zero: none yet)
	maxDay   time.Time
	nRecords int64
}

// countHash counts and hashes the bytes that go to the store.
type countHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// writePart fetches chunk c from src and stores it under staged. The part is visible under that
// name only once complete (store.Put is atomic); on any error nothing is committed.
func (e *Exporter) writePart(ctx context.Context, src Source, c Chunk, staged string, meta map[string]string,
	onPage func(consumption.Page, int64, int64)) (partStats, error) {
	pr, pw := io.Pipe()
	putDone := make(chan error, 1)
	contentType := "application/x-ndjson"
	if !e.opts.NoGzip {
		contentType = "application/gzip"
	}
	go func() {
		_, err := e.st.Put(ctx, staged, pr, &store.PutOptions{Metadata: meta, ContentType: contentType})
		pr.CloseWithError(err) // unblocks the writer if Put gave up early
		putDone <- err
	}()

	w := &partWriter{
		ctx: ctx, chunk: c, filter: !c.ByPeriod, rowKey: e.opts.RowKey, onPage: onPage,
		log:    zerolog.Ctx(ctx),
		out:    &countHash{w: pw, h: sha256.New()},
		totals: map[string]map[string]*decimal.Sum{},
		subs:   map[string]struct{}{},
		kinds:  map[string]*int64{},
	}
	w.stats.Key, w.stats.Staged = c.Key(), staged
	var sink io.Writer = w.out
	if !e.opts.NoGzip {
		w.gzOut = bufio.NewWriterSize(w.out, outBufferSize)
		gz, err := gzip.NewWriterLevel(w.gzOut, e.gzipLevel())
		if err != nil {
			pw.CloseWithError(err)
			if perr := <-putDone; perr != nil {
				w.log.Debug().Err(perr).Msg("staged upload abandoned")
			}
			return partStats{}, fmt.Errorf("gzip: %w", err)
		}
		w.gz, sink = gz, gz
	}
	w.buf = bufio.NewWriterSize(sink, lineBufferSize)

	err := src.Fetch(ctx, c, w)
	if err == nil {
		err = w.finish()
	}
	if err != nil {
		pw.CloseWithError(err)
		if perr := <-putDone; perr != nil && ctx.Err() == nil {
			w.log.Debug().Err(perr).Msg("staged upload abandoned")
		}
		return partStats{}, err
	}
	if err := pw.Close(); err != nil {
		return partStats{}, fmt.Errorf("closing part stream: %w", err)
	}
	if err := <-putDone; err != nil {
		return partStats{}, fmt.Errorf("storing part %s: %w", c.Key(), err)
	}
	w.stats.Bytes = w.out.n
	w.stats.SHA256 = hex.EncodeToString(w.out.h.Sum(nil))
	w.freezeDaysAndKinds()
	w.stats.Totals = freezeTotals(w.totals)
	w.stats.Subs = sortedSet(w.subs, manifest.MaxCoverageIDs)
	return w.stats, nil
}

func (e *Exporter) gzipLevel() int {
	if e.opts.GzipLevel == 0 {
		return gzip.DefaultCompression
	}
	return e.opts.GzipLevel
}

func (w *partWriter) finish() error {
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("writing part: %w", err)
	}
	if w.gz != nil {
		if err := w.gz.Close(); err != nil {
			return fmt.Errorf("closing gzip: %w", err)
		}
		if err := w.gzOut.Flush(); err != nil {
			return fmt.Errorf("writing part: %w", err)
		}
	}
	return nil
}

// RecordMember implements consumption.MemberHandler: the page decoder hands over the record's
// members as it validates them, so the fields need no second pass over the record.
func (w *partWriter) RecordMember(name, value []byte, inProperties bool) {
	if !w.fed {
		w.fields.Reset()
		w.fed = true
	}
	w.fields.Member(name, value, inProperties)
}

// MemberNames implements consumption.MemberFilter: the members RecordMember uses.
func (w *partWriter) MemberNames() []string { return record.MemberNames }

// Record implements consumption.Handler.
func (w *partWriter) Record(raw []byte) error {
	w.nRecords++
	f := &w.fields
	if w.fed {
		w.fed = false // filled by RecordMember
	} else if err := f.Extract(raw); err != nil {
		return fmt.Errorf("record %d of part %s: %w", w.nRecords, w.chunk.Key(), err)
	}
	if len(f.Date) > 0 {
		d, err := record.Day(f.Date)
		if err != nil {
			return fmt.Errorf("record %d of part %s: %w", w.nRecords, w.chunk.Key(), err)
		}
		if w.filter && !w.chunk.Contains(d) {
			w.stats.Dropped++ // another chunk owns that day
			return nil
		}
		if w.minDay.IsZero() || d.Before(w.minDay) {
			w.minDay = d
		}
		if d.After(w.maxDay) {
			w.maxDay = d
		}
	} else if w.filter {
		return fmt.Errorf("record %d of part %s: no usage date (date/usageStart), cannot place it in a part",
			w.nRecords, w.chunk.Key())
	}
	if len(f.Cost) > 0 {
		if err := w.add(f.CostField, f.Currency, f.Cost); err != nil {
			return fmt.Errorf("record %d of part %s: %s: %w", w.nRecords, w.chunk.Key(), f.CostField, err)
		}
	}
	if len(f.CostUSD) > 0 {
		if err := w.add(record.FieldCostInUSD, []byte("USD"), f.CostUSD); err != nil {
			return fmt.Errorf("record %d of part %s: costInUSD: %w", w.nRecords, w.chunk.Key(), err)
		}
	}
	if n := w.kinds[string(f.Kind)]; n != nil {
		*n++
	} else {
		one := int64(1)
		w.kinds[string(f.Kind)] = &one
	}
	if len(f.SubscriptionID) > 0 && len(w.subs) < manifest.MaxCoverageIDs {
		if _, ok := w.subs[string(f.SubscriptionID)]; !ok {
			w.subs[string(f.SubscriptionID)] = struct{}{}
		}
	}
	if err := w.writeLine(raw); err != nil {
		return err
	}
	w.stats.Rows++
	return nil
}

// freezeDaysAndKinds puts the day range and the kind counts into the part's stats.
func (w *partWriter) freezeDaysAndKinds() {
	if !w.minDay.IsZero() {
		w.stats.MinDate, w.stats.MaxDate = w.minDay.Format(time.DateOnly), w.maxDay.Format(time.DateOnly)
	}
	for kind, n := range w.kinds {
		if kind == "" {
			kind = "none"
		}
		if w.stats.Kinds == nil {
			w.stats.Kinds = map[string]int64{}
		}
		w.stats.Kinds[kind] += *n
	}
}

func (w *partWriter) add(field string, currency, value []byte) error {
	byCur := w.totals[field]
	if byCur == nil {
		byCur = map[string]*decimal.Sum{}
		w.totals[field] = byCur
	}
	s := byCur[string(currency)]
	if s == nil {
		s = new(decimal.Sum)
		byCur[string(currency)] = s
	}
	return s.Add(value)
}

// writeLine writes the record as one line. The API's bytes are kept; only a record that spans
// lines (pretty-printed) is compacted, which changes whitespace and nothing else.
func (w *partWriter) writeLine(raw []byte) error {
	line := raw
	if bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') >= 0 {
		w.scratch = append(w.scratch[:0], raw...)
		v := jsontext.Value(w.scratch)
		if err := v.Compact(); err != nil {
			return fmt.Errorf("compacting record: %w", err)
		}
		line = v
	}
	if w.rowKey {
		var err error
		if w.keyBuf, err = withRowKey(w.keyBuf[:0], line); err != nil {
			return err
		}
		line = w.keyBuf
	}
	if _, err := w.buf.Write(line); err != nil {
		return fmt.Errorf("writing part: %w", err)
	}
	if err := w.buf.WriteByte('\n'); err != nil {
		return fmt.Errorf("writing part: %w", err)
	}
	return nil
}

// PageDone implements consumption.Handler.
func (w *partWriter) PageDone(p consumption.Page) error {
	w.stats.Pages++
	w.log.Info().Str("part", w.chunk.Key()).Int("page", p.Index).Int("page_records", p.Records).
		Int64("records", w.stats.Rows).Int64("bytes", w.out.n).Bool("more", p.NextLink != "").Msg("page")
	if w.onPage != nil {
		w.onPage(p, w.stats.Rows, w.out.n)
	}
	return w.ctx.Err()
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

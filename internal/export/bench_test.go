package export

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// benchPages is how many copies of the 1000-record page one partition-write operation streams.
const benchPages = 4

// benchChunk is the one-day chunk the benchmark pages belong to.
func benchChunk() Chunk {
	d := benchdata.Day
	p := Partition{
		Scope:  scope.MustParse("/providers/Microsoft.Billing/billingAccounts/8608480"),
		Period: period.Period{Year: d.Year(), Month: d.Month()},
		Metric: "actualcost",
	}
	return Chunk{Partition: p, From: d, To: d}
}

// replaySource serves the same page n times through consumption.ParsePage, as List would.
type replaySource struct {
	page []byte
	n    int
}

func (s *replaySource) Name() manifest.Source { return manifest.SourceUsageDetails }
func (s *replaySource) APIVersion() string    { return "2024-08-01" }

func (s *replaySource) Fetch(ctx context.Context, _ Chunk, h paging.Handler) error {
	r := bytes.NewReader(s.page)
	for i := range s.n {
		r.Reset(s.page)
		_, n, err := consumption.ParsePage(ctx, r, h)
		if err != nil {
			return err
		}
		if err := h.PageDone(ctx, paging.Page{Index: i, Records: n}); err != nil {
			return err
		}
	}
	return nil
}

// discardStore is a Store whose writes read everything and keep nothing.
type discardStore struct{ Store }

func (discardStore) Put(_ context.Context, _ string, r io.Reader, _ *store.PutOptions) (store.Props, error) {
	n, err := io.Copy(io.Discard, r)
	return store.Props{Size: n}, err
}

func (discardStore) StageBlock(context.Context, string, int, []byte) error { return nil }

func (discardStore) CommitBlocks(context.Context, string, int, *store.PutOptions) (store.Props, error) {
	return store.Props{}, nil
}

// newLineListing returns a listing of the benchmark day that writes uncompressed lines into a
// discarding store.
func newLineListing() *listing {
	nop := zerolog.Nop()
	e := New(discardStore{}, nil, &Options{NoGzip: true})
	c := benchChunk()
	return &listing{e: e, c: c, layout: layoutOf(c.Partition, 1), runDir: "bench",
		ext: ".jsonl", log: &nop, parts: map[int64]*partOut{}, byKey: map[string]*partOut{}}
}

// BenchmarkLineEncode is the per-record work of a listing without gzip: field extraction, the day
// check, the part lookup, totals, and the line write into the part's buffer.
func BenchmarkLineEncode(b *testing.B) {
	for _, s := range benchdata.Shapes {
		b.Run(string(s), func(b *testing.B) {
			recs, err := benchdata.Records(s, benchdata.MaxRecords)
			if err != nil {
				b.Fatal(err)
			}
			var size int
			for _, r := range recs {
				size += len(r)
			}
			w := newLineListing()
			b.SetBytes(int64(size / len(recs)))
			b.ReportAllocs()
			cpu0 := benchdata.CPUTime()
			i := 0
			for b.Loop() {
				if err := w.Record(context.Background(), recs[i]); err != nil {
					b.Fatal(err)
				}
				i = (i + 1) % len(recs)
			}
			b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N), "cpu-ns/record")
			if w.written != int64(b.N) {
				b.Fatalf("got %d rows, want %d", w.written, b.N)
			}
		})
	}
}

// BenchmarkPartitionWrite streams benchPages pages of 1000 legacy records (with additionalInfo)
// through the whole listing path: page decode, fields, day split, line write, gzip, sha256,
// block staging. The gzip-only case compresses the same JSON lines the same way (level 0: the
// stateless day-split compressor): the physical floor the full path is compared with.
func BenchmarkPartitionWrite(b *testing.B) {
	page, err := benchdata.Page(benchdata.Legacy, benchdata.MaxRecords)
	if err != nil {
		b.Fatal(err)
	}
	const records = benchPages * benchdata.MaxRecords
	lines := linesOf(b, page)
	for _, level := range []int{0, 1, 5, 6} {
		name := "level=" + map[int]string{0: "stateless", 1: "1", 5: "5", 6: "6"}[level]
		b.Run(name+"/part", func(b *testing.B) {
			e := New(discardStore{}, nil, &Options{GzipLevel: level})
			src := &replaySource{page: page, n: benchPages}
			ctx := zerolog.Nop().WithContext(context.Background())
			b.SetBytes(int64(len(lines)) * benchPages)
			b.ReportAllocs()
			cpu0 := benchdata.CPUTime()
			for b.Loop() {
				c := benchChunk()
				r, err := e.runListing(ctx, src, c, layoutOf(c.Partition, 1), "bench", ".jsonl.gz", nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Parts) != 1 || r.Parts[0].Rows != records {
					b.Fatalf("got %+v, want one part of %d rows", r.Parts, records)
				}
			}
			b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N*records), "cpu-ns/record")
		})
		b.Run(name+"/gzip-only", func(b *testing.B) {
			b.SetBytes(int64(len(lines)) * benchPages)
			b.ReportAllocs()
			cpu0 := benchdata.CPUTime()
			if level == 0 {
				for b.Loop() {
					z := newStatelessGzip(io.Discard)
					for range benchPages {
						for i := 0; i < len(lines); i += lineFlush {
							if err := z.write(lines[i:min(len(lines), i+lineFlush)], false); err != nil {
								b.Fatal(err)
							}
						}
					}
					if err := z.write(nil, true); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N*records), "cpu-ns/record")
				return
			}
			gz, err := gzip.NewWriterLevel(io.Discard, level)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				gz.Reset(io.Discard)
				for range benchPages {
					if _, err := gz.Write(lines); err != nil {
						b.Fatal(err)
					}
				}
				if err := gz.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N*records), "cpu-ns/record")
		})
	}
}

// linesOf returns the JSON lines a part holds for page: what the gzip-only case compresses.
func linesOf(b *testing.B, page []byte) []byte {
	w := newLineListing()
	cs := &captureStore{}
	w.e.st = cs
	if _, _, err := consumption.ParsePage(context.Background(), bytes.NewReader(page), w); err != nil {
		b.Fatal(err)
	}
	out := cs.data
	for _, p := range w.byKey {
		out = append(append(out, p.block...), p.lines...)
	}
	if len(out) == 0 {
		b.Fatal(errors.New("no lines"))
	}
	return out
}

// captureStore keeps the staged blocks' bytes, in staging order.
type captureStore struct {
	discardStore
	data []byte
}

func (c *captureStore) StageBlock(_ context.Context, _ string, _ int, data []byte) error {
	c.data = append(c.data, data...)
	return nil
}

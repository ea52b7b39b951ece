package export

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/decimal"
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

func (s *replaySource) Name() string       { return SourceUsageDetails }
func (s *replaySource) APIVersion() string { return "2024-08-01" }

func (s *replaySource) Fetch(_ context.Context, _ Chunk, h consumption.Handler) error {
	r := bytes.NewReader(s.page)
	for i := range s.n {
		r.Reset(s.page)
		_, n, err := consumption.ParsePage(r, h)
		if err != nil {
			return err
		}
		if err := h.PageDone(consumption.Page{Index: i, Records: n}); err != nil {
			return err
		}
	}
	return nil
}

// discardStore is a Store whose Put reads everything and keeps nothing.
type discardStore struct{ Store }

func (discardStore) Put(_ context.Context, _ string, r io.Reader, _ *store.PutOptions) (store.Props, error) {
	n, err := io.Copy(io.Discard, r)
	return store.Props{Size: n}, err
}

func newLinePartWriter(w io.Writer) *partWriter {
	nop := zerolog.Nop()
	return &partWriter{
		ctx: context.Background(), chunk: benchChunk(), filter: true, log: &nop,
		out:    &countHash{w: io.Discard, h: nopHash{}},
		buf:    bufio.NewWriterSize(w, lineBufferSize),
		totals: map[string]map[string]*decimal.Sum{}, subs: map[string]struct{}{}, kinds: map[string]*int64{},
	}
}

// BenchmarkLineEncode is the per-record work of a part without gzip: field extraction, the day
// check, totals, and the line write into the part's buffer.
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
			w := newLinePartWriter(io.Discard)
			b.SetBytes(int64(size / len(recs)))
			b.ReportAllocs()
			cpu0 := benchdata.CPUTime()
			i := 0
			for b.Loop() {
				if err := w.Record(recs[i]); err != nil {
					b.Fatal(err)
				}
				i = (i + 1) % len(recs)
			}
			b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N), "cpu-ns/record")
			if w.stats.Rows != int64(b.N) {
				b.Fatalf("got %d rows, want %d", w.stats.Rows, b.N)
			}
		})
	}
}

// BenchmarkPartitionWrite streams benchPages pages of 1000 legacy records (with additionalInfo)
// through the whole part path: page decode, fields, line write, gzip, sha256, pipe, store.Put.
// The gzip-only case compresses the same JSON lines at the same level: the physical floor the
// full path is compared with.
func BenchmarkPartitionWrite(b *testing.B) {
	page, err := benchdata.Page(benchdata.Legacy, benchdata.MaxRecords)
	if err != nil {
		b.Fatal(err)
	}
	const records = benchPages * benchdata.MaxRecords
	lines := linesOf(b, page)
	for _, level := range []int{0, 1, 5, 6} {
		name := "level=" + map[int]string{0: "default", 1: "1", 5: "5", 6: "6"}[level]
		b.Run(name+"/part", func(b *testing.B) {
			e := New(discardStore{}, nil, &Options{GzipLevel: level})
			src := &replaySource{page: page, n: benchPages}
			ctx := zerolog.Nop().WithContext(context.Background())
			b.SetBytes(int64(len(lines)) * benchPages)
			b.ReportAllocs()
			cpu0 := benchdata.CPUTime()
			for b.Loop() {
				ps, err := e.writePart(ctx, src, benchChunk(), "bench", nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ps.Rows != records {
					b.Fatalf("got %d rows, want %d", ps.Rows, records)
				}
			}
			b.ReportMetric(float64(benchdata.CPUTime()-cpu0)/float64(b.N*records), "cpu-ns/record")
		})
		b.Run(name+"/gzip-only", func(b *testing.B) {
			e := New(discardStore{}, nil, &Options{GzipLevel: level})
			b.SetBytes(int64(len(lines)) * benchPages)
			b.ReportAllocs()
			gz, err := gzip.NewWriterLevel(io.Discard, e.gzipLevel())
			if err != nil {
				b.Fatal(err)
			}
			cpu0 := benchdata.CPUTime()
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
	var out bytes.Buffer
	w := newLinePartWriter(&out)
	if _, _, err := consumption.ParsePage(bytes.NewReader(page), w); err != nil {
		b.Fatal(err)
	}
	if err := w.buf.Flush(); err != nil {
		b.Fatal(err)
	}
	if out.Len() == 0 {
		b.Fatal(errors.New("no lines"))
	}
	return out.Bytes()
}

// nopHash is a hash.Hash that does nothing (the line benchmark has no output stream).
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

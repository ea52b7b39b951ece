package export

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/bench/benchdata"
)

// heapPer returns the heap in use per item after make(n) built n live items.
func heapPer(n int, make func(i int) any) int64 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	keep := make(0)
	items := []any{keep}
	for i := 1; i < n; i++ {
		items = append(items, make(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&b)
	runtime.KeepAlive(items)
	return (int64(b.HeapInuse) - int64(a.HeapInuse)) / int64(n)
}

// TestCompressorMemory measures what one open part costs: a stateful klauspost gzip.Writer per
// level (the figures in docs/architecture.md), and the day split's parts (stateless deflate,
// line buffer, a nearly full block each), which must leave room in 100 MiB for 31 parts in each
// of the default partitions in flight.
func TestCompressorMemory(t *testing.T) {
	recs, err := benchdata.Records(benchdata.Legacy, benchdata.MaxRecords)
	if err != nil {
		t.Fatal(err)
	}
	var lines []byte
	for len(lines) < 2*lineFlush {
		for _, r := range recs {
			lines = append(append(lines, r...), '\n')
		}
	}
	input := lines[:2*lineFlush]
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression} {
		per := heapPer(32, func(int) any {
			w, _ := gzip.NewWriterLevel(io.Discard, level)
			_, _ = w.Write(input)
			return w
		})
		t.Logf("stateful gzip.Writer level %d: %d KiB per writer", level, per>>10)
	}
	// The day split: 31 parts of one listing, each fed more lines than one flush.
	nop := zerolog.Nop()
	e := New(discardStore{}, nil, nil)
	per := heapPer(2, func(int) any {
		c := benchChunk()
		c.From, c.To = c.Period.Start(), c.Period.End().AddDate(0, 0, -1)
		l := &listing{e: e, c: c, layout: layoutOf(c.Partition, 1), runDir: "m", ext: ".jsonl.gz",
			log: &nop, parts: map[int64]*partOut{}, byKey: map[string]*partOut{}}
		for d := c.From; !d.After(c.To); d = d.AddDate(0, 0, 1) {
			p, err := l.part(d)
			if err != nil {
				t.Fatal(err)
			}
			// Fill the part until its block is nearly full: the worst case before staging.
			for i := 0; len(p.block) < blockSize*7/8; i = (i + 4096) % len(lines) {
				p.lines = append(p.lines, lines[i:min(len(lines), i+4096)]...)
				if len(p.lines) >= lineFlush {
					if err := l.flush(context.Background(), p, false); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		return l
	})
	t.Logf("day split: %d KiB per partition of 31 open day parts (%d KiB per part)", per>>10, per/31>>10)
	if limit := int64(100<<20) / int64(2*DefaultPartitionConcurrency); per > limit {
		t.Errorf("a listing with 31 open parts holds %d KiB, want at most %d KiB (half of 100 MiB over the default partitions in flight)", per>>10, limit>>10)
	}
}

// TestNewCompressorRoundTrip: both compressors write standard gzip that decompresses to the input.
func TestNewCompressorRoundTrip(t *testing.T) {
	recs, err := benchdata.Records(benchdata.Modern, 300)
	if err != nil {
		t.Fatal(err)
	}
	var in []byte
	for _, r := range recs {
		in = append(append(in, r...), '\n')
	}
	for _, level := range []int{0, gzip.BestSpeed} {
		var out bytes.Buffer
		w, err := NewCompressor(&out, level)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(in); i += 5000 { // uneven writes
			if _, err := w.Write(in[i:min(len(in), i+5000)]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		zr, err := stdgzip.NewReader(&out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("level %d: round trip lost data (%v): %d bytes, want %d", level, err, len(got), len(in))
		}
	}
}

// Package verify re-reads an exported partition and checks it against its manifest.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/store"
)

// Reader is what verification needs from a store.
type Reader interface {
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
	List(ctx context.Context, prefix string, fn func(store.Item) error) error
}

// Report is the outcome of a verification.
type Report struct {
	Manifest string   `json:"manifest"`
	RunID    string   `json:"runId"`
	Blobs    int      `json:"blobs"`
	Rows     int64    `json:"rows"`
	Bytes    int64    `json:"bytes"`
	Problems []string `json:"problems"`
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Partition verifies the partition whose manifest is manifestName ("…/_manifest.json").
func Partition(ctx context.Context, st Reader, manifestName string) (*Report, error) {
	rep := &Report{Manifest: manifestName}
	b, err := store.ReadSmall(ctx, st, manifestName)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, err
	}
	rep.RunID = m.RunInfo.RunID
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }

	totals := map[string]map[string]*decimal.Sum{}
	listed := map[string]bool{}
	var rows, bytesTotal int64
	for _, bl := range m.Blobs {
		listed[bl.BlobName] = true
		got, err := readPart(ctx, st, bl.BlobName, m.Compression == "gzip", totals)
		if err != nil {
			problem("%s: %v", bl.BlobName, err)
			continue
		}
		rep.Problems = append(rep.Problems, got.Mismatches(bl.BlobName, bl.ByteCount, bl.SHA256, bl.DataRowCount)...)
		rows += got.Rows
		bytesTotal += got.Bytes
	}
	rep.Blobs, rep.Rows, rep.Bytes = len(m.Blobs), rows, bytesTotal
	if int64(rows) != m.DataRowCount {
		problem("partition: %d rows, manifest says %d", rows, m.DataRowCount)
	}
	if bytesTotal != m.ByteCount {
		problem("partition: %d bytes, manifest says %d", bytesTotal, m.ByteCount)
	}
	if len(m.Blobs) != m.BlobCount {
		problem("partition: %d blobs listed, blobCount says %d", len(m.Blobs), m.BlobCount)
	}
	rep.Problems = append(rep.Problems, totalsProblems(m.Totals, totals)...)
	unlisted, err := Unlisted(ctx, st, path.Dir(manifestName), listed)
	if err != nil {
		return nil, err
	}
	for _, name := range unlisted {
		if m.Status == manifest.StatusCommitted {
			problem("%s: part file not listed in the manifest", name)
		}
	}
	sort.Strings(rep.Problems)
	return rep, nil
}

// totalsProblems compares the totals recomputed from the lines with the manifest's.
func totalsProblems(want map[string]map[string]string, totals map[string]map[string]*decimal.Sum) []string {
	var out []string
	problem := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for field, byCur := range want {
		for cur, w := range byCur {
			got := "0"
			if s := totals[field][cur]; s != nil {
				got = s.String()
			}
			if !sameDecimal(got, w) {
				problem("totals: %s %s = %s, manifest says %s", field, cur, got, w)
			}
		}
	}
	for field, byCur := range totals {
		for cur, s := range byCur {
			if _, ok := want[field][cur]; !ok {
				problem("totals: %s %s = %s, missing from the manifest", field, cur, s.String())
			}
		}
	}
	return out
}

func sameDecimal(a, b string) bool {
	x, err1 := decimal.Parse(a)
	y, err2 := decimal.Parse(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x.Rat().Cmp(y.Rat()) == 0
}

// readPart re-reads the part file name, adding its records' costs to totals.
func readPart(ctx context.Context, st Reader, name string, gz bool, totals map[string]map[string]*decimal.Sum) (Part, error) {
	rc, _, err := st.Get(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Part{}, errors.New("listed in the manifest but missing")
		}
		return Part{}, err
	}
	defer rc.Close()
	var f record.Fields
	return ReadPart(rc, gz, func(line []byte) error {
		if err := f.Extract(line); err != nil {
			return err
		}
		if len(f.Cost) > 0 {
			add(totals, f.CostField, string(f.Currency), f.Cost)
		}
		if len(f.CostUSD) > 0 {
			add(totals, record.FieldCostInUSD, "USD", f.CostUSD)
		}
		return nil
	})
}

func add(totals map[string]map[string]*decimal.Sum, field, cur string, v []byte) {
	if totals[field] == nil {
		totals[field] = map[string]*decimal.Sum{}
	}
	if totals[field][cur] == nil {
		totals[field][cur] = new(decimal.Sum)
	}
	_ = totals[field][cur].Add(v)
}

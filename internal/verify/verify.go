// Package verify re-reads an exported partition and checks it against its manifest: every blob
// the manifest lists exists with the same byte count and SHA-256, holds the stated number of
// JSON lines, and the per-currency totals recomputed from the lines equal the manifest's; no part
// file that the manifest does not list sits in the partition folder.
package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"

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

// maxLine bounds one JSON line (a usage record is a few KB).
const maxLine = 16 << 20

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
		if got.bytes != bl.ByteCount {
			problem("%s: %d bytes, manifest says %d", bl.BlobName, got.bytes, bl.ByteCount)
		}
		if got.sha != bl.SHA256 {
			problem("%s: sha256 %s, manifest says %s", bl.BlobName, got.sha, bl.SHA256)
		}
		if got.rows != bl.DataRowCount {
			problem("%s: %d rows, manifest says %d", bl.BlobName, got.rows, bl.DataRowCount)
		}
		rows += got.rows
		bytesTotal += got.bytes
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
	for field, byCur := range m.Totals {
		for cur, want := range byCur {
			got := "0"
			if s := totals[field][cur]; s != nil {
				got = s.String()
			}
			if !sameDecimal(got, want) {
				problem("totals: %s %s = %s, manifest says %s", field, cur, got, want)
			}
		}
	}
	for field, byCur := range totals {
		for cur, s := range byCur {
			if _, ok := m.Totals[field][cur]; !ok {
				problem("totals: %s %s = %s, missing from the manifest", field, cur, s.String())
			}
		}
	}
	dir := path.Dir(manifestName)
	err = st.List(ctx, dir+"/", func(it store.Item) error {
		base := path.Base(it.Name)
		if path.Dir(it.Name) == dir && strings.HasPrefix(base, "part-") && !listed[it.Name] && m.Status == manifest.StatusCommitted {
			problem("%s: part file not listed in the manifest", it.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing partition: %w", err)
	}
	sort.Strings(rep.Problems)
	return rep, nil
}

func sameDecimal(a, b string) bool {
	x, err1 := decimal.Parse(a)
	y, err2 := decimal.Parse(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x.Rat().Cmp(y.Rat()) == 0
}

type partResult struct {
	bytes int64
	rows  int64
	sha   string
}

func readPart(ctx context.Context, st Reader, name string, gz bool, totals map[string]map[string]*decimal.Sum) (partResult, error) {
	rc, _, err := st.Get(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return partResult{}, errors.New("listed in the manifest but missing")
		}
		return partResult{}, err
	}
	defer rc.Close()
	h := sha256.New()
	cnt := &counter{}
	tee := io.TeeReader(rc, io.MultiWriter(h, cnt))
	var r = tee
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return partResult{}, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var f record.Fields
	var res partResult
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		res.rows++
		if err := f.Extract(line); err != nil {
			return res, fmt.Errorf("line %d: %w", res.rows, err)
		}
		if len(f.Cost) > 0 {
			add(totals, f.CostField, string(f.Currency), f.Cost)
		}
		if len(f.CostUSD) > 0 {
			add(totals, record.FieldCostInUSD, "USD", f.CostUSD)
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("reading lines: %w", err)
	}
	// Drain what the decompressor did not need (trailing bytes count in the hash).
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return res, err
	}
	res.bytes = cnt.n
	res.sha = hex.EncodeToString(h.Sum(nil))
	return res, nil
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

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

package focus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/store"
)

// Reader is what verification needs from a store.
type Reader interface {
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
	List(ctx context.Context, prefix string, fn func(store.Item) error) error
}

// Verification is the outcome of Verify.
type Verification struct {
	RunID    string
	Blobs    int
	Rows     int64
	Bytes    int64
	Problems []string
}

// ParseLine reads one line of the dataset back into a Row (for checks and tests). A column
// missing from the line, or a member that is not a column, is an error.
func ParseLine(line []byte) (*Row, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("decoding line: %w", err)
	}
	r := &Row{cells: make([]cell, len(Columns))}
	for i, name := range Columns {
		raw, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("column %s is missing", name)
		}
		delete(m, name)
		switch {
		case bytes.Equal(raw, []byte("null")):
		case raw[0] == '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("column %s: %w", name, err)
			}
			r.cells[i] = cell{kind: vString, s: s}
		case raw[0] == '{' || raw[0] == '[':
			r.cells[i] = cell{kind: vRaw, s: string(raw)}
		default:
			r.cells[i] = cell{kind: vNumber, s: string(raw)}
		}
	}
	for k := range m {
		return nil, fmt.Errorf("member %s is not a column of the dataset", k)
	}
	r.Currency, _ = r.Get("BillingCurrency")
	r.Billed, _ = r.Get("BilledCost")
	r.Effective, _ = r.Get("EffectiveCost")
	return r, nil
}

// Verify re-reads the FOCUS partition whose manifest (bytes b) is manifestName and checks it:
// every listed blob exists with its byte count, SHA-256 and row count; BilledCost and
// EffectiveCost recomputed from the lines equal the manifest's totals; every line conforms to
// the column table; the manifest's invariants held when it was built; no unlisted part sits in
// the folder; and the inputs it was built from are still the committed ones.
func Verify(ctx context.Context, st Reader, manifestName string, b []byte) (*Verification, error) {
	m, err := ParseManifest(b)
	if err != nil {
		return nil, err
	}
	spec, err := LoadSpec()
	if err != nil {
		return nil, err
	}
	ck, err := NewChecker(spec)
	if err != nil {
		return nil, err
	}
	v := &Verification{RunID: m.RunInfo.RunID, Blobs: len(m.Blobs)}
	problem := func(format string, args ...any) { v.Problems = append(v.Problems, fmt.Sprintf(format, args...)) }
	billed, effective := map[string]*decimal.Sum{}, map[string]*decimal.Sum{}
	listed := map[string]bool{}
	badRows := 0
	for _, bl := range m.Blobs {
		listed[bl.BlobName] = true
		rc, _, err := st.Get(ctx, bl.BlobName)
		if errors.Is(err, store.ErrNotFound) {
			problem("%s: listed in the manifest but missing", bl.BlobName)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", bl.BlobName, err)
		}
		h := sha256.New()
		cw := &countWriter{w: h}
		r := io.Reader(io.TeeReader(rc, cw))
		var zr *gzip.Reader
		if m.Compression == "gzip" {
			if zr, err = gzip.NewReader(r); err != nil {
				rc.Close()
				problem("%s: gzip: %v", bl.BlobName, err)
				continue
			}
			r = zr
		}
		var rows int64
		err = scanLines(r, func(line []byte) error {
			rows++
			row, err := ParseLine(line)
			if err != nil {
				return fmt.Errorf("line %d: %w", rows, err)
			}
			if bad := ck.Row(row); len(bad) > 0 {
				if badRows < 5 {
					problem("%s line %d: %s", bl.BlobName, rows, strings.Join(bad, "; "))
				}
				badRows++
			}
			for _, x := range []struct {
				m map[string]*decimal.Sum
				v string
			}{{billed, row.Billed}, {effective, row.Effective}} {
				if x.m[row.Currency] == nil {
					x.m[row.Currency] = &decimal.Sum{}
				}
				if err := x.m[row.Currency].AddString(x.v); err != nil {
					return fmt.Errorf("line %d: %w", rows, err)
				}
			}
			return nil
		})
		if err == nil {
			_, err = io.Copy(io.Discard, io.TeeReader(rc, cw))
		}
		if zr != nil {
			zr.Close()
		}
		rc.Close()
		if err != nil {
			problem("%s: %v", bl.BlobName, err)
			continue
		}
		if sha := hex.EncodeToString(h.Sum(nil)); sha != bl.SHA256 {
			problem("%s: sha256 %s, manifest says %s", bl.BlobName, sha, bl.SHA256)
		}
		if cw.n != bl.ByteCount {
			problem("%s: %d bytes, manifest says %d", bl.BlobName, cw.n, bl.ByteCount)
		}
		if rows != bl.DataRowCount {
			problem("%s: %d rows, manifest says %d", bl.BlobName, rows, bl.DataRowCount)
		}
		v.Rows += rows
		v.Bytes += cw.n
	}
	if badRows > 5 {
		problem("%d rows break the FOCUS %s column table in all", badRows, spec.FocusVersion)
	}
	if v.Rows != m.DataRowCount {
		problem("partition: %d rows, manifest says %d", v.Rows, m.DataRowCount)
	}
	for _, c := range []Check{reconcile("BilledCost", strs(billed), m.Totals["BilledCost"]),
		reconcile("EffectiveCost", strs(effective), m.Totals["EffectiveCost"])} {
		if !c.OK {
			problem("totals: %s recomputed vs manifest: %s", c.Name, c.Detail)
		}
	}
	for _, c := range m.Checks {
		if !c.OK {
			problem("invariant %q did not hold when built: %s", c.Name, c.Detail)
		}
	}
	dir := path.Dir(manifestName)
	err = st.List(ctx, dir+"/", func(it store.Item) error {
		if path.Dir(it.Name) == dir && strings.HasPrefix(path.Base(it.Name), "part-") && !listed[it.Name] {
			problem("%s: part file not listed in the manifest", it.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing partition: %w", err)
	}
	for _, mt := range inputs {
		in, ok := m.Inputs[mt]
		if !ok {
			problem("inputs: no %s input recorded", mt)
			continue
		}
		rc, _, err := st.Get(ctx, in.Manifest)
		if err != nil {
			problem("inputs: %s: %v", in.Manifest, err)
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", in.Manifest, err)
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != in.ManifestSHA256 {
			problem("inputs: %s was re-committed after this partition was built (a rebuild is due)", in.Manifest)
		}
	}
	sort.Strings(v.Problems)
	return v, nil
}

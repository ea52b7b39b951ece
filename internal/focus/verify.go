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

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

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
func Verify(ctx context.Context, st verify.Reader, manifestName string, b []byte) (*Verification, error) {
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
	t, err := v.readBlobs(ctx, st, m, ck)
	if err != nil {
		return nil, err
	}
	if t.badRows > 5 {
		v.problem("%d rows break the FOCUS %s column table in all", t.badRows, spec.FocusVersion)
	}
	if v.Rows != m.DataRowCount {
		v.problem("partition: %d rows, manifest says %d", v.Rows, m.DataRowCount)
	}
	for _, c := range []Check{reconcile("BilledCost", strs(t.billed), m.Totals["BilledCost"]),
		reconcile("EffectiveCost", strs(t.effective), m.Totals["EffectiveCost"])} {
		if !c.OK {
			v.problem("totals: %s recomputed vs manifest: %s", c.Name, c.Detail)
		}
	}
	for _, c := range m.Checks {
		if !c.OK {
			v.problem("invariant %q did not hold when built: %s", c.Name, c.Detail)
		}
	}
	unlisted, err := verify.Unlisted(ctx, st, path.Dir(manifestName), t.listed)
	if err != nil {
		return nil, err
	}
	for _, name := range unlisted {
		v.problem("%s: part file not listed in the manifest", name)
	}
	if err := v.checkInputs(ctx, st, m); err != nil {
		return nil, err
	}
	sort.Strings(v.Problems)
	return v, nil
}

func (v *Verification) problem(format string, args ...any) {
	v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
}

// lineTotals is what the lines of a partition's blobs add up to.
type lineTotals struct {
	listed            map[string]bool
	billed, effective map[string]*decimal.Sum // by currency
	badRows           int                     // rows that break the column table
}

// readBlobs re-reads every blob the manifest lists (verify.ReadPart), checks each line against
// the column table and adds up its costs.
func (v *Verification) readBlobs(ctx context.Context, st verify.Reader, m *Manifest, ck *Checker) (*lineTotals, error) {
	t := &lineTotals{listed: map[string]bool{}, billed: map[string]*decimal.Sum{}, effective: map[string]*decimal.Sum{}}
	for _, bl := range m.Blobs {
		t.listed[bl.BlobName] = true
		rc, _, err := st.Get(ctx, bl.BlobName)
		if errors.Is(err, store.ErrNotFound) {
			v.problem("%s: listed in the manifest but missing", bl.BlobName)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", bl.BlobName, err)
		}
		var rows int64
		got, err := verify.ReadPart(rc, m.Compression == "gzip", func(line []byte) error {
			rows++
			return v.addLine(t, ck, bl.BlobName, rows, line)
		})
		rc.Close()
		if err != nil {
			v.problem("%s: %v", bl.BlobName, err)
			continue
		}
		v.Problems = append(v.Problems, got.Mismatches(bl.BlobName, bl.ByteCount, bl.SHA256, bl.DataRowCount)...)
		v.Rows += got.Rows
		v.Bytes += got.Bytes
	}
	return t, nil
}

// addLine checks line n of blob against the column table (the first five rows that break it
// are problems) and adds its costs to t.
func (v *Verification) addLine(t *lineTotals, ck *Checker, blob string, n int64, line []byte) error {
	row, err := ParseLine(line)
	if err != nil {
		return err
	}
	if bad := ck.Row(row); len(bad) > 0 {
		if t.badRows < 5 {
			v.problem("%s line %d: %s", blob, n, strings.Join(bad, "; "))
		}
		t.badRows++
	}
	for _, sums := range []struct {
		m map[string]*decimal.Sum
		v string
	}{{t.billed, row.Billed}, {t.effective, row.Effective}} {
		if sums.m[row.Currency] == nil {
			sums.m[row.Currency] = &decimal.Sum{}
		}
		if err := sums.m[row.Currency].AddString(sums.v); err != nil {
			return err
		}
	}
	return nil
}

// checkInputs checks that the input manifests the partition was built from are still the
// committed ones.
func (v *Verification) checkInputs(ctx context.Context, st verify.Reader, m *Manifest) error {
	for _, metric := range inputs {
		in, ok := m.Inputs[metric]
		if !ok {
			v.problem("inputs: no %s input recorded", metric)
			continue
		}
		rc, _, err := st.Get(ctx, in.Manifest)
		if err != nil {
			v.problem("inputs: %s: %v", in.Manifest, err)
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", in.Manifest, err)
		}
		if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != in.ManifestSHA256 {
			v.problem("inputs: %s was re-committed after this partition was built (a rebuild is due)", in.Manifest)
		}
	}
	return nil
}

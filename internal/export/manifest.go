package export

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/store"
)

// readBlob returns the blob's bytes, or nil when it does not exist.
func (e *Exporter) readBlob(ctx context.Context, name string) ([]byte, error) {
	b, err := store.ReadSmall(ctx, e.st, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return b, nil
}

func (e *Exporter) readManifest(ctx context.Context, name string) (*manifest.Manifest, error) {
	b, err := e.readBlob(ctx, name)
	if err != nil || b == nil {
		return nil, err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("live manifest %s: %w", name, err)
	}
	return m, nil
}

// buildManifest builds the manifest of the run cp from its checkpointed parts and listings.
func (e *Exporter) buildManifest(p Partition, src Source, cp *checkpoint, status period.Status, now time.Time) *manifest.Manifest {
	m := &manifest.Manifest{
		ManifestVersion: manifest.Version, Status: manifest.StatusCommitted,
		RunInfo: manifest.RunInfo{
			RunID: cp.RunID, ExecutionType: cp.ExecutionType, SubmittedTime: cp.SubmittedTime,
			StartDate: p.Period.Start().Format(time.DateOnly),
			EndDate:   p.Period.End().AddDate(0, 0, -1).Format(time.DateOnly), Resumed: cp.Resumed,
		},
		Scope: p.Scope.String(), ScopeFolder: p.Scope.Folder(), BillingPeriod: p.Period.String(),
		PeriodStatus: string(status), Metric: p.Metric, Source: src.Name(), APIVersion: src.APIVersion(),
		Format: "jsonl", Compression: "none", PartDays: cp.PartDays, RowKey: cp.RowKey,
		RecordKinds: map[string]int64{}, Blobs: []manifest.Blob{},
	}
	if cp.Ext == ".jsonl.gz" {
		m.Compression = "gzip"
	}
	e.addParts(m, p, cp)
	addListings(m, cp.Listings)
	return m
}

// addParts adds the parts of cp to m: their blobs, counts, totals, coverage and invoices.
func (e *Exporter) addParts(m *manifest.Manifest, p Partition, cp *checkpoint) {
	keys := make([]string, 0, len(cp.Parts))
	for k := range cp.Parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	totals := map[string]map[string]*decimal.Sum{}
	subs := map[string]struct{}{}
	invoices := map[string]struct{}{}
	var minDate, maxDate string
	for _, k := range keys {
		ps := cp.Parts[k]
		for kind, n := range ps.Kinds {
			m.RecordKinds[kind] += n
		}
		for _, s := range ps.Subs {
			subs[s] = struct{}{}
		}
		for _, inv := range ps.Invoices {
			invoices[inv] = struct{}{}
		}
		_ = addTotals(totals, ps.Totals) // values were produced by decimal.Sum
		if ps.Rows == 0 {
			continue
		}
		if minDate == "" || ps.MinDate < minDate {
			minDate = ps.MinDate
		}
		if ps.MaxDate > maxDate {
			maxDate = ps.MaxDate
		}
		from, to, _ := parseKey(k)
		m.Blobs = append(m.Blobs, manifest.Blob{
			BlobName: path.Join(e.Dir(p), partPrefix+k+cp.Ext), ByteCount: ps.Bytes, DataRowCount: ps.Rows,
			SHA256: ps.SHA256, UsageDateStart: from.Format(time.DateOnly), UsageDateEnd: to.Format(time.DateOnly),
			Totals: ps.Totals,
		})
		m.ByteCount += ps.Bytes
		m.DataRowCount += ps.Rows
	}
	m.BlobCount = len(m.Blobs)
	m.Totals = map[string]map[string]string{}
	for field, byCur := range totals {
		m.Totals[field] = map[string]string{}
		for cur, s := range byCur {
			m.Totals[field][cur] = s.String()
		}
	}
	if minDate != "" {
		m.UsageDateRange = &manifest.DateRange{Min: minDate, Max: maxDate}
	}
	m.Coverage.SubscriptionIDs = sortedSet(subs, manifest.MaxCoverageIDs)
	m.Coverage.Subscriptions = len(subs)
	m.InvoiceIDs = sortedSet(invoices, maxInvoiceIDs)
}

// addListings adds the listings' figures to m, and the records they returned but did not write.
func addListings(m *manifest.Manifest, listings map[string]*listingDone) {
	var outside, other dropStats
	lkeys := make([]string, 0, len(listings))
	for k := range listings {
		lkeys = append(lkeys, k)
	}
	sort.Strings(lkeys)
	for _, k := range lkeys {
		ld := listings[k]
		m.Listings++
		m.Pages += ld.Pages
		m.RecordsReturned += ld.Records
		outside.add(ld.Outside)
		other.add(ld.Other)
	}
	for _, nw := range []struct {
		reason string
		d      dropStats
	}{{manifest.NotWrittenOutsidePeriod, outside}, {manifest.NotWrittenOtherListing, other}} {
		if nw.d.Rows == 0 {
			continue
		}
		x := manifest.NotWritten{Reason: nw.reason, Rows: nw.d.Rows, Totals: nw.d.Totals}
		if nw.d.MinDate != "" {
			x.UsageDateRange = &manifest.DateRange{Min: nw.d.MinDate, Max: nw.d.MaxDate}
		}
		m.ReturnedNotWritten = append(m.ReturnedNotWritten, x)
	}
}

// previous builds the change report of m against the live manifest.
func previous(live, m *manifest.Manifest) *manifest.Previous {
	pv := &manifest.Previous{RunID: live.RunInfo.RunID, DataRowCount: live.DataRowCount, Totals: live.Totals}
	pv.Delta.DataRowCount = m.DataRowCount - live.DataRowCount
	pv.Delta.Totals = map[string]map[string]string{}
	fields := map[string]bool{}
	for f := range m.Totals {
		fields[f] = true
	}
	for f := range live.Totals {
		fields[f] = true
	}
	for f := range fields {
		curs := map[string]bool{}
		for c := range m.Totals[f] {
			curs[c] = true
		}
		for c := range live.Totals[f] {
			curs[c] = true
		}
		pv.Delta.Totals[f] = map[string]string{}
		for c := range curs {
			nw, _ := decimal.Parse(orZero(m.Totals[f][c]))
			old, _ := decimal.Parse(orZero(live.Totals[f][c]))
			d := nw.Rat()
			d.Sub(d, old.Rat())
			pv.Delta.Totals[f][c] = decimal.Format(d)
		}
	}
	return pv
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// dropGuard returns why m must be held back against live, or "".
func (e *Exporter) dropGuard(live, m *manifest.Manifest) string {
	g := e.opts.DropGuard
	if live.DataRowCount > 0 && float64(m.DataRowCount) < float64(live.DataRowCount)*(1-g) {
		return fmt.Sprintf("row count dropped from %d to %d (more than %.0f%%)", live.DataRowCount, m.DataRowCount, g*100)
	}
	for field, byCur := range live.Totals {
		for cur, v := range byCur {
			old, err := decimal.Parse(v)
			if err != nil {
				continue
			}
			nw, _ := decimal.Parse(orZero(m.Totals[field][cur]))
			of, nf := old.Float(), nw.Float()
			if of > 0 && nf < of*(1-g) {
				return fmt.Sprintf("%s total in %s dropped from %s to %s (more than %.0f%%)", field, cur, v, orZero(m.Totals[field][cur]), g*100)
			}
		}
	}
	return ""
}

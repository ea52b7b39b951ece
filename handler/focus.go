package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/focus"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

// rebuildFocus rebuilds the FOCUS partition of a raw partition committed outside a run (handler
// publish of a held run) when USAGE_EXPORT_FOCUS is on; nil when it is off or m is not an
// actual or amortized partition.
func rebuildFocus(ctx context.Context, cfg *config.Config, st export.Store, m *manifest.Manifest) *focus.Result {
	if !cfg.Focus || (m.Metric != metric.ActualCost && m.Metric != metric.AmortizedCost) {
		return nil
	}
	sc, err := scope.Parse(m.Scope)
	if err != nil {
		return &focus.Result{Scope: m.Scope, Period: m.BillingPeriod, Status: focus.StatusFailed, Reason: err.Error()}
	}
	p, err := period.Parse(m.BillingPeriod)
	if err != nil {
		return &focus.Result{Scope: m.Scope, Period: m.BillingPeriod, Status: focus.StatusFailed, Reason: err.Error()}
	}
	r := focus.New(st, &focus.Options{Prefix: cfg.Prefix, NoGzip: !cfg.Gzip,
		LeaseTTL: time.Duration(cfg.LeaseSeconds) * time.Second}).Build(ctx, sc, p, false)
	return &r
}

// verifyPartition verifies a raw partition (verify.Partition) or a FOCUS partition
// (focus.Verify), whichever its manifest describes.
func verifyPartition(ctx context.Context, st verify.Reader, name string) (*verify.Report, error) {
	b, err := store.ReadSmall(ctx, st, name)
	if errors.Is(err, store.ErrNotFound) {
		return verify.Partition(ctx, st, name) // reports the missing manifest its way
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if !focus.IsManifest(b) {
		return verify.Partition(ctx, st, name)
	}
	v, err := focus.Verify(ctx, st, name, b)
	if err != nil {
		return nil, err
	}
	return &verify.Report{Manifest: name, RunID: v.RunID, Blobs: v.Blobs, Rows: v.Rows, Bytes: v.Bytes, Problems: v.Problems}, nil
}

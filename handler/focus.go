package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/usage-export/usage-export/internal/focus"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

// verifyPartition verifies a raw partition (verify.Partition) or a FOCUS partition
// (focus.Verify), whichever its manifest describes.
func verifyPartition(ctx context.Context, st verify.Reader, name string) (*verify.Report, error) {
	rc, _, err := st.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return verify.Partition(ctx, st, name) // reports the missing manifest its way
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	rc.Close()
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

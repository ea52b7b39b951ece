package export

import (
	"context"
	"fmt"
)

// holdLease takes the partition's lease (one writer per partition) and keeps it renewed under
// the returned context; release stops the renewal and releases the lease, logging a failure
// (the lease then expires by itself within Options.LeaseTTL).
func (e *Exporter) holdLease(ctx context.Context, p Partition) (context.Context, func(), error) {
	lease, err := e.st.AcquireLease(ctx, e.leaseName(p), e.opts.LeaseTTL)
	if err != nil {
		return nil, nil, fmt.Errorf("taking partition lease: %w", err)
	}
	ctx, release := lease.Hold(ctx, "partition lease")
	return ctx, release, nil
}

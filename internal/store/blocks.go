package store

import (
	"encoding/base64"
	"fmt"
)

// Staged blocks: a writer that produces one object in pieces, out of order with other objects
// (the exporter's day split), stages each piece as it is ready and commits the object at the
// end. Nothing is visible under the name until CommitBlocks; the commit is atomic like Put.
//
//	StageBlock(ctx, name, n, data) error          // block n (0, 1, 2, …) of name
//	CommitBlocks(ctx, name, n, *PutOptions) (Props, error) // name = blocks 0..n-1, in order
//
// Staging block n again replaces it. A writer stages every block it commits (what a commit
// leaves of earlier blocks differs: Azure keeps the committed ones reusable, Local removes
// them). Blocks staged but never committed are dropped by the store (Azure: after a week, or at
// the next commit of that name; Local: at the next commit or Delete of that name).

// MaxBlocks is the most blocks one object may have (Azure's limit per block blob).
const MaxBlocks = 50000

// blockID is the Azure block id of block n: base64 of a fixed-width decimal, so that every id
// of a blob has the same length, as Azure requires.
func blockID(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("blk-%010d", n)))
}

func checkBlock(op, name string, n int) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n < 0 || n >= MaxBlocks {
		return fmt.Errorf("%s %q: block %d out of range 0..%d", op, name, n, MaxBlocks-1)
	}
	return nil
}

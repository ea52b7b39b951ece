package focus

import (
	"encoding/json"
	"fmt"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
)

// Manifest is the `_manifest.json` of a FOCUS partition. It shares the raw trees' field names
// where they mean the same thing; dataset, focusVersion, inputs, rowsFrom, commitments and checks
// are its own.
type Manifest struct {
	ManifestVersion string           `json:"manifestVersion"`
	Dataset         string           `json:"dataset"` // "focus"
	FocusVersion    string           `json:"focusVersion"`
	Status          manifest.Status  `json:"status"` // committed
	ByteCount       int64            `json:"byteCount"`
	BlobCount       int              `json:"blobCount"`
	DataRowCount    int64            `json:"dataRowCount"`
	RunInfo         manifest.RunInfo `json:"runInfo"`
	Scope           string           `json:"scope"`
	ScopeFolder     string           `json:"scopeFolder"`
	BillingPeriod   string           `json:"billingPeriod"`
	Format          string           `json:"format"`      // jsonl
	Compression     string           `json:"compression"` // gzip | none
	// Totals: "BilledCost" and "EffectiveCost" → BillingCurrency → exact decimal sum.
	Totals map[string]map[string]string `json:"totals"`
	// RowsFrom counts the rows taken from each input (actualcost, amortizedcost).
	RowsFrom map[metric.Metric]int64 `json:"rowsFrom"`
	// Inputs are the committed partitions the dataset was built from, by metric.
	Inputs map[metric.Metric]Input `json:"inputs"`
	// Commitments sums, per commitment order (lower-cased CommitmentDiscountId without the
	// instance), the EffectiveCost of its Used and Unused rows and the BilledCost of its
	// purchases and refunds in this period, per currency: over a commitment's term, used +
	// unused = purchases.
	Commitments map[string]map[string]Commitment `json:"commitments"`
	// Checks are the invariants checked when the partition was built.
	Checks []Check         `json:"checks"`
	Blobs  []manifest.Blob `json:"blobs"`
}

// Input identifies one input partition as it was read.
type Input struct {
	Manifest       string          `json:"manifest"` // blob name
	RunID          string          `json:"runId"`
	ManifestSHA256 string          `json:"manifestSha256"` // of the manifest's bytes
	Source         manifest.Source `json:"source"`
	DataRowCount   int64           `json:"dataRowCount"`
	// Cost is the input's billing-currency cost total per currency (legacy `cost`, modern
	// `costInBillingCurrency`), from its manifest.
	Cost map[string]string `json:"cost"`
}

// Commitment holds the sums of one commitment order in one currency.
type Commitment struct {
	Used      string `json:"usedEffectiveCost"`
	Unused    string `json:"unusedEffectiveCost"`
	Purchases string `json:"purchaseBilledCost"`
}

// Check is one invariant and its outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// ParseManifest decodes a FOCUS manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding focus manifest: %w", err)
	}
	if m.Dataset != Dataset {
		return nil, fmt.Errorf("decoding focus manifest: dataset %q, want %q", m.Dataset, Dataset)
	}
	return &m, nil
}

// IsManifest reports whether manifest bytes are a FOCUS manifest (dataset "focus").
func IsManifest(b []byte) bool {
	var probe struct {
		Dataset string `json:"dataset"`
	}
	return json.Unmarshal(b, &probe) == nil && probe.Dataset == Dataset
}

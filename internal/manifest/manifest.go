// Package manifest defines `_manifest.json`, the commit marker of an exported partition.
package manifest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
)

// Version is the manifestVersion this package writes.
const Version = "2026-11-01"

// FileName is the manifest's blob name inside a partition folder.
const FileName = "_manifest.json"

// Status is the state of the export a manifest describes.
type Status string

// Statuses a manifest records.
const (
	StatusCommitted Status = "committed" // live: the partition's parts are this run's
	StatusHeld      Status = "held"      // held back by the drop guard; the parts are kept aside in the run folder
)

// Source is the API a partition's records came from.
type Source string

// Sources a manifest records, and the source setting that lets the exporter choose.
const (
	SourceUsageDetails Source = "usageDetails" // the usageDetails listing (internal/consumption)
	SourceCostDetails  Source = "costDetails"  // Cost Details reports (internal/costdetails)
	// SourceAuto is a setting, never recorded: internal/source chooses per partition the source
	// with the fewest ARM calls.
	SourceAuto Source = "auto"
)

// ExecutionType says what started the run that wrote a partition.
type ExecutionType string

// Execution types, spelled as the Cost Management exports manifest spells them.
const (
	Scheduled ExecutionType = "Scheduled" // the timer
	OnDemand  ExecutionType = "OnDemand"  // an HTTP request or the CLI
)

// Manifest is the content of `_manifest.json`.
type Manifest struct {
	ManifestVersion string  `json:"manifestVersion"`
	Status          Status  `json:"status"`
	ByteCount       int64   `json:"byteCount"`
	BlobCount       int     `json:"blobCount"`
	DataRowCount    int64   `json:"dataRowCount"`
	RunInfo         RunInfo `json:"runInfo"`

	Scope         string        `json:"scope"`         // the scope path as configured
	ScopeFolder   string        `json:"scopeFolder"`   // the scope=… partition value
	BillingPeriod string        `json:"billingPeriod"` // YYYYMM
	PeriodStatus  period.Status `json:"periodStatus"`  // open | closing | final, when exported
	Metric        metric.Metric `json:"metric"`
	Source        Source        `json:"source"`
	SourceReason  string        `json:"sourceReason,omitempty"` // why that source (the "auto" setting's choice, or the setting that forced it)
	APIVersion    string        `json:"apiVersion"`
	Format        string        `json:"format"`      // jsonl
	Compression   string        `json:"compression"` // gzip | none
	PartDays      int           `json:"partDays"`
	RowKey        bool          `json:"rowKey"` // lines carry the _rowKey field

	UsageDateRange *DateRange                   `json:"usageDateRange"` // null when no rows
	Totals         map[string]map[string]string `json:"totals"`         // cost field → currency → exact decimal sum
	RecordKinds    map[string]int64             `json:"recordKinds"`    // legacy | modern | none | other kinds
	Coverage       Coverage                     `json:"coverage"`
	// InvoiceIDs are the MCA invoice ids the records carry (sorted; absent when none): the
	// auto source asks Cost Details for a closed billing-profile month by its invoice.
	InvoiceIDs []string  `json:"invoiceIds,omitempty"`
	Previous   *Previous `json:"previous,omitempty"`
	Blobs      []Blob    `json:"blobs"`

	// Listings and Pages are the queries (nextLink followed) and pages (calls) the export took.
	Listings int `json:"listings"`
	Pages    int `json:"pages"`
	// RecordsReturned is every record the service returned for those listings: dataRowCount
	// plus the rows of ReturnedNotWritten. Nothing is dropped without being counted here.
	RecordsReturned    int64        `json:"recordsReturned"`
	ReturnedNotWritten []NotWritten `json:"returnedNotWritten,omitempty"`
}

// Reasons a returned record is not written.
const (
	// NotWrittenOutsidePeriod: a date-range listing returned a record dated outside the
	// partition's billing period (the service ignored the range or answered with another
	// period). It is not in this partition; the partition of its period holds it.
	NotWrittenOutsidePeriod = "outsidePeriod"
	// NotWrittenOtherListing: a record of the partition's days outside the listing's own days
	// (the service ignored a step's range); the listing of its days wrote it.
	NotWrittenOtherListing = "otherListing"
)

// NotWritten counts returned records that are not in the partition, for one reason.
type NotWritten struct {
	Reason         string                       `json:"reason"`
	Rows           int64                        `json:"rows"`
	UsageDateRange *DateRange                   `json:"usageDateRange"` // null when none was dated
	Totals         map[string]map[string]string `json:"totals,omitempty"`
}

// RunInfo describes the run that wrote the partition.
type RunInfo struct {
	RunID         string        `json:"runId"`
	ExecutionType ExecutionType `json:"executionType"`
	SubmittedTime time.Time     `json:"submittedTime"`
	FinishedTime  time.Time     `json:"finishedTime"`
	StartDate     string        `json:"startDate"` // first day of the period, YYYY-MM-DD
	EndDate       string        `json:"endDate"`   // last day of the period covered, YYYY-MM-DD
	Resumed       int           `json:"resumed"`   // times the run was continued after an interruption
}

// DateRange is an inclusive range of usage days.
type DateRange struct {
	Min string `json:"min"`
	Max string `json:"max"`
}

// Coverage counts the hierarchy seen in the records, for overlap checks.
type Coverage struct {
	Subscriptions   int      `json:"subscriptions"`
	SubscriptionIDs []string `json:"subscriptionIds,omitempty"` // at most MaxCoverageIDs, sorted
}

// MaxCoverageIDs bounds Coverage.SubscriptionIDs.
const MaxCoverageIDs = 5000

// Previous is the change report against the export this one replaced.
type Previous struct {
	RunID        string                       `json:"runId"`
	DataRowCount int64                        `json:"dataRowCount"`
	Totals       map[string]map[string]string `json:"totals"`
	Delta        Delta                        `json:"delta"`
}

// Delta is new minus previous.
type Delta struct {
	DataRowCount int64                        `json:"dataRowCount"`
	Totals       map[string]map[string]string `json:"totals"`
}

// Blob is one part.
type Blob struct {
	BlobName       string                       `json:"blobName"` // container-relative
	ByteCount      int64                        `json:"byteCount"`
	DataRowCount   int64                        `json:"dataRowCount"`
	SHA256         string                       `json:"sha256"` // hex, of the blob bytes as stored
	UsageDateStart string                       `json:"usageDateStart"`
	UsageDateEnd   string                       `json:"usageDateEnd"`
	Totals         map[string]map[string]string `json:"totals,omitempty"`
}

// Parse decodes a manifest and checks its version.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.ManifestVersion == "" {
		return nil, fmt.Errorf("decoding manifest: no manifestVersion")
	}
	return &m, nil
}

// Marshal encodes m, indented for people.
func (m *Manifest) Marshal() ([]byte, error) {
	return json.MarshalIndent(m, "", "  ")
}

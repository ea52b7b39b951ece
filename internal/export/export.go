// Package export is the data path: it turns scopes × billing periods × metrics into committed
// partitions of JSON lines in a store.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// Defaults.
const (
	// DefaultPartDays is the width of a part in usage days: one part per day keeps parts small
	// enough to resume cheaply and lets days be fetched concurrently.
	DefaultPartDays = 1
	// DefaultConcurrency is how many chunks are fetched at once across a run. The rate budget in
	// the pipeline decides the actual call rate; this only needs to cover page latency.
	DefaultConcurrency = 4
	// DefaultPartitionConcurrency is how many partitions are worked on at once.
	DefaultPartitionConcurrency = 4
	// DefaultDropGuard holds back a re-export of a closed period that loses more than half its
	// rows or cost against the live export.
	DefaultDropGuard = 0.5
	// DefaultRestatementDays is how long after its end a period still changes (Azure closes a
	// period up to 72 h after month end; charges change until about the 5th).
	DefaultRestatementDays = 5
	// DefaultLeaseTTL is the partition lease duration; it is renewed every third of it. A writer
	// that dies holds the partition at most this long.
	DefaultLeaseTTL = 60 * time.Second
)

// Store is what the exporter needs from a store (store.Local and store.Blob).
type Store interface {
	Put(ctx context.Context, name string, r io.Reader, o *store.PutOptions) (store.Props, error)
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
	Props(ctx context.Context, name string) (store.Props, error)
	List(ctx context.Context, prefix string, fn func(store.Item) error) error
	Delete(ctx context.Context, name string) error
	Move(ctx context.Context, src, dst string, o *store.PutOptions) error
	AcquireLease(ctx context.Context, name string, ttl time.Duration) (*store.Lease, error)
	StageBlock(ctx context.Context, name string, n int, data []byte) error
	CommitBlocks(ctx context.Context, name string, n int, o *store.PutOptions) (store.Props, error)
}

// Source streams the records of one chunk.
type Source interface {
	// Fetch streams the records of c to h. Records outside c's days are filtered by the caller.
	Fetch(ctx context.Context, c Chunk, h paging.Handler) error
	// Name is the source name recorded in the manifest (usageDetails, costDetails).
	Name() manifest.Source
	// APIVersion is the API version recorded in the manifest.
	APIVersion() string
}

// Partition is one scope × billing period × metric.
type Partition struct {
	Scope  scope.Scope
	Period period.Period
	Metric metric.Metric
}

// Options configure a run. The zero value (or nil) means the documented defaults.
type Options struct {
	Prefix               string // blob name prefix of the output tree (no leading/trailing '/')
	NoGzip               bool   // write .jsonl instead of .jsonl.gz
	GzipLevel            int    // 0 = klauspost default
	PartDays             int    // days per part for new partitions; 0 = DefaultPartDays; -1 = whole period
	Concurrency          int    // chunks in flight; 0 = DefaultConcurrency
	PartitionConcurrency int    // partitions in flight; 0 = DefaultPartitionConcurrency
	RestatementDays      int    // 0 = DefaultRestatementDays
	DropGuard            float64
	NoDropGuard          bool                   // publish whatever the drop (operator override)
	RowKey               bool                   // add a deterministic _rowKey field to each line
	ExecutionType        manifest.ExecutionType // "" = manifest.OnDemand
	LeaseTTL             time.Duration          // partition lease; 0 = DefaultLeaseTTL (Blob Storage accepts 15–60 s)
	// CallsPerMinute is the listing rate of a scope (its rate budget), used to size listings;
	// nil or ≤ 0: unknown, and a partition is listed in one go.
	CallsPerMinute func(scope.Scope) float64
	// ListingTime is how long one listing may take at that rate; 0 = DefaultListingTime.
	ListingTime time.Duration
	Now         func() time.Time
	// Progress, when set, is called after every page and at the end of every partition.
	// It must not block.
	Progress func(Progress)
	// AfterRun, when set, is called once every partition is done (not when ctx ended the run)
	// and may append to Summary.Derived: the FOCUS dataset is rebuilt there from the committed
	// partitions.
	AfterRun func(ctx context.Context, sum *Summary)
	// Pick, when set, chooses the source of each partition, given its live manifest (nil when
	// there is none), and says why (internal/source decides for the "auto" setting). It
	// replaces the per-scope choice given to New; the reason goes to the Result and manifest.
	Pick func(p Partition, live *manifest.Manifest) (src Source, reason string, err error)
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.PartDays == 0 {
		c.PartDays = DefaultPartDays
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PartitionConcurrency <= 0 {
		c.PartitionConcurrency = DefaultPartitionConcurrency
	}
	if c.RestatementDays <= 0 {
		c.RestatementDays = DefaultRestatementDays
	}
	if c.DropGuard <= 0 || c.DropGuard >= 1 {
		c.DropGuard = DefaultDropGuard
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.ExecutionType == "" {
		c.ExecutionType = manifest.OnDemand
	}
	if c.ListingTime <= 0 {
		c.ListingTime = DefaultListingTime
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Progress reports work on a partition.
type Progress struct {
	Partition  Partition
	Pages      int
	Rows       int64
	Bytes      int64
	Chunks     int
	ChunksDone int // listings checkpointed
	Done       bool
	Status     Status
	// Received counts the page body bytes read so far, live (Bytes is known only at the end);
	// PartsSaved and RowsSaved count the checkpointed parts and their rows, which an interrupted
	// run keeps and the next run resumes after.
	Received   int64
	PartsSaved int
	RowsSaved  int64
}

// Status is the outcome of a partition (or of a derived dataset's partition).
type Status string

// Partition outcomes.
const (
	StatusCommitted        = Status(manifest.StatusCommitted) // live partition replaced
	StatusHeld             = Status(manifest.StatusHeld)      // drop guard: previous export kept live, new one kept aside
	StatusBusy      Status = "busy"                           // another writer holds the partition
	StatusFailed    Status = "failed"                         // nothing published; previous export intact
)

// Result is the outcome of one partition.
type Result struct {
	Partition Partition       `json:"-"`
	Scope     string          `json:"scope"`
	Period    string          `json:"billingPeriod"`
	Metric    metric.Metric   `json:"metric"`
	Source    manifest.Source `json:"source,omitempty"`       // the source that exported (or tried) the partition
	Reason    string          `json:"sourceReason,omitempty"` // why that source (Options.Pick)
	Status    Status          `json:"status"`
	RunID     string          `json:"runId,omitempty"`
	Rows      int64           `json:"rows"`
	Bytes     int64           `json:"bytes"`
	Pages     int             `json:"pages"`
	Parts     int             `json:"parts"`
	Resumed   bool            `json:"resumed"`
	Seconds   float64         `json:"seconds"`
	Manifest  string          `json:"manifest,omitempty"`
	Error     string          `json:"error,omitempty"`
	Err       error           `json:"-"`

	subs []string // subscriptions seen, for overlap detection
}

// Derived is the outcome of building one partition of a dataset derived from committed
// partitions (the FOCUS dataset, see Options.AfterRun).
type Derived struct {
	Dataset  string `json:"dataset"`
	Scope    string `json:"scope"`
	Period   string `json:"billingPeriod"`
	Status   Status `json:"status"` // committed | upToDate | waiting | busy | failed
	RunID    string `json:"runId,omitempty"`
	Rows     int64  `json:"rows"`
	Manifest string `json:"manifest,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Summary is the outcome of a run.
type Summary struct {
	Partitions []Result  `json:"partitions"`
	Derived    []Derived `json:"derived,omitempty"`
	Overlaps   []Overlap `json:"overlaps,omitempty"`
	Rows       int64     `json:"rows"`
	Bytes      int64     `json:"bytes"`
	Seconds    float64   `json:"seconds"`
}

// Failed counts the partitions that failed, derived ones (a FOCUS build) included.
func (s *Summary) Failed() int {
	n := 0
	for _, r := range s.Partitions {
		if r.Status == StatusFailed {
			n++
		}
	}
	for _, d := range s.Derived {
		if d.Status == StatusFailed {
			n++
		}
	}
	return n
}

// Err joins the errors of the failed partitions, derived ones included, or returns nil.
func (s *Summary) Err() error {
	var errs []error
	for _, r := range s.Partitions {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s %s %s: %w", r.Scope, r.Period, r.Metric, r.Err))
		}
	}
	for _, d := range s.Derived {
		if d.Status == StatusFailed {
			errs = append(errs, fmt.Errorf("%s %s dataset=%s: %s", d.Scope, d.Period, d.Dataset, d.Error))
		}
	}
	return errors.Join(errs...)
}

// Exporter runs exports against one store.
type Exporter struct {
	st      Store
	sources func(scope.Scope) (Source, error)
	opts    Options
}

// New returns an Exporter. sources picks the source of a scope (usageDetails or costDetails).
func New(st Store, sources func(scope.Scope) (Source, error), o *Options) *Exporter {
	return &Exporter{st: st, sources: sources, opts: o.withDefaults()}
}

// Run exports every partition and returns one Result per partition. A partition that fails
// leaves its previous export intact; the others go on. The returned error is non-nil only when
// ctx ended the run; partition failures are in the Summary (Summary.Err).
func (e *Exporter) Run(ctx context.Context, parts []Partition) (*Summary, error) {
	start := time.Now()
	sum := &Summary{Partitions: make([]Result, len(parts))}
	// Chunk slots are shared by the whole run, and each partition takes at most its fair share
	// of them, so one partition's many days cannot starve the others' scopes (each scope has its
	// own rate budget, so spreading the slots over scopes is what keeps every budget busy).
	chunkSlots := &slots{shared: make(chan struct{}, e.opts.Concurrency)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.PartitionConcurrency)
	var mu sync.Mutex
	periods := &periodCache{subs: map[string]*periodList{}}
	for i, p := range parts {
		g.Go(func() error {
			r := e.partition(gctx, p, chunkSlots, periods)
			mu.Lock()
			sum.Partitions[i] = r
			sum.Rows += r.Rows
			sum.Bytes += r.Bytes
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	sum.Overlaps = overlaps(sum.Partitions)
	for _, o := range sum.Overlaps {
		zerolog.Ctx(ctx).Warn().Str("scope_a", o.ScopeA).Str("scope_b", o.ScopeB).Str("period", o.Period).
			Str("metric", string(o.Metric)).Int("shared_subscriptions", o.SharedSubscriptions).Str("example", o.Example).
			Msg("overlapping scopes: both exports contain the same subscriptions and will double-count in a lake")
	}
	if e.opts.AfterRun != nil && ctx.Err() == nil {
		e.opts.AfterRun(ctx, sum)
	}
	sum.Seconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("export run: %w", err)
	}
	return sum, nil
}

// slots bound the listings in flight across the run.
type slots struct {
	shared chan struct{}
}

func (e *Exporter) partition(ctx context.Context, p Partition, sem *slots, periods *periodCache) Result {
	start := time.Now()
	log := zerolog.Ctx(ctx).With().Str("scope", p.Scope.String()).Str("period", p.Period.String()).
		Str("metric", string(p.Metric)).Logger()
	ctx = log.WithContext(ctx)
	res := Result{Partition: p, Scope: p.Scope.String(), Period: p.Period.String(), Metric: p.Metric}
	var src Source
	var err error
	if e.opts.Pick == nil {
		src, err = e.sources(p.Scope)
	}
	if err == nil {
		if p, err = periods.resolve(ctx, src, p); err == nil && p.Period.String() != res.Period {
			log = log.With().Str("billing_period", p.Period.String()).Logger()
			ctx = log.WithContext(ctx)
			log.Info().Str("first_day", p.Period.Start().Format(time.DateOnly)).
				Str("last_day", p.Period.End().AddDate(0, 0, -1).Format(time.DateOnly)).
				Msg("pay-as-you-go subscription: exporting its own billing period")
			res.Partition, res.Period = p, p.Period.String()
		}
	}
	if err == nil {
		err = e.runPartition(ctx, p, src, sem, &res)
	}
	res.Seconds = time.Since(start).Seconds()
	switch {
	case err == nil:
	case errors.Is(err, store.ErrLeased):
		res.Status, res.Error = StatusBusy, "already running: another writer holds this partition"
	default:
		res.Status, res.Err, res.Error = StatusFailed, err, err.Error()
	}
	ev := log.Info()
	switch {
	case res.Status == StatusFailed && ctx.Err() != nil:
		// Shutdown or Ctrl-C: the finished chunks are checkpointed and the next run resumes;
		// nothing is wrong with the partition.
		ev = log.Info().Str("error", err.Error())
	case res.Status == StatusFailed:
		ev = log.Error().Err(err)
	}
	ev.Str("status", string(res.Status)).Str("source", string(res.Source)).Str("source_reason", res.Reason).Str("run_id", res.RunID).Int64("rows", res.Rows).Int64("bytes", res.Bytes).
		Int("pages", res.Pages).Int("parts", res.Parts).Bool("resumed", res.Resumed).
		Float64("seconds", res.Seconds).Msg("partition done")
	if e.opts.Progress != nil {
		e.opts.Progress(Progress{Partition: p, Pages: res.Pages, Rows: res.Rows, Bytes: res.Bytes, Done: true, Status: res.Status})
	}
	return res
}

// Overlap is evidence from the data that two exported scopes share records: the same
// subscriptions appear in both partitions of one period and metric.
type Overlap struct {
	ScopeA              string        `json:"scopeA"`
	ScopeB              string        `json:"scopeB"`
	Period              string        `json:"billingPeriod"`
	Metric              metric.Metric `json:"metric"`
	SharedSubscriptions int           `json:"sharedSubscriptions"`
	Example             string        `json:"example"`
}

// overlaps compares the subscriptions seen by every pair of partitions of the same period and
// metric.
func overlaps(results []Result) []Overlap {
	var out []Overlap
	for i := range results {
		for j := i + 1; j < len(results); j++ {
			a, b := results[i], results[j]
			if a.Period != b.Period || a.Metric != b.Metric || a.Scope == b.Scope || len(a.subs) == 0 || len(b.subs) == 0 {
				continue
			}
			n, example := shared(a.subs, b.subs)
			if n > 0 {
				out = append(out, Overlap{ScopeA: a.Scope, ScopeB: b.Scope, Period: a.Period, Metric: a.Metric,
					SharedSubscriptions: n, Example: example})
			}
		}
	}
	return out
}

// shared counts the subscriptions of b that are also in a, and returns the first of them.
func shared(a, b []string) (n int, example string) {
	set := make(map[string]bool, len(a))
	for _, s := range a {
		set[s] = true
	}
	for _, s := range b {
		if set[s] {
			if n == 0 {
				example = s
			}
			n++
		}
	}
	return n, example
}

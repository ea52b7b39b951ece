package export

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Layout names. The data tree is Hive-style so lake engines get metric, scope and billingPeriod
// columns; the control tree sits beside it under "_control", a name Spark, Hive and Synapse
// skip, and its staged parts end in ".staged" so no "*.jsonl.gz" glob reads them.
const (
	controlDir   = "_control"
	stagedSuffix = ".staged"
	partPrefix   = "part-"
)

// RelPath is the partition folder relative to the prefix: metric=…/scope=…/billingPeriod=….
func (p Partition) RelPath() string {
	return fmt.Sprintf("metric=%s/scope=%s/billingPeriod=%s", p.Metric, p.Scope.Folder(), p.Period)
}

func join(prefix string, elems ...string) string {
	if prefix != "" {
		elems = append([]string{prefix}, elems...)
	}
	return path.Join(elems...)
}

// Dir is the live partition folder.
func (e *Exporter) Dir(p Partition) string { return join(e.opts.Prefix, p.RelPath()) }

// ManifestName is the live manifest blob of p.
func (e *Exporter) ManifestName(p Partition) string {
	return join(e.opts.Prefix, p.RelPath(), "_manifest.json")
}

func (e *Exporter) checkpointName(p Partition) string {
	return join(e.opts.Prefix, controlDir, "checkpoints", p.RelPath(), "checkpoint.json")
}

func (e *Exporter) leaseName(p Partition) string {
	return join(e.opts.Prefix, controlDir, "leases", p.RelPath(), "lease")
}

func (e *Exporter) runDir(runID string, p Partition) string {
	return join(e.opts.Prefix, controlDir, "runs", runID, p.RelPath())
}

func (e *Exporter) ext() string {
	if e.opts.NoGzip {
		return ".jsonl"
	}
	return ".jsonl.gz"
}

// Chunk is one listing of a partition: a range of whole usage days (or the whole period)
// fetched as one query, nextLink followed to the end. Its records are written into the parts
// that own their days (partLayout); a part is a range of days too, and a listing covers whole
// parts.
type Chunk struct {
	Partition
	From, To time.Time // inclusive usage days (UTC midnight)
	Whole    bool      // the chunk is the whole period
	// ByPeriod is set when the chunk is fetched through the billing-period sub-scope rather than
	// a date range: its records belong to the period by definition, whatever their dates.
	ByPeriod bool
}

// PartName is the part's file name: part-YYYYMMDD-YYYYMMDD.jsonl[.gz].
func (c Chunk) PartName(ext string) string {
	return partPrefix + c.From.Format("20060102") + "-" + c.To.Format("20060102") + ext
}

// Key identifies the chunk inside its partition.
func (c Chunk) Key() string { return c.From.Format("20060102") + "-" + c.To.Format("20060102") }

// Contains reports whether the usage day d is in the chunk.
func (c Chunk) Contains(d time.Time) bool { return !d.Before(c.From) && !d.After(c.To) }

// Chunks splits p into chunks of partDays days (≤ 0: one chunk for the whole period). Days after
// lastDay (today, for an open period) are left out: they have no data yet.
func Chunks(p Partition, partDays int, lastDay time.Time) []Chunk {
	first := p.Period.Start()
	last := p.Period.End().AddDate(0, 0, -1)
	if partDays <= 0 || partDays >= p.Period.Days() {
		return []Chunk{{Partition: p, From: first, To: last, Whole: true}}
	}
	var out []Chunk
	for d := first; !d.After(last); d = d.AddDate(0, 0, partDays) {
		if d.After(lastDay) {
			break
		}
		to := d.AddDate(0, 0, partDays-1)
		if to.After(last) {
			to = last
		}
		out = append(out, Chunk{Partition: p, From: d, To: to})
	}
	return out
}

// parseKey reads a part's key back: "20240101-20240107".
func parseKey(key string) (from, to time.Time, err error) {
	a, b, ok := strings.Cut(key, "-")
	if !ok {
		return from, to, fmt.Errorf("bad part key %q", key)
	}
	if from, err = time.Parse("20060102", a); err != nil {
		return
	}
	to, err = time.Parse("20060102", b)
	return
}

// partLayout maps a usage day to its part: parts of partDays days from the period's first day
// (≤ 0: one part for the whole period). A day outside the period (a billing-period listing's
// record dated before or after the calendar month) gets a part of its own day.
type partLayout struct {
	first, last time.Time // the period's first and last day
	partDays    int
}

func layoutOf(p Partition, partDays int) partLayout {
	return partLayout{first: p.Period.Start(), last: p.Period.End().AddDate(0, 0, -1), partDays: partDays}
}

// whole reports whether the period is one part.
func (l partLayout) whole() bool {
	return l.partDays <= 0 || l.partDays >= int(l.last.Sub(l.first).Hours()/24)+1
}

func (l partLayout) contains(d time.Time) bool { return !d.Before(l.first) && !d.After(l.last) }

// keyOf returns the key of the part that owns day d.
func (l partLayout) keyOf(d time.Time) string {
	if l.whole() {
		return l.first.Format("20060102") + "-" + l.last.Format("20060102")
	}
	if !l.contains(d) {
		return d.Format("20060102") + "-" + d.Format("20060102")
	}
	i := int(d.Sub(l.first).Hours()/24) / l.partDays
	from := l.first.AddDate(0, 0, i*l.partDays)
	to := from.AddDate(0, 0, l.partDays-1)
	if to.After(l.last) {
		to = l.last
	}
	return from.Format("20060102") + "-" + to.Format("20060102")
}

// Package status reads what has been exported from the output, for `handler status` and GET
// /api/partitions.
package status

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// Partition is one partition of `handler status` and GET /api/partitions: what is live,
// and what waits in the control tree.
type Partition struct {
	Scope         string        `json:"scope"`
	Metric        metric.Metric `json:"metric"`
	BillingPeriod string        `json:"billingPeriod"`
	// PeriodStatus is the period's status now (open, closing, final); ExportedAs its status when
	// the live export was written.
	PeriodStatus period.Status   `json:"periodStatus"`
	ExportedAs   period.Status   `json:"exportedAs,omitempty"`
	Committed    bool            `json:"committed"`
	Source       manifest.Source `json:"source,omitempty"`
	Rows         int64           `json:"rows"`
	Bytes        int64           `json:"bytes"`
	// Totals are the billing-currency cost sums (currency → exact decimal).
	Totals     map[string]string `json:"totals,omitempty"`
	LastRun    *Run              `json:"lastRun,omitempty"`
	Held       []Held            `json:"held,omitempty"`
	Unfinished bool              `json:"unfinished,omitempty"` // a checkpoint waits: the next run resumes it
	Manifest   string            `json:"manifest,omitempty"`
}

type Run struct {
	RunID         string                 `json:"runId"`
	ExecutionType manifest.ExecutionType `json:"executionType"`
	FinishedTime  time.Time              `json:"finishedTime"`
	AgeSeconds    float64                `json:"ageSeconds"`
}

type Held struct {
	RunID       string            `json:"runId"`
	Rows        int64             `json:"rows"`
	Totals      map[string]string `json:"totals,omitempty"`
	HeldTime    time.Time         `json:"heldTime"`
	ExpiresTime time.Time         `json:"expiresTime"`
	Manifest    string            `json:"manifest"`
}

// Report is the whole answer.
type Report struct {
	Partitions []Partition `json:"partitions"`
	Count      int         `json:"count"`
	Rows       int64       `json:"rows"`
	Held       int         `json:"held"`
	Unfinished int         `json:"unfinished"`
}

// Filter selects partitions; empty fields select all.
type Filter struct {
	Scopes  []scope.Scope
	Periods map[string]bool
	Metrics map[metric.Metric]bool
}

func (f Filter) match(sc, p string, m metric.Metric) bool {
	if len(f.Periods) > 0 && !f.Periods[p] {
		return false
	}
	if len(f.Metrics) > 0 && !f.Metrics[m] {
		return false
	}
	if len(f.Scopes) == 0 {
		return true
	}
	s, err := scope.Parse(sc)
	if err != nil {
		return false
	}
	for _, want := range f.Scopes {
		if want.Equal(s) {
			return true
		}
	}
	return false
}

// billingTotals sums a manifest's totals over the billing-currency cost fields (costInUSD is a
// second, USD view of modern records).
func billingTotals(t map[string]map[string]string) map[string]string {
	out := map[string]string{}
	for field, byCur := range t {
		if field == record.FieldCostInUSD {
			continue
		}
		for cur, v := range byCur {
			out[cur] = v // one cost field per record kind: a partition has one per currency
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Collect reads the live manifests, the held runs and the checkpoints under the prefix.
func Collect(ctx context.Context, st export.Store, e *export.Exporter, prefix string, restatementDays int, f Filter, now time.Time) (*Report, error) {
	c := &collector{byPath: map[string]*Partition{}, f: f, now: now, restatementDays: restatementDays}
	if prefix != "" {
		c.root = prefix + "/"
	}
	manifests, checkpoints, err := c.list(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := c.addManifests(ctx, st, manifests); err != nil {
		return nil, err
	}
	folders, err := e.RunFolders(ctx)
	if err != nil {
		return nil, err
	}
	c.addHeld(folders)
	c.addUnfinished(checkpoints)
	return c.report(), nil
}

// collector gathers the partitions of one Collect by their path below the output root.
type collector struct {
	root            string // the output prefix with its trailing '/', or ""
	byPath          map[string]*Partition
	f               Filter
	now             time.Time
	restatementDays int
}

// get returns the partition of relPath, adding it on first use.
func (c *collector) get(relPath, sc, p string, m metric.Metric) *Partition {
	ps := c.byPath[relPath]
	if ps == nil {
		ps = &Partition{Scope: sc, Metric: m, BillingPeriod: p}
		if per, err := period.Parse(p); err == nil {
			ps.PeriodStatus = per.StatusAt(c.now, c.restatementDays)
		}
		c.byPath[relPath] = ps
	}
	return ps
}

// list returns the names of the live manifests in the output and the partition paths of the
// checkpoints (unfinished runs).
func (c *collector) list(ctx context.Context, st export.Store) (manifests, checkpoints []string, err error) {
	err = st.List(ctx, c.root, func(it store.Item) error {
		rel := strings.TrimPrefix(it.Name, c.root)
		switch {
		case strings.HasPrefix(rel, "_control/checkpoints/") && path.Base(rel) == "checkpoint.json":
			checkpoints = append(checkpoints, path.Dir(strings.TrimPrefix(rel, "_control/checkpoints/")))
		case !strings.HasPrefix(rel, "_control/") && path.Base(rel) == manifest.FileName:
			manifests = append(manifests, it.Name)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the output: %w", err)
	}
	return manifests, checkpoints, nil
}

// addManifests adds the committed partitions the filter takes.
func (c *collector) addManifests(ctx context.Context, st export.Store, names []string) error {
	for _, name := range names {
		m, err := readManifestFile(ctx, st, name)
		if err != nil {
			return err
		}
		if !c.f.match(m.Scope, m.BillingPeriod, m.Metric) {
			continue
		}
		rel := strings.TrimPrefix(path.Dir(name), c.root)
		ps := c.get(rel, m.Scope, m.BillingPeriod, m.Metric)
		ps.Committed = true
		ps.ExportedAs, ps.Source, ps.Rows, ps.Bytes = m.PeriodStatus, m.Source, m.DataRowCount, m.ByteCount
		ps.Totals = billingTotals(m.Totals)
		ps.Manifest = name
		ps.LastRun = &Run{RunID: m.RunInfo.RunID, ExecutionType: m.RunInfo.ExecutionType,
			FinishedTime: m.RunInfo.FinishedTime, AgeSeconds: roundSeconds(c.now.Sub(m.RunInfo.FinishedTime))}
	}
	return nil
}

// addHeld adds the runs the drop guard held back.
func (c *collector) addHeld(folders []export.RunFolder) {
	for _, fo := range folders {
		if fo.Held == nil || !c.f.match(fo.Held.Scope, fo.Held.BillingPeriod, fo.Held.Metric) {
			continue
		}
		ps := c.get(fo.RelPath, fo.Held.Scope, fo.Held.BillingPeriod, fo.Held.Metric)
		ps.Held = append(ps.Held, Held{RunID: fo.RunID, Rows: fo.Held.DataRowCount, Totals: billingTotals(fo.Held.Totals),
			HeldTime: fo.Newest.UTC(), ExpiresTime: fo.Newest.Add(export.DefaultHeldRetention).UTC(), Manifest: path.Join(fo.Dir, manifest.FileName)})
	}
}

// addUnfinished marks the partitions with a checkpoint unfinished.
func (c *collector) addUnfinished(checkpoints []string) {
	f := c.f
	for _, rel := range checkpoints {
		if ps := c.byPath[rel]; ps != nil {
			ps.Unfinished = true
			continue
		}
		// An unfinished first run: the partition has no manifest yet; its names come from the
		// folder (scope=… is the escaped folder name, not the scope path).
		m, sc, p, ok := splitRelPath(rel)
		if !ok || (len(f.Scopes) > 0) || (len(f.Periods) > 0 && !f.Periods[p]) || (len(f.Metrics) > 0 && !f.Metrics[m]) {
			continue
		}
		c.get(rel, sc, p, m).Unfinished = true
	}
}

// report lists the partitions by scope, metric and billing period, with the totals.
func (c *collector) report() *Report {
	rep := &Report{Partitions: []Partition{}}
	for _, ps := range c.byPath {
		rep.Partitions = append(rep.Partitions, *ps)
		rep.Rows += ps.Rows
		rep.Held += len(ps.Held)
		if ps.Unfinished {
			rep.Unfinished++
		}
	}
	sort.Slice(rep.Partitions, func(i, j int) bool {
		a, b := rep.Partitions[i], rep.Partitions[j]
		if a.Scope != b.Scope {
			return a.Scope < b.Scope
		}
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.BillingPeriod < b.BillingPeriod
	})
	rep.Count = len(rep.Partitions)
	return rep
}

func splitRelPath(rel string) (m metric.Metric, sc, p string, ok bool) {
	segs := strings.Split(rel, "/")
	if len(segs) != 3 {
		return "", "", "", false
	}
	ms, ok1 := strings.CutPrefix(segs[0], "metric=")
	sc, ok2 := strings.CutPrefix(segs[1], "scope=")
	p, ok3 := strings.CutPrefix(segs[2], "billingPeriod=")
	if u, err := scope.UnescapePathName(sc); err == nil {
		sc = u
	}
	return metric.Metric(ms), sc, p, ok1 && ok2 && ok3
}

func roundSeconds(d time.Duration) float64 { return float64(d.Round(time.Second) / time.Second) }

func readManifestFile(ctx context.Context, st export.Store, name string) (*manifest.Manifest, error) {
	b, err := store.ReadSmall(ctx, st, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

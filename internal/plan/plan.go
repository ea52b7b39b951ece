// Package plan says what an export run would do before it runs, without calling a billing API.
package plan

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// Call-count rules. usageDetails pages hold up to RowsPerPage rows, and a partition costs its
// pages plus one listing call; a Cost Details report is one POST and a few polls, its files come
// from Blob Storage outside the ARM budget.
const (
	RowsPerPage      = 1000
	CostDetailsPolls = 3 // polls of a report before it is ready (the service builds one in minutes)
	// unknownFloor is the estimate with no manifest to go by: one page and the listing call.
	unknownFloor = 2
)

// SourceChoice is the source chosen for a partition and why.
type SourceChoice struct {
	Source manifest.Source `json:"source"`
	Reason string          `json:"reason"`
}

// SourceFunc chooses the source of a partition; prev is its live manifest or nil. It must not
// call any API (planning calls none).
type SourceFunc func(p export.Partition, prev *manifest.Manifest) SourceChoice

// Calls is the expected number of ARM calls of one partition.
type Calls struct {
	Calls int `json:"calls"`
	// Known says the count comes from this partition's own previous manifest; otherwise it is an
	// estimate (Basis says from what).
	Known bool   `json:"known"`
	Basis string `json:"basis"`
}

// EstimateCalls returns the expected ARM calls of a partition exported from source, given the
// rows of its previous export (prev, nil when there is none) and, when there is none, rows of a
// comparable partition (same scope and metric, nearest period; nil when none) for the estimate.
func EstimateCalls(source manifest.Source, prev, similar *manifest.Manifest) Calls {
	if source == manifest.SourceCostDetails {
		return Calls{Calls: 1 + CostDetailsPolls, Known: true,
			Basis: fmt.Sprintf("Cost Details: 1 POST + about %d polls; files downloaded outside the ARM budget", CostDetailsPolls)}
	}
	pages := func(rows int64) int { return int(math.Ceil(float64(rows)/RowsPerPage)) + 1 }
	switch {
	case prev != nil:
		return Calls{Calls: pages(prev.DataRowCount), Known: true,
			Basis: fmt.Sprintf("⌈%d rows / %d⌉ + 1, rows from the previous export (run %s)", prev.DataRowCount, RowsPerPage, prev.RunInfo.RunID)}
	case similar != nil:
		return Calls{Calls: pages(similar.DataRowCount), Known: false,
			Basis: fmt.Sprintf("unknown: no previous export; estimated from %s (%d rows)", similar.BillingPeriod, similar.DataRowCount)}
	}
	return Calls{Calls: unknownFloor, Known: false, Basis: "unknown: nothing exported for this scope and metric yet; at least 2 (one page and the listing call)"}
}

// Budget is the configured call budget in calls per minute.
type Budget struct {
	PerScope  func(scope.Scope) float64
	PerTenant float64
}

// Partition is one partition of a plan.
type Partition struct {
	Scope         string        `json:"scope"`
	Metric        metric.Metric `json:"metric"`
	BillingPeriod string        `json:"billingPeriod"`
	PeriodStatus  period.Status `json:"periodStatus"`
	Source        SourceChoice  `json:"source"`
	// Action is export (nothing committed), replace (a committed export is re-exported; the
	// drop guard may hold the new one) or resume (an unfinished run continues).
	Action    string `json:"action"`
	Committed *Live  `json:"committed,omitempty"`
	HeldRuns  int    `json:"heldRuns,omitempty"`
	Calls     Calls  `json:"calls"`
	partition export.Partition
}

// Live describes the committed export a run would replace.
type Live struct {
	RunID        string          `json:"runId"`
	Rows         int64           `json:"rows"`
	FinishedTime time.Time       `json:"finishedTime"`
	Source       manifest.Source `json:"source"`
}

// ScopeTime is the calls and time of one scope.
type ScopeTime struct {
	Scope          string  `json:"scope"`
	Kind           string  `json:"kind"`
	Calls          int     `json:"calls"`
	CallsPerMinute float64 `json:"callsPerMinute"`
	Minutes        float64 `json:"minutes"`
}

// Plan is what a run would do.
type Plan struct {
	Partitions []Partition `json:"partitions"`
	Scopes     []ScopeTime `json:"scopes"`
	Calls      int         `json:"calls"`
	Unknown    int         `json:"unknownPartitions"` // partitions whose calls are estimates
	Tenant     float64     `json:"tenantCallsPerMinute"`
	Minutes    float64     `json:"minutes"` // the slowest scope, or the tenant budget if it binds
	Note       string      `json:"note"`
}

// Reader is what planning reads: the live manifest, the unfinished run and the held runs of a
// partition. The exporter's store gives all three.
type Reader interface {
	LiveManifest(ctx context.Context, p export.Partition) (*manifest.Manifest, error)
	Unfinished(ctx context.Context, p export.Partition) (bool, error)
	HeldRuns(ctx context.Context, p export.Partition) (int, error)
}

// Make plans the partitions. now dates the period statuses.
func Make(ctx context.Context, r Reader, parts []export.Partition, choose SourceFunc, b Budget, now time.Time, restatementDays int) (*Plan, error) {
	if choose == nil || b.PerScope == nil || b.PerTenant <= 0 {
		return nil, errors.New("plan: no source function or budget")
	}
	pl := &Plan{Partitions: []Partition{}, Tenant: b.PerTenant}
	lives := make([]*manifest.Manifest, len(parts))
	for i, p := range parts {
		m, err := r.LiveManifest(ctx, p)
		if err != nil {
			return nil, err
		}
		lives[i] = m
	}
	byScope := map[string]*ScopeTime{}
	var order []string
	for i, p := range parts {
		live := lives[i]
		pp := Partition{Scope: p.Scope.String(), Metric: p.Metric, BillingPeriod: p.Period.String(),
			PeriodStatus: p.Period.StatusAt(now, restatementDays), Action: "export", partition: p}
		pp.Source = choose(p, live)
		if live != nil {
			pp.Action = "replace"
			pp.Committed = &Live{RunID: live.RunInfo.RunID, Rows: live.DataRowCount, FinishedTime: live.RunInfo.FinishedTime, Source: live.Source}
		}
		unfinished, err := r.Unfinished(ctx, p)
		if err != nil {
			return nil, err
		}
		if unfinished {
			pp.Action = "resume"
		}
		if pp.HeldRuns, err = r.HeldRuns(ctx, p); err != nil {
			return nil, err
		}
		pp.Calls = EstimateCalls(pp.Source.Source, live, nearest(parts, lives, i))
		if !pp.Calls.Known {
			pl.Unknown++
		}
		pl.Calls += pp.Calls.Calls
		st := byScope[pp.Scope]
		if st == nil {
			st = &ScopeTime{Scope: pp.Scope, Kind: string(p.Scope.Kind), CallsPerMinute: b.PerScope(p.Scope)}
			byScope[pp.Scope] = st
			order = append(order, pp.Scope)
		}
		st.Calls += pp.Calls.Calls
		pl.Partitions = append(pl.Partitions, pp)
	}
	for _, s := range order {
		st := byScope[s]
		st.Minutes = round1(float64(st.Calls) / st.CallsPerMinute)
		pl.Minutes = math.Max(pl.Minutes, st.Minutes)
		pl.Scopes = append(pl.Scopes, *st)
	}
	pl.Minutes = round1(math.Max(pl.Minutes, float64(pl.Calls)/b.PerTenant))
	sort.SliceStable(pl.Scopes, func(i, j int) bool { return pl.Scopes[i].Minutes > pl.Scopes[j].Minutes })
	pl.Note = "scopes run side by side, each within its own budget and all within the tenant's; retries and 429 pauses come on top"
	return pl, nil
}

// nearest returns the live manifest of the partition of the same scope and metric whose period
// is closest to parts[i]'s, or nil.
func nearest(parts []export.Partition, lives []*manifest.Manifest, i int) *manifest.Manifest {
	var best *manifest.Manifest
	bestD := math.MaxInt
	for j, p := range parts {
		if j == i || lives[j] == nil || !p.Scope.Equal(parts[i].Scope) || p.Metric != parts[i].Metric {
			continue
		}
		if d := absMonths(p.Period, parts[i].Period); d < bestD {
			best, bestD = lives[j], d
		}
	}
	return best
}

func absMonths(a, b period.Period) int {
	d := (a.Year*12 + int(a.Month)) - (b.Year*12 + int(b.Month))
	if d < 0 {
		return -d
	}
	return d
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

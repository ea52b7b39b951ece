package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/testutil"
)

// Body-fault rates: every faultEvery-th request of the faulted kind (usageDetails pages, or
// Cost Details report blobs) has its body broken, from the first request of the run.
const (
	faultEvery = 7
	// bodyIdleTimeout is the client's idle watchdog in these runs: a stalled body must be
	// given up on (and retried) long before the sandbox's stall ends on its own.
	bodyIdleTimeout = 500 * time.Millisecond
	// bodyStallMax bounds the sandbox's stall; far above bodyIdleTimeout.
	bodyStallMax = 30 * time.Second
	// bodyRowsPerBlob makes a month's report many blobs, so every 7th blob request is a fault
	// several times over.
	bodyRowsPerBlob = 20
)

// bodyFaults are the body-fault kinds, with the names `make test-faults` prints.
var bodyFaults = []struct {
	name  string
	fault sandbox.Fault
}{
	{"body-reset", sandbox.ResetMidBody},
	{"body-truncated", sandbox.TruncatedJSON},
	{"body-stalled", sandbox.StalledBody},
	{"body-mix", sandbox.BodyMix},
}

// TestBodyFaultsEveryNth breaks the body of every 7th request, with each body-fault kind and
// with all kinds in turn, and asserts that one export run ends exact: for usageDetails (every
// 7th page) and for Cost Details (every 7th report blob download). A broken page is retried
// from the same link by azcore and none of its records is delivered twice; a broken blob is
// resumed with a Range request from the byte where it stopped. Exact means: committed, the
// rows, per-currency sums and (usageDetails) the record-set hash of the sandbox's ground
// truth, verify clean; for Cost Details, also the same set of lines as a fault-free export.
func TestBodyFaultsEveryNth(t *testing.T) {
	gate(t)
	for _, bf := range bodyFaults {
		t.Run(bf.name, func(t *testing.T) {
			t.Parallel()
			var details []string
			ok := true
			for _, src := range []string{string(manifest.SourceUsageDetails), string(manifest.SourceCostDetails)} {
				d, err := bodyFaultRun(t, bf.fault, src)
				if err != nil {
					ok = false
					details = append(details, fmt.Sprintf("%s: %v", src, err))
					continue
				}
				details = append(details, src+": "+d)
			}
			verdict := "exact in one run"
			if !ok {
				verdict = "NOT exact in one run"
			}
			report(t, kindFault, ok, "%s every %dth request: %s (%s)", bf.name, faultEvery, verdict, strings.Join(details, "; "))
		})
	}
}

// bodyFaultRun exports the previous month of the department from src with fault on every 7th
// request of its kind and returns what the run did, or why it is not exact.
func bodyFaultRun(t *testing.T, fault sandbox.Fault, src string) (string, error) {
	ctx := context.Background()
	sb := startSandbox(t, sandbox.Options{
		RecordsPerDay: matrixRecordsPerDay, PageSize: matrixPageSize, StallMax: bodyStallMax,
		RowsPerBlob: bodyRowsPerBlob, PollInterval: 100 * time.Millisecond,
	})
	p, truth := departmentPartition(t, sb)
	target := sandbox.TargetUsage
	if src == string(manifest.SourceCostDetails) {
		target = sandbox.TargetBlob
	}
	var baseline string
	if src == string(manifest.SourceCostDetails) {
		// The lines of a fault-free Cost Details export, to compare the faulted one with.
		st := newLocal(t)
		e := bodyExporter(t, sb, st, src)
		if sum, err := e.Run(ctx, []export.Partition{p}); err != nil || sum.Partitions[0].Status != export.StatusCommitted {
			t.Fatalf("fault-free cost details export: %v %+v", err, sum.Partitions)
		}
		s, err := readPartition(ctx, st, e.ManifestName(p))
		if err != nil {
			t.Fatal(err)
		}
		baseline = s.hash
	}

	before := sb.Stats()
	sb.Faults().Every(fault, target, faultEvery)
	st := newLocal(t)
	e := bodyExporter(t, sb, st, src)
	rctx, cancel := context.WithTimeout(ctx, runTimeout)
	sum, err := e.Run(rctx, []export.Partition{p})
	cancel()
	sb.Faults().Clear()
	if err != nil {
		return "", fmt.Errorf("run: %w", err)
	}
	after := sb.Stats()
	fired := 0
	for k, n := range after.Faults {
		fired += n - before.Faults[k]
	}
	requests := after.Pages - before.Pages
	kind := "pages"
	if src == string(manifest.SourceCostDetails) {
		requests, kind = after.Blobs-before.Blobs, "blob downloads"
	}
	r := sum.Partitions[0]
	switch {
	case fired == 0:
		return "", fmt.Errorf("the fault never fired")
	case r.Status != export.StatusCommitted:
		return "", fmt.Errorf("status %s, want committed in one run: %s", r.Status, r.Error)
	case r.Resumed:
		return "", fmt.Errorf("the run resumed a checkpoint; want one run")
	}
	if src == string(manifest.SourceUsageDetails) {
		rows, err := checkExact(ctx, st, e.ManifestName(p), truth)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d rows = ground truth, fault fired %d× in %d %s", rows, fired, requests, kind), nil
	}
	s, err := readPartition(ctx, st, e.ManifestName(p))
	if err != nil {
		return "", err
	}
	got := costTotals(s.manifest)
	switch {
	case len(s.lines) != truth.Rows:
		return "", fmt.Errorf("%d lines, ground truth %d rows", len(s.lines), truth.Rows)
	case s.hash != baseline:
		return "", fmt.Errorf("the lines differ from a fault-free cost details export")
	case fmt.Sprint(got) != fmt.Sprint(truth.Sums):
		return "", fmt.Errorf("totals %v, ground truth %v", got, truth.Sums)
	}
	return fmt.Sprintf("%d rows = ground truth, lines = a fault-free export's, fault fired %d× in %d %s", len(s.lines), fired, requests, kind), nil
}

// bodyExporter returns an exporter of the whole month in one part from src, with the clients'
// idle watchdog at bodyIdleTimeout.
func bodyExporter(t *testing.T, sb *sandbox.Server, st *store.Local, src string) *export.Exporter {
	t.Helper()
	opts := export.Options{PartDays: 31}
	if src == string(manifest.SourceUsageDetails) {
		return newExporter(t, sb, st, clientOptions{bodyIdleTimeout: bodyIdleTimeout}, opts)
	}
	budget := ratelimit.New(&ratelimit.Options{PerScope: 6000, PerTenant: 12000})
	c, err := costdetails.NewClient(mgmt.StaticToken(sb.Token()), &costdetails.Options{
		Endpoint: sb.URL(), BodyIdleTimeout: bodyIdleTimeout, PollInterval: 10 * time.Millisecond,
		Now: func() time.Time { return fixedNow },
		ClientOptions: policy.ClientOptions{
			Retry:            policy.RetryOptions{RetryDelay: 50 * time.Millisecond},
			PerRetryPolicies: []policy.Policy{budget.Policy()},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Now = func() time.Time { return fixedNow }
	opts.Prefix = "usage"
	return export.New(st, func(scope.Scope) (export.Source, error) { return &export.CostDetails{Client: c}, nil }, &opts)
}

// TestBodyFaultsCLI runs the real binary (`handler export`) against a sandbox that breaks the
// body of every 7th request with each body-fault kind in turn, for both sources, with the
// settings' defaults ($expand included): the command exits 0 after one run and the partition
// is the ground truth (usageDetails: the records as the default $expand serves them, meter
// details filled; Cost Details: rows and totals). The sandbox ends a stall after a second with
// a reset here (the binary's idle watchdog is the default two minutes); TestBodyFaultsEveryNth
// covers the watchdog itself.
func TestBodyFaultsCLI(t *testing.T) {
	gate(t)
	bin := testutil.HandlerBinary(t)
	for _, src := range []string{string(manifest.SourceUsageDetails), string(manifest.SourceCostDetails)} {
		t.Run(src, func(t *testing.T) {
			sb := startSandbox(t, sandbox.Options{
				Now: time.Now, Token: crashToken, RecordsPerDay: matrixRecordsPerDay, PageSize: matrixPageSize,
				StallMax: time.Second, RowsPerBlob: bodyRowsPerBlob, PollInterval: 100 * time.Millisecond,
			})
			target := sandbox.TargetUsage
			if src == string(manifest.SourceCostDetails) {
				target = sandbox.TargetBlob
			}
			sb.Faults().Every(sandbox.BodyMix, target, faultEvery)
			dir := t.TempDir()
			prev := period.Of(time.Now().UTC()).Add(-1)
			env := []string{
				"USAGE_EXPORT_SCOPES=" + departmentScope.String(),
				"USAGE_EXPORT_MANAGEMENT_ENDPOINT=" + sb.URL(),
				"USAGE_EXPORT_TOKEN=" + crashToken,
				"USAGE_EXPORT_OUTPUT_DIR=" + dir,
				"USAGE_EXPORT_RATE_PER_SCOPE=100000",
				"USAGE_EXPORT_RATE_PER_TENANT=100000",
			}
			p := startHandler(t, bin, env, []string{"export", "--periods", prev.String(), "--source", src, "--progress", "none"})
			if !p.wait(runLimit) {
				t.Fatalf("timed out: %s", p.tail(2000))
			}
			fired := 0
			for _, n := range sb.Stats().Faults {
				fired += n
			}
			part := export.Partition{Scope: departmentScope, Period: prev, Metric: "actualcost"}
			st, err := store.NewLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			name := "usage/" + part.RelPath() + "/" + manifest.FileName
			if p.code != 0 || fired == 0 {
				report(t, kindFault, false, "body-mix every %dth request through the CLI (%s): exit %d, %d faults fired: %s", faultEvery, src, p.code, fired, p.tail(1500))
				return
			}
			expand := consumption.DefaultExpand(apiVersion)
			truth, err := sb.GroundTruthExpand(part.Scope, part.Period, string(part.Metric), apiVersion, expand)
			if err != nil {
				t.Fatal(err)
			}
			var problem error
			if src == string(manifest.SourceUsageDetails) {
				_, problem = checkExact(context.Background(), st, name, truth)
				if problem == nil {
					problem = meterDetailsFilled(context.Background(), st, name)
				}
				// The default $expand is what made the records these: without it the API
				// serves other bytes (no meter details), a different record set.
				if bare, err := sb.GroundTruthExpand(part.Scope, part.Period, string(part.Metric), apiVersion, ""); err != nil || bare.Hash == truth.Hash {
					t.Fatalf("the ground truth without $expand has the same hash (%v): the check cannot tell", err)
				}
			} else if s, err := readPartition(context.Background(), st, name); err != nil {
				problem = err
			} else if got := costTotals(s.manifest); len(s.lines) != truth.Rows || fmt.Sprint(got) != fmt.Sprint(truth.Sums) {
				problem = fmt.Errorf("%d lines and totals %v, ground truth %d rows and %v", len(s.lines), got, truth.Rows, truth.Sums)
			}
			if problem != nil {
				report(t, kindFault, false, "body-mix every %dth request through the CLI (%s): exit 0 but not exact: %v", faultEvery, src, problem)
				return
			}
			report(t, kindFault, true, "body-mix every %dth request through the CLI (%s): exit 0, exact in one run (%d rows = ground truth, %d faults fired)",
				faultEvery, src, truth.Rows, fired)
		})
	}
}

// meterDetailsFilled checks that the legacy usage records of a partition (those with a meterId)
// carry their meter details (name and category), as the default $expand asks, and that there
// are such records.
func meterDetailsFilled(ctx context.Context, st *store.Local, manifestName string) error {
	s, err := readPartition(ctx, st, manifestName)
	if err != nil {
		return err
	}
	filled := 0
	for i, line := range s.lines {
		var rec struct {
			Kind       string `json:"kind"`
			Properties struct {
				MeterID      string `json:"meterId"`
				MeterDetails *struct {
					MeterName     string `json:"meterName"`
					MeterCategory string `json:"meterCategory"`
				} `json:"meterDetails"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("line %d: %w", i+1, err)
		}
		if rec.Kind != "legacy" || rec.Properties.MeterID == "" {
			continue
		}
		if md := rec.Properties.MeterDetails; md == nil || md.MeterName == "" || md.MeterCategory == "" {
			return fmt.Errorf("line %d: legacy record with a meterId but no meter details: %.200s", i+1, line)
		}
		filled++
	}
	if filled == 0 {
		return fmt.Errorf("no legacy record with meter details among %d lines", len(s.lines))
	}
	return nil
}

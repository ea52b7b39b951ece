package faults

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

// fixedNow is "today" of the in-process suites: mid-month, so the previous month is final.
var fixedNow = time.Date(2026, 10, 14, 9, 0, 0, 0, time.UTC)

// apiVersion is the usageDetails version the suites export with (the latest).
const apiVersion = sandbox.LatestAPIVersion

// departmentScope is an EA department of the sandbox world: four subscriptions.
var departmentScope = scope.MustParse("/providers/Microsoft.Billing/departments/301001")

// startSandbox starts a sandbox on loopback, stopped by t.Cleanup. Zero Now means fixedNow.
func startSandbox(t *testing.T, o sandbox.Options) *sandbox.Server {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return fixedNow }
	}
	return sandboxtest.Start(t, &o)
}

// clientOptions configure the in-process exporter like the handler's wiring does (azcore
// retries with the package defaults, the shared rate budget as a per-retry policy), except
// that the backoff without a server hint is short so 500/504 retries do not take minutes.
type clientOptions struct {
	retryDelay      time.Duration // 0 = 50 ms
	bodyIdleTimeout time.Duration // 0 = consumption's default
	budget          *ratelimit.Budget
	endpoint        string // "" = the sandbox's URL
}

// newExporter returns an exporter that reads sb through the consumption client and writes st.
func newExporter(t *testing.T, sb *sandbox.Server, st export.Store, co clientOptions, o export.Options) *export.Exporter {
	t.Helper()
	if co.retryDelay == 0 {
		co.retryDelay = 50 * time.Millisecond
	}
	if co.budget == nil {
		// The documented budget is 30 calls a minute per scope; the suites raise it so a
		// month of small pages takes seconds, and keep the policy in the pipeline so 429s and
		// retry hints still pause it.
		co.budget = ratelimit.New(&ratelimit.Options{PerScope: 6000, PerTenant: 12000})
	}
	if co.endpoint == "" {
		co.endpoint = sb.URL()
	}
	client, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: co.endpoint, APIVersion: apiVersion, BodyIdleTimeout: co.bodyIdleTimeout,
		ClientOptions: policy.ClientOptions{
			Retry:            policy.RetryOptions{RetryDelay: co.retryDelay},
			PerRetryPolicies: []policy.Policy{co.budget.Policy()},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// No $expand: the records exactly as the ground truth's Hash covers them.
	src := &export.UsageDetails{Client: client, Version: apiVersion, Expand: consumption.ExpandNone}
	if o.Now == nil {
		o.Now = func() time.Time { return fixedNow }
	}
	if o.Prefix == "" {
		o.Prefix = "usage"
	}
	return export.New(st, func(scope.Scope) (export.Source, error) { return src, nil }, &o)
}

// newLocal returns a Local store in a fresh temporary directory.
func newLocal(t *testing.T) *store.Local {
	t.Helper()
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// snapshot is what a reader of a live partition sees: its manifest and its lines.
type snapshot struct {
	manifest *manifest.Manifest
	lines    [][]byte
	hash     string // the sandbox's Truth.Hash definition over lines
}

// readPartition reads the live manifest of p and every part it lists.
func readPartition(ctx context.Context, st verify.Reader, manifestName string) (*snapshot, error) {
	rc, _, err := st.Get(ctx, manifestName)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, err
	}
	s := &snapshot{manifest: m}
	for _, bl := range m.Blobs {
		lines, err := readPart(ctx, st, bl.BlobName)
		if err != nil {
			return nil, err
		}
		s.lines = append(s.lines, lines...)
	}
	s.hash = recordSetHash(s.lines)
	return s, nil
}

// readPart returns the lines of one gzip part; it fails on any incomplete or corrupt stream.
func readPart(ctx context.Context, st verify.Reader, name string) ([][]byte, error) {
	rc, _, err := st.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("part %s: %w", name, err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("part %s: %w", name, err)
	}
	var out [][]byte
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("part %s: %w", name, err)
	}
	return out, nil
}

// recordSetHash is the order-independent hash of a record set (sandbox.Truth.Hash).
func recordSetHash(lines [][]byte) string {
	sums := make([]string, len(lines))
	for i, l := range lines {
		sums[i] = sandbox.RecordDigest(l)
	}
	return sandbox.HashDigests(sums)
}

// costTotals returns the manifest's totals of the record shape's cost field.
func costTotals(m *manifest.Manifest) map[string]string {
	for _, f := range []string{"cost", "costInBillingCurrency", "pretaxCost"} {
		if v, ok := m.Totals[f]; ok {
			return v
		}
	}
	return map[string]string{}
}

// checkExact compares the live partition with the ground truth: row count (lines and
// manifest), record-set hash, per-currency sums and a clean verify report. It returns the
// number of rows, or an error saying what differs.
func checkExact(ctx context.Context, st verify.Reader, manifestName string, truth sandbox.Truth) (int, error) {
	s, err := readPartition(ctx, st, manifestName)
	if err != nil {
		return 0, err
	}
	var problems []string
	if len(s.lines) != truth.Rows || s.manifest.DataRowCount != int64(truth.Rows) {
		problems = append(problems, fmt.Sprintf("%d lines, manifest %d, ground truth %d", len(s.lines), s.manifest.DataRowCount, truth.Rows))
	}
	if s.hash != truth.Hash {
		problems = append(problems, "record-set hash differs from the ground truth")
	}
	got := costTotals(s.manifest)
	if len(got) != len(truth.Sums) {
		problems = append(problems, fmt.Sprintf("currencies %v, want %v", got, truth.Sums))
	}
	for cur, want := range truth.Sums {
		if got[cur] != want {
			problems = append(problems, fmt.Sprintf("%s total %s, want %s", cur, got[cur], want))
		}
	}
	rep, err := verify.Partition(ctx, st, manifestName)
	switch {
	case err != nil:
		problems = append(problems, "verify: "+err.Error())
	case !rep.OK():
		problems = append(problems, "verify: "+strings.Join(rep.Problems, "; "))
	}
	if len(problems) > 0 {
		return len(s.lines), errors.New(strings.Join(problems, "; "))
	}
	return len(s.lines), nil
}

// departmentPartition is the partition most fault runs export, the department scope's previous
// month of actual cost, with its ground truth.
func departmentPartition(t *testing.T, sb *sandbox.Server) (export.Partition, sandbox.Truth) {
	t.Helper()
	p := export.Partition{Scope: departmentScope, Period: previousMonth(), Metric: "actualcost"}
	truth, err := sb.GroundTruthVersion(p.Scope, p.Period, string(p.Metric), apiVersion)
	if err != nil {
		t.Fatal(err)
	}
	return p, truth
}

// midRun fires an action once, at the first export progress that armed accepts after the
// action is set: a fault injected in the middle of a run.
type midRun struct {
	action atomic.Pointer[func()]
	once   sync.Once
}

// set arms the trigger with f.
func (tr *midRun) set(f func()) { tr.action.Store(&f) }

// progress is an export.Options.Progress that fires the armed action.
func (tr *midRun) progress(pr export.Progress) {
	if f := tr.action.Load(); f != nil && armed(pr) {
		tr.once.Do(*f)
	}
}

// commitFirst runs the clean first export of p and returns the live run and manifest hash that
// a failed run must leave as they are. It fails t when the run does not commit.
func commitFirst(ctx context.Context, t *testing.T, e *export.Exporter, st verify.Reader, p export.Partition) (run, hash string) {
	t.Helper()
	sum, err := e.Run(ctx, []export.Partition{p})
	if err != nil || sum.Partitions[0].Status != export.StatusCommitted {
		t.Fatalf("clean first run: %v %+v", err, sum.Partitions[0])
	}
	run, hash, err = liveState(ctx, st, e.ManifestName(p))
	if err != nil || run == "" {
		t.Fatalf("previous export: %q %v", run, err)
	}
	return run, hash
}

// checkResumed says why r, the run after a failed one, did not resume and commit exactly the
// ground truth, or returns the rows it committed.
func checkResumed(ctx context.Context, st verify.Reader, manifestName string, r export.Result, truth sandbox.Truth) (int, error) {
	if r.Status != export.StatusCommitted || !r.Resumed {
		return 0, fmt.Errorf("next run: status %s resumed %v (%s)", r.Status, r.Resumed, r.Error)
	}
	rows, err := checkExact(ctx, st, manifestName, truth)
	if err != nil {
		return 0, fmt.Errorf("resumed run not exact: %w", err)
	}
	return rows, nil
}

// checkUntouched says how a failed run changed the live partition committed as (prevRun,
// prevHash), or returns nil: the same run and manifest, and the partition still verifies.
func checkUntouched(ctx context.Context, st verify.Reader, manifestName, prevRun, prevHash string) error {
	run, hash, err := liveState(ctx, st, manifestName)
	if err != nil || run != prevRun || hash != prevHash {
		return fmt.Errorf("the failed run changed the live partition (run %s → %s, %v)", prevRun, run, err)
	}
	if rep, err := verify.Partition(ctx, st, manifestName); err != nil || !rep.OK() {
		return fmt.Errorf("previous partition damaged: %v %v", err, rep)
	}
	return nil
}

// liveState identifies the live partition: its run id and record-set hash ("" when none).
func liveState(ctx context.Context, st verify.Reader, manifestName string) (runID, hash string, err error) {
	s, err := readPartition(ctx, st, manifestName)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return s.manifest.RunInfo.RunID, s.hash, nil
}

// previousMonth is the final billing period before fixedNow's.
func previousMonth() period.Period { return period.Of(fixedNow).Add(-1) }

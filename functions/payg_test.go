package functions

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/testutil"
)

// paygNow is three days after the sign-up day of the sandbox's pay-as-you-go subscription
// anchored on the 5th: its period 5 Jan – 4 Feb 2027 (202702-1) is open, 5 Dec – 4 Jan
// (202701-1) is inside its restatement window. The calendar plan would be 202701 alone.
var paygNow = time.Date(2027, 1, 8, 6, 0, 0, 0, time.UTC)

// TestTimerPlansPayAsYouGoPeriods runs the timer and the workers against the sandbox: a
// pay-as-you-go subscription gets its own open period and the previous one inside its
// restatement window (one Billing Periods call per subscription), other scopes keep calendar
// months, and the exported partitions equal the sandbox's ground truth.
func TestTimerPlansPayAsYouGoPeriods(t *testing.T) {
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 3, Now: func() time.Time { return paygNow }})

	// The scopes: both pay-as-you-go subscriptions, a calendar-month subscription and an
	// enrollment account (no Billing Periods call).
	var payg5, payg24, calendarSub, account scope.Scope
	for _, sc := range sb.Scopes() {
		switch sc.Kind {
		case scope.Subscription:
			bp, err := sb.BillingPeriod(sc, "202701-1")
			switch {
			case err != nil && calendarSub.IsZero():
				calendarSub = sc
			case err == nil && bp.Start().Day() == 5:
				payg5 = sc
			case err == nil && bp.Start().Day() == 24:
				payg24 = sc
			}
		case scope.EnrollmentAccount:
			if account.IsZero() {
				account = sc
			}
		}
	}
	if payg5.IsZero() || payg24.IsZero() || calendarSub.IsZero() || account.IsZero() {
		t.Fatalf("sandbox scopes: payg5 %v payg24 %v calendar %v account %v", payg5, payg24, calendarSub, account)
	}
	scopes := []scope.Scope{payg5, payg24, calendarSub, account}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = sc.String()
	}
	cfg := testConfig(t, map[string]string{config.EnvScopes: strings.Join(names, ",")})

	client, err := consumption.NewClient(mgmt.StaticToken(sb.Token()), &consumption.Options{
		Endpoint: sb.URL(), APIVersion: sandbox.LatestAPIVersion,
		ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{RetryDelay: 10 * time.Millisecond, MaxRetryDelay: time.Second, MaxRetries: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// No $expand: the records exactly as the ground truth's Hash covers them.
	src := &export.UsageDetails{Client: client, Version: sandbox.LatestAPIVersion, Expand: consumption.ExpandNone}
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return paygNow }
	ex := export.New(st, func(scope.Scope) (export.Source, error) { return src, nil },
		&export.Options{Prefix: cfg.Prefix, RestatementDays: cfg.RestatementDays, ExecutionType: manifest.Scheduled, Now: now})
	var (
		mu      sync.Mutex
		results []export.Result
	)
	run := func(ctx context.Context, r jobs.Run) (*export.Summary, error) {
		sum, err := ex.Run(ctx, r.Partitions)
		if sum != nil {
			mu.Lock()
			results = append(results, sum.Partitions...)
			mu.Unlock()
		}
		return sum, err
	}
	queue := &memQueue{}
	logs := &testutil.SyncBuffer{}
	s := New(Deps{
		Config: cfg, Logger: zerolog.New(logs), Now: now, Periods: src,
		Jobs: jobs.NewRunner(jobs.Deps{
			Store: jobs.New(st, cfg.Prefix), Queue: queue, Export: run, Allowed: cfg.Allowed,
			Worker: jobs.Worker{Instance: "vm1", Process: "p1"}, Now: now,
			Options: &jobs.Options{FlushInterval: 5 * time.Millisecond},
		}),
	})

	before := sb.Stats().Requests
	rec := invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "i1")
	if rec.Code != http.StatusOK {
		t.Fatalf("timer: status %d: %s", rec.Code, rec.Body)
	}
	if calls := sb.Stats().Requests - before; calls != 3 {
		t.Errorf("the timer made %d billing API calls, want 3 (one Billing Periods call per subscription)", calls)
	}
	items := queue.take()
	planned := map[string][]string{}
	for _, it := range items {
		planned[it.Scope] = append(planned[it.Scope], it.Period)
	}
	want := map[string][]string{
		payg5.String():       {"202701-1", "202702-1"}, // closing, open
		payg24.String():      {"202701-1"},             // 24 Dec – 23 Jan, open; 202612-1 ended 24 Dec: final
		calendarSub.String(): {"202701"},
		account.String():     {"202701"},
	}
	for sc, w := range want {
		if strings.Join(planned[sc], ",") != strings.Join(w, ",") {
			t.Errorf("%s: planned %v, want %v", sc, planned[sc], w)
		}
	}
	if hr := readHostResponse(t, rec); !strings.Contains(strings.Join(hr.Logs, "\n"), payg5.String()+": its own billing periods 202701-1 (2026-12-05..2027-01-04), 202702-1 (2027-01-05..2027-02-04)") {
		t.Errorf("the timer's logs do not name the subscription's own periods:\n%s", strings.Join(hr.Logs, "\n"))
	}

	// The workers export what was planned; each partition equals the ground truth.
	for i, code := range deliver(t, s, items, 1) {
		if code != http.StatusOK {
			t.Fatalf("worker %d (%s %s): status %d", i, items[i].Scope, items[i].Period, code)
		}
	}
	if len(results) != len(items) {
		t.Fatalf("%d partitions exported, want %d", len(results), len(items))
	}
	for _, r := range results {
		if r.Status != export.StatusCommitted {
			t.Fatalf("%s %s: %s %s", r.Scope, r.Period, r.Status, r.Error)
		}
		sc := r.Partition.Scope
		bp := period.Period{}
		if sc.Kind == scope.Subscription {
			if bp, err = sb.BillingPeriod(sc, r.Period); err != nil {
				t.Fatal(err)
			}
		} else if bp, err = period.Parse(r.Period); err != nil {
			t.Fatal(err)
		}
		truth, err := sb.GroundTruth(sc, bp, string(r.Metric))
		if err != nil {
			t.Fatal(err)
		}
		rows, hash := committedRecords(t, st, ex, r.Partition)
		if rows != truth.Rows || hash != truth.Hash || truth.Rows == 0 {
			t.Errorf("%s %s (%s..%s): %d lines, want the ground truth's %d (hash equal: %v)", sc, r.Period,
				bp.Start().Format(time.DateOnly), bp.End().AddDate(0, 0, -1).Format(time.DateOnly), rows, truth.Rows, hash == truth.Hash)
		}
	}
}

// TestTimerFallsBackToCalendarMonths: when a subscription's billing periods cannot be read, the
// timer warns and plans calendar months for it; scopes that are not subscriptions are never
// asked.
func TestTimerFallsBackToCalendarMonths(t *testing.T) {
	lister := &failingLister{}
	s, env, _ := newTestServer(t, func(d *Deps, env *testEnv) { d.Periods = lister })
	rec := invoke(t, s, "/"+TimerFunction, fixture(t, "timer-invocation-request.json"), "i1")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got []string
	for _, it := range env.queue.take() {
		got = append(got, it.Scope+" "+it.Period)
	}
	want := []string{subA + " 202402", subA + " 202403", subB + " 202402", subB + " 202403", eaAcct + " 202402", eaAcct + " 202403"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("partitions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(lister.asked, ",") != subA+","+subB {
		t.Errorf("billing periods asked for %v, want the two subscriptions once each", lister.asked)
	}
	if !strings.Contains(env.logs.String(), `"level":"warn"`) || !strings.Contains(env.logs.String(), "planning calendar months") {
		t.Errorf("no warning logged:\n%s", env.logs)
	}
	hr := readHostResponse(t, rec)
	if !strings.Contains(strings.Join(hr.Logs, "\n"), subA+": cannot read its billing periods") {
		t.Errorf("the timer's logs do not say why calendar months were planned:\n%s", strings.Join(hr.Logs, "\n"))
	}
}

type failingLister struct{ asked []string }

func (f *failingLister) BillingPeriods(_ context.Context, sub scope.Scope) ([]period.Period, error) {
	f.asked = append(f.asked, sub.String())
	return nil, errors.New("listing billing periods: 403 AuthorizationFailed")
}

// committedRecords returns the lines of p's committed export and the ground truth's hash over
// them (sandbox.Truth.Hash).
func committedRecords(t *testing.T, st export.Store, e *export.Exporter, p export.Partition) (int, string) {
	t.Helper()
	ctx := context.Background()
	m, err := e.LiveManifest(ctx, p)
	if err != nil || m == nil {
		t.Fatalf("%s: reading the manifest: %v", p.RelPath(), err)
	}
	var sums []string
	for _, bl := range m.Blobs {
		rc, _, err := st.Get(ctx, bl.BlobName)
		if err != nil {
			t.Fatalf("part %s: %v", bl.BlobName, err)
		}
		var r io.Reader = rc
		if strings.HasSuffix(bl.BlobName, ".gz") {
			zr, err := gzip.NewReader(rc)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			sums = append(sums, sandbox.RecordDigest(sc.Bytes()))
		}
		rc.Close()
	}
	return len(sums), sandbox.HashDigests(sums)
}

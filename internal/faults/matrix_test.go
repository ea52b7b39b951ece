package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/verify"
)

// Fault matrix sizes: a month of a four-subscription department in pages of 5 records, one
// part per day, so an export is about 90 requests and a mid-export fault leaves finished parts
// behind.
const (
	matrixRecordsPerDay = 3
	matrixPageSize      = 5
	// armAfterChunks and armAfterPages: a mid-export fault is armed once this many chunks were
	// checkpointed or this many pages read, whichever comes first (a plan that lists the whole
	// month in one chunk checkpoints few chunks).
	armAfterChunks = 8
	armAfterPages  = 30
	// runTimeout bounds one export run of the matrix.
	runTimeout = 3 * time.Minute
	// stallIdleTimeout is the client's body idle timeout in the stalled-body case.
	stallIdleTimeout = 2 * time.Second
	// stallMax bounds the sandbox's stall, so a client that does not give up fails the case
	// in bounded time (with a reset connection, not an idle timeout).
	stallMax = 20 * time.Second
)

// armed reports whether a run has gone far enough for a mid-export fault.
func armed(pr export.Progress) bool {
	return pr.ChunksDone >= armAfterChunks || pr.Pages >= armAfterPages
}

// outcome is what a fault must lead to.
type outcome int

const (
	// completes: the run retries through the fault and commits exactly the ground truth.
	completes outcome = iota + 1
	// failsCleanly: the run fails with a clear error and the previous export stays live and
	// intact; the next run (fault gone) resumes from the checkpoint and commits exactly.
	failsCleanly
	// passesThrough: the run commits the ground truth plus the injected record, unchanged.
	passesThrough
)

type faultCase struct {
	fault sandbox.Fault
	want  outcome
	// rate (when > 0) injects the fault into that share of requests from the start of the run;
	// otherwise the fault fires once, armed after armAfterChunks finished chunks.
	rate float64
	// errIs and errHas describe the failing run's error (failsCleanly).
	errIs  error
	errHas string
	// throttle: the budget must have seen the 429s and paused.
	throttle bool
}

// TestFaultMatrix injects every fault kind of the API sandbox into an export that replaces a
// committed partition, and asserts the outcome the fault calls for: completes exactly,
// fails cleanly with the previous partition intact and then resumes exactly, or passes an
// unknown record shape through unchanged.
func TestFaultMatrix(t *testing.T) {
	gate(t)
	cases := []faultCase{
		{fault: sandbox.Throttle429Consumption, want: completes, rate: 0.05, throttle: true},
		{fault: sandbox.Throttle429RetryAfter, want: completes, rate: 0.05, throttle: true},
		{fault: sandbox.Unavailable503, want: completes, rate: 0.05},
		{fault: sandbox.Internal500, want: completes, rate: 0.1},
		{fault: sandbox.Gateway504, want: completes, rate: 0.1},
		// Body faults are retried from the same link inside the run (TestBodyFaultsEveryNth
		// puts one on every 7th request).
		{fault: sandbox.ResetMidBody, want: completes},
		{fault: sandbox.TruncatedJSON, want: completes},
		{fault: sandbox.StalledBody, want: completes},
		{fault: sandbox.NextLinkLoop, want: failsCleanly, errIs: consumption.ErrNextLinkLoop, errHas: "nextLink loop"},
		{fault: sandbox.NextLinkForeign, want: failsCleanly, errIs: mgmt.ErrForeignHost, errHas: "not the configured endpoint"},
		{fault: sandbox.TokenExpired401, want: failsCleanly, errIs: &mgmt.APIError{}, errHas: "ExpiredAuthenticationToken"},
		{fault: sandbox.NonJSONError, want: failsCleanly, errIs: &mgmt.APIError{}, errHas: "badly formed"},
		{fault: sandbox.NewRecordShape, want: passesThrough},
	}
	for _, fc := range cases {
		t.Run(string(fc.fault), func(t *testing.T) {
			t.Parallel()
			runFaultCase(t, fc)
		})
	}
}

// foreignCounter listens where the sandbox's foreign nextLink points (127.0.0.2, the sandbox's
// port) and counts every connection: a client that follows the link would send its token here.
type foreignCounter struct {
	ln    net.Listener
	conns atomic.Int64
}

func listenForeign(t *testing.T, sandboxURL string) *foreignCounter {
	t.Helper()
	u, err := url.Parse(sandboxURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", u.Port()))
	if err != nil {
		t.Fatalf("listening where the foreign nextLink points: %v", err)
	}
	fc := &foreignCounter{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fc.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return fc
}

func runFaultCase(t *testing.T, fc faultCase) {
	ctx := context.Background()
	o := sandbox.Options{RecordsPerDay: matrixRecordsPerDay, PageSize: matrixPageSize, StallMax: stallMax}
	sb := startSandbox(t, o)
	var foreign *foreignCounter
	if fc.fault == sandbox.NextLinkForeign {
		foreign = listenForeign(t, sb.URL())
	}
	st := newLocal(t)
	budget := ratelimit.New(&ratelimit.Options{PerScope: 6000, PerTenant: 12000})
	co := clientOptions{budget: budget}
	if fc.fault == sandbox.StalledBody {
		co.bodyIdleTimeout = stallIdleTimeout
	}
	var arm midRun
	e := newExporter(t, sb, st, co, export.Options{PartDays: 1, Progress: arm.progress})
	p, truth := departmentPartition(t, sb)
	parts := []export.Partition{p}
	name := string(fc.fault)

	// The previous export: committed, and what must survive a failed run.
	cleanBefore := sb.Stats().Requests
	prevRun, prevHash := commitFirst(ctx, t, e, st, p)
	cleanRequests := sb.Stats().Requests - cleanBefore

	firedBefore := sb.Stats().Faults[fc.fault]
	if fc.rate > 0 {
		sb.Faults().Rate(fc.fault, fc.rate)
	} else {
		arm.set(func() { sb.Faults().Inject(fc.fault, 1) })
	}
	rctx, cancel := context.WithTimeout(ctx, runTimeout)
	sum, err := e.Run(rctx, parts)
	cancel()
	sb.Faults().Clear()
	if err != nil {
		report(t, kindFault, false, "%s: run did not end within %s: %v", name, runTimeout, err)
		return
	}
	fired := sb.Stats().Faults[fc.fault] - firedBefore
	if fired == 0 {
		report(t, kindFault, false, "%s: the fault never fired", name)
		return
	}
	r := sum.Partitions[0]
	if strings.Contains(r.Error, sb.Token()) {
		t.Errorf("error message carries the bearer token: %s", r.Error)
	}

	switch fc.want {
	case completes:
		if r.Status != export.StatusCommitted {
			report(t, kindFault, false, "%s: status %s, want committed (%s)", name, r.Status, r.Error)
			return
		}
		rows, err := checkExact(ctx, st, e.ManifestName(p), truth)
		if err != nil {
			report(t, kindFault, false, "%s: committed but not exact: %v", name, err)
			return
		}
		extra := ""
		if fc.throttle {
			bs := budget.Stats()
			if bs.Throttled == 0 || bs.Pauses == 0 {
				report(t, kindFault, false, "%s: the rate budget saw %d 429s and paused %d times", name, bs.Throttled, bs.Pauses)
				return
			}
			extra = fmt.Sprintf(", budget paused %d×", bs.Pauses)
		}
		report(t, kindFault, true, "%s: survived (exact: %d rows; fault fired %d×, retried%s)", name, rows, fired, extra)

	case passesThrough:
		if r.Status != export.StatusCommitted {
			report(t, kindFault, false, "%s: status %s, want committed (%s)", name, r.Status, r.Error)
			return
		}
		rows, err := checkWithNewShape(ctx, st, e.ManifestName(p), truth, fired)
		if err != nil {
			report(t, kindFault, false, "%s: %v", name, err)
			return
		}
		report(t, kindFault, true, "%s: survived (exact: %d rows = ground truth + %d unknown-shape record, exported unchanged)", name, rows, fired)

	case failsCleanly:
		if r.Status != export.StatusFailed {
			report(t, kindFault, false, "%s: status %s, want failed", name, r.Status)
			return
		}
		if fc.errIs != nil && !errorIs(r.Err, fc.errIs) {
			report(t, kindFault, false, "%s: error %q is not %T", name, r.Error, fc.errIs)
			return
		}
		if !strings.Contains(r.Error, fc.errHas) {
			report(t, kindFault, false, "%s: error %q does not say %q", name, r.Error, fc.errHas)
			return
		}
		if err := checkUntouched(ctx, st, e.ManifestName(p), prevRun, prevHash); err != nil {
			report(t, kindFault, false, "%s: %v", name, err)
			return
		}
		if foreign != nil && foreign.conns.Load() != 0 {
			report(t, kindFault, false, "%s: %d connections reached the foreign host", name, foreign.conns.Load())
			return
		}
		// The next trigger, fault gone: resumes the checkpoint and ends exactly.
		before := sb.Stats().Requests
		sum, err = e.Run(ctx, parts)
		if err != nil {
			t.Fatal(err)
		}
		resumeRequests := sb.Stats().Requests - before
		r2 := sum.Partitions[0]
		if r2.Status != export.StatusCommitted || !r2.Resumed {
			report(t, kindFault, false, "%s: next run: status %s resumed %v (%s)", name, r2.Status, r2.Resumed, r2.Error)
			return
		}
		// The plan lists a month in as few listings as it can and never resumes a listing from
		// a saved nextLink, so a listing that failed is listed again whole: the resumed run
		// makes no more requests than a full export (fewer when parts were checkpointed).
		if resumeRequests > cleanRequests {
			report(t, kindFault, false, "%s: the resumed run made %d requests, more than a full export's %d", name, resumeRequests, cleanRequests)
			return
		}
		rows, err := checkExact(ctx, st, e.ManifestName(p), truth)
		if err != nil {
			report(t, kindFault, false, "%s: resumed run not exact: %v", name, err)
			return
		}
		extra := ""
		if foreign != nil {
			extra = "; 0 requests to the foreign host"
		}
		report(t, kindFault, true, "%s: survived (failed cleanly: %q; previous intact%s; next run resumed with %d/%d requests: exact %d rows)",
			name, shortError(r.Err, fc.errHas), extra, resumeRequests, cleanRequests, rows)
	}
}

// errorIs is errors.Is for sentinels and errors.As for the pointer types given as targets.
func errorIs(err, target error) bool {
	switch target.(type) {
	case *paging.PageError:
		var pe *paging.PageError
		return errors.As(err, &pe)
	case *mgmt.APIError:
		var ae *mgmt.APIError
		return errors.As(err, &ae)
	}
	return errors.Is(err, target)
}

// shortError cuts an error message to the part around what it must say, for the report line.
func shortError(err error, has string) string {
	msg := err.Error()
	i := strings.Index(msg, has)
	if i < 0 {
		i = 0
	}
	from, to := max(0, i-40), min(len(msg), i+len(has)+30)
	s := msg[from:to]
	if from > 0 {
		s = "…" + s
	}
	if to < len(msg) {
		s += "…"
	}
	return s
}

// tailError returns the last n bytes of an error message, where the root cause is.
func tailError(err error, n int) string {
	msg := err.Error()
	if len(msg) <= n {
		return msg
	}
	return "…" + msg[len(msg)-n:]
}

// checkWithNewShape checks a partition that holds the ground truth plus n records of a kind
// the sandbox never sent before ("future", with an unknown property): those records must be
// there, unchanged JSON objects, and everything else exactly the ground truth.
func checkWithNewShape(ctx context.Context, st verify.Reader, manifestName string, truth sandbox.Truth, n int) (int, error) {
	s, err := readPartition(ctx, st, manifestName)
	if err != nil {
		return 0, err
	}
	var known [][]byte
	odd := 0
	for _, l := range s.lines {
		if bytes.Contains(l, []byte(`"futureProperty"`)) {
			if !bytes.Contains(l, []byte(`"kind":"future"`)) {
				return 0, fmt.Errorf("unknown-shape record lost its kind: %s", l)
			}
			odd++
			continue
		}
		known = append(known, l)
	}
	switch {
	case odd != n:
		return 0, fmt.Errorf("%d unknown-shape records exported, %d injected", odd, n)
	case len(known) != truth.Rows || recordSetHash(known) != truth.Hash:
		return 0, fmt.Errorf("the other %d records are not the ground truth (%d rows)", len(known), truth.Rows)
	case s.manifest.RecordKinds["future"] != int64(n):
		return 0, fmt.Errorf("manifest recordKinds %v, want future: %d", s.manifest.RecordKinds, n)
	}
	got := costTotals(s.manifest)
	for cur, want := range truth.Sums {
		if got[cur] != want {
			return 0, fmt.Errorf("%s total %s, want %s", cur, got[cur], want)
		}
	}
	if rep, err := verify.Partition(ctx, st, manifestName); err != nil || !rep.OK() {
		return 0, fmt.Errorf("verify: %v %v", err, rep)
	}
	return len(s.lines), nil
}

// TestFaultRedirect answers one page request of an export with a 307 to another host (where a
// listener counts connections). A redirect is never followed, so the bearer token never leaves
// the configured endpoint: the run fails with ErrRedirect, the previous export intact, and the
// next run resumes and commits exactly.
func TestFaultRedirect(t *testing.T) {
	gate(t)
	t.Parallel()
	const name = "redirect-to-foreign-host"
	ctx := context.Background()
	gw := newGateway(t, sandbox.Options{RecordsPerDay: matrixRecordsPerDay, PageSize: matrixPageSize, Now: func() time.Time { return fixedNow }})
	foreign := listenForeign(t, gw.url)
	target := "http://127.0.0.2:" + gw.url[strings.LastIndexByte(gw.url, ':')+1:]
	st := newLocal(t)
	var arm midRun
	e := newExporter(t, gw.sb, st, clientOptions{endpoint: gw.url}, export.Options{PartDays: 1, Progress: arm.progress})
	p, truth := departmentPartition(t, gw.sb)
	parts := []export.Partition{p}
	prevRun, prevHash := commitFirst(ctx, t, e, st, p)
	arm.set(func() { gw.redirectTo.Store(&target) })
	rctx, cancel := context.WithTimeout(ctx, runTimeout)
	sum, err := e.Run(rctx, parts)
	cancel()
	if err != nil {
		report(t, kindFault, false, "%s: run did not end within %s: %v", name, runTimeout, err)
		return
	}
	r := sum.Partitions[0]
	if strings.Contains(r.Error, gw.sb.Token()) {
		t.Errorf("error message carries the bearer token: %s", r.Error)
	}
	run, hash, lerr := liveState(ctx, st, e.ManifestName(p))
	switch {
	case gw.redirects.Load() != 1:
		report(t, kindFault, false, "%s: %d redirects answered, want 1", name, gw.redirects.Load())
		return
	case r.Status != export.StatusFailed || !errors.Is(r.Err, mgmt.ErrRedirect):
		report(t, kindFault, false, "%s: status %s, error %q; want failed with ErrRedirect", name, r.Status, r.Error)
		return
	case foreign.conns.Load() != 0:
		report(t, kindFault, false, "%s: %d connections reached the redirect target", name, foreign.conns.Load())
		return
	case lerr != nil || run != prevRun || hash != prevHash:
		report(t, kindFault, false, "%s: the failed run changed the live partition (%v)", name, lerr)
		return
	}
	sum, err = e.Run(ctx, parts)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := checkResumed(ctx, st, e.ManifestName(p), sum.Partitions[0], truth)
	if err != nil {
		report(t, kindFault, false, "%s: %v", name, err)
		return
	}
	report(t, kindFault, true, "%s: survived (failed cleanly: %q; 0 connections to the target; previous intact; next run resumed: exact %d rows)",
		name, shortError(r.Err, "redirect"), rows)
}

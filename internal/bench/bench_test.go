package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
)

// envBurn makes the test binary a child that burns CPU and holds memory (for runChild).
const envBurn = "USAGE_EXPORT_BENCH_TEST_BURN"

// TestMain lets the test binary stand in for the harness binary: Run re-executes Self with a
// child mode as its first argument.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case ModeSDK:
			err = RunSDKMode(context.Background(), os.Args[2:], os.Getenv(EnvToken), os.Stdout, os.Stderr)
		case ModeGzip:
			err = RunGzipMode(os.Stdin, os.Stdout)
		case ModeFetchGzip:
			err = RunFetchGzipMode(context.Background(), os.Args[2:], os.Getenv(EnvToken), os.Stdout, os.Stderr)
		default:
			os.Exit(m.Run())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if v := os.Getenv(envBurn); v != "" {
		mib, _ := strconv.Atoi(v)
		burn(mib)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// burnMiB is what the burn child keeps resident.
const burnMiB = 64

var sink []byte

func burn(mib int) {
	sink = make([]byte, mib<<20)
	for i := range sink {
		sink[i] = byte(i)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	fmt.Println(x > 0, len(sink))
}

func TestRunChild(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envBurn+"="+strconv.Itoa(burnMiB))
	res, err := runChild(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(res.Stdout)); got != fmt.Sprintf("true %d", burnMiB<<20) {
		t.Errorf("stdout = %q", got)
	}
	if res.CPU < 100*time.Millisecond {
		t.Errorf("CPU = %v, want at least 100ms (the child spins for 200 ms of wall time)", res.CPU)
	}
	if res.MaxRSS < burnMiB<<20 {
		t.Errorf("MaxRSS = %d, want at least %d (the child touches %d MiB)", res.MaxRSS, burnMiB<<20, burnMiB)
	}
	if res.Wall < 200*time.Millisecond {
		t.Errorf("Wall = %v, want at least 200ms", res.Wall)
	}

	// The child's peak is its own, not the parent's: hold far more than the child uses.
	parent := make([]byte, 4*burnMiB<<20)
	for i := range parent {
		parent[i] = 1
	}
	small := exec.Command(os.Args[0])
	small.Env = append(os.Environ(), envBurn+"=8")
	res, err = runChild(context.Background(), small)
	if err != nil {
		t.Fatal(err)
	}
	if res.MaxRSS < 8<<20 || res.MaxRSS > 2*burnMiB<<20 {
		t.Errorf("small child under a %d MiB parent: MaxRSS = %d MiB, want 8 MiB and some runtime", len(parent)>>20, res.MaxRSS>>20)
	}
	runtime.KeepAlive(parent)

	failing := exec.Command(os.Args[0], ModeSDK, "-period", "nope")
	if _, err := runChild(context.Background(), failing); err == nil || !strings.Contains(err.Error(), "exited with 1") {
		t.Errorf("failing child: err = %v, want an exit status error", err)
	}
}

func TestRecordsPerDay(t *testing.T) {
	p := period.Of(time.Now().UTC()).Add(-1)
	for _, want := range []int{5_000, 100_000} {
		t.Run(sizeLabel(want), func(t *testing.T) {
			perDay, rows, err := recordsPerDay(EAScope, p, want)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: perDay})
			if err != nil {
				t.Fatal(err)
			}
			truth, err := sb.GroundTruth(EAScope, p, "actualcost")
			if err != nil {
				t.Fatal(err)
			}
			// One record per subscription-day more or less is the resolution.
			if tol := 12 * p.Days(); truth.Rows < want-tol || truth.Rows > want+tol {
				t.Errorf("%d per day gives %d rows, want %d ± %d", perDay, truth.Rows, want, tol)
			}
			if rows != truth.Rows {
				t.Errorf("recordsPerDay predicts %d rows, the sandbox has %d", rows, truth.Rows)
			}
		})
	}
	if _, _, err := recordsPerDay(scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000000"), p, 1000); err == nil {
		t.Errorf("unknown scope: got nil error")
	}
}

func TestSizeLabel(t *testing.T) {
	for n, want := range map[int]string{100_000: "100k", 1_000_000: "1M", 2_500_000: "2.5M", 30_000: "30k", 1234: "1234"} {
		if got := sizeLabel(n); got != want {
			t.Errorf("sizeLabel(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestGzipOnly(t *testing.T) {
	in := bytes.Repeat([]byte(`{"a":"usage record","cost":1.5}`+"\n"), 10000)
	res, err := GzipOnly(bytes.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.In != int64(len(in)) || res.Out <= 0 || res.Out >= res.In/10 {
		t.Errorf("GzipOnly = %+v for %d repetitive bytes", res, len(in))
	}
	var out bytes.Buffer
	if err := RunGzipMode(bytes.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	var got GzipResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got != res {
		t.Errorf("gzip-only mode printed %q (%v), want %+v", out.Bytes(), err, res)
	}
}

// smallSandbox starts a sandbox of 2 records per subscription-day in pages of 100, stopped at
// the end of the test, and returns it with the previous billing period and its ground truth for
// the EA billing account.
func smallSandbox(t *testing.T) (*sandbox.Server, period.Period, sandbox.Truth) {
	t.Helper()
	sb := sandboxtest.Start(t, &sandbox.Options{RecordsPerDay: 2, PageSize: 100})
	p := period.Of(time.Now().UTC()).Add(-1)
	truth, err := sb.GroundTruth(EAScope, p, "actualcost")
	if err != nil {
		t.Fatal(err)
	}
	return sb, p, truth
}

// TestFetchGzip checks the fetch + gzip floor reads every page of the listing, byte for byte,
// following the nextLinks it finds at the end of each body.
func TestFetchGzip(t *testing.T) {
	sb, p, truth := smallSandbox(t)
	o := FetchOptions{Endpoint: sb.URL(), Token: sb.Token(), Scope: EAScope.String(), From: p.Start(),
		To: p.End().AddDate(0, 0, -1), Expand: Expand, APIVersion: APIVersion}
	res, err := FetchGzip(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	wantPages := int64((truth.Rows + 99) / 100)
	st := sb.Stats()
	if res.Pages != wantPages || st.Pages != wantPages {
		t.Errorf("FetchGzip read %d pages, the sandbox served %d; want %d (%d records in pages of 100)", res.Pages, st.Pages, wantPages, truth.Rows)
	}
	// Every record's JSON is in the bodies: at least 1 KB each with additionalInfo.
	if res.In < int64(truth.Rows)*1000 || res.Out <= 0 || res.Out >= res.In/5 {
		t.Errorf("FetchGzip = %+v for %d records", res, truth.Rows)
	}

	var out bytes.Buffer
	args := []string{"-endpoint", sb.URL(), "-scope", EAScope.String(), "-period", p.String()}
	if err := RunFetchGzipMode(context.Background(), args, sb.Token(), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got FetchResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Pages != res.Pages || got.In != res.In {
		t.Errorf("fetch-gzip mode printed %q (%v), want %+v", out.Bytes(), err, res)
	}

	o.Token = "wrong"
	if _, err := FetchGzip(context.Background(), o); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: err = %v, want a 401", err)
	}
}

func TestLastNextLink(t *testing.T) {
	for _, c := range []struct {
		tail, want string
		fails      bool
	}{
		{`..."}],"nextLink":"https://x/usageDetails?$skiptoken=a\u0026b"}`, "https://x/usageDetails?$skiptoken=a&b", false},
		{`...}],"nextLink":null}`, "", false},
		{`...}]}`, "", false},
		{`..."nextLink":"https://x/a"},"more":1,"nextLink":"https://x/b"}`, "https://x/b", false},
		{`...}],"nextLink":"https://x/cut`, "", true},
		{`...}],"nextLink":42}`, "", true},
	} {
		got, err := lastNextLink([]byte(c.tail))
		if got != c.want || (err != nil) != c.fails {
			t.Errorf("lastNextLink(%s) = %q, %v; want %q (fails %v)", c.tail, got, err, c.want, c.fails)
		}
	}
}

func TestTailWriter(t *testing.T) {
	var all []byte
	tw := &tailWriter{buf: make([]byte, 0, 2*tailSize)}
	for i, n := range []int{10, tailSize - 3, 7, tailSize + 5, 1, 3 * tailSize, 2, tailSize / 2, tailSize / 2, tailSize / 2} {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		p[0] = '<'
		all = append(all, p...)
		tw.Write(p)
		if want := all[max(0, len(all)-tailSize):]; !bytes.HasSuffix(tw.buf, want) || len(tw.buf) > 2*tailSize {
			t.Fatalf("after write %d (%d bytes): tail of %d bytes does not end with the last %d written", i, n, len(tw.buf), len(want))
		}
	}
}

// TestSDKBaseline checks the baseline reads every record of the period through the SDK's typed
// pager, and shows what its models lose: explicit nulls are dropped.
func TestSDKBaseline(t *testing.T) {
	sb, p, truth := smallSandbox(t)
	var buf bytes.Buffer
	res, err := SDKBaseline(context.Background(), SDKOptions{
		Endpoint: sb.URL(), Token: sb.Token(), Scope: EAScope.String(), From: p.Start(), To: p.End().AddDate(0, 0, -1),
		Expand: Expand, APIVersion: APIVersion,
	}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != int64(truth.Rows) || res.Pages < int64(truth.Rows/100) {
		t.Errorf("SDKBaseline = %+v, want %d records in pages of 100", res, truth.Rows)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	lines, nulls := 0, 0
	for sc.Scan() {
		lines++
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v", lines, err)
		}
		nulls += strings.Count(sc.Text(), ":null")
	}
	if lines != truth.Rows {
		t.Errorf("%d lines, want %d", lines, truth.Rows)
	}
	if nulls != 0 {
		t.Errorf("%d explicit nulls in the SDK's output; its models were expected to drop them", nulls)
	}
	st := sb.Stats()
	if st.Pages != res.Pages || st.Throttled != 0 {
		t.Errorf("sandbox served %d pages (%d throttled), baseline read %d", st.Pages, st.Throttled, res.Pages)
	}

	if _, err := SDKBaseline(context.Background(), SDKOptions{Endpoint: sb.URL(), Token: "wrong", Scope: EAScope.String(),
		From: p.Start(), To: p.Start()}, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: err = %v, want a 401", err)
	}
}

func TestTargets(t *testing.T) {
	mib := int64(1 << 20)
	row := func(name string, rss int64, cpu time.Duration, records int64, vsGzip float64) *Row {
		return &Row{Scenario: name, Records: records, Usage: Usage{CPU: cpu, MaxRSS: rss * mib}, VsGzip: vsGzip, export: true}
	}
	small := volume{local: row("small local", 40, 1*time.Second, 100_000, 1.2)}
	large := volume{local: row("large local", 60, 10*time.Second, 1_000_000, 1.4)}
	rate := &Row{Scenario: "rate", Usage: Usage{Wall: 21 * time.Second}, Rate: &RateResult{Pages: 100, LowerBound: 20 * time.Second}, export: true}
	rep := &Report{Rows: []*Row{small.local, large.local, rate}, Startup: Startup{Median: 150 * time.Millisecond}}
	sdk := 200e-6
	for _, r := range rep.Rows {
		if r.Records > 0 {
			r.VsSDK = r.CPUPerRecord() / sdk
		}
	}
	got := map[string]bool{}
	for _, tg := range targets(small, large, rep, sdk) {
		got[tg.Name] = tg.Met
	}
	want := map[string]bool{
		"peak RSS, large export → local":        true,  // 60 MiB
		"RSS large ÷ RSS small → local":         false, // 1.5
		"CPU/record vs SDK, small local":        true,  // 10 µs vs 200
		"CPU/record vs SDK, large local":        true,
		"wall ÷ lower bound, rate":              true,  // 1.05
		"start-up to readiness answer (median)": false, // 150 ms
	}
	if len(got) != len(want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	for name, met := range want {
		if m, ok := got[name]; !ok || m != met {
			t.Errorf("target %q: met = %v (present %v), want %v", name, m, ok, met)
		}
	}
}

func TestCombine(t *testing.T) {
	u := func(cpu, wall time.Duration, rss int64) Usage { return Usage{CPU: cpu, Wall: wall, MaxRSS: rss} }
	for _, c := range []struct {
		runs []Usage
		want Usage
	}{
		{[]Usage{u(3, 30, 7)}, u(3, 30, 7)},
		{[]Usage{u(5, 10, 1), u(1, 30, 9), u(3, 20, 4)}, u(3, 20, 9)},
		{[]Usage{u(4, 40, 2), u(2, 10, 3)}, u(2, 10, 3)}, // even: the lower middle
	} {
		if got := combine(c.runs); got != c.want {
			t.Errorf("combine(%v) = %v, want %v", c.runs, got, c.want)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	rep := &Report{
		Rows: []*Row{
			{Scenario: "export → local 1M", Records: 1_000_000, JSONBytes: 1_800_000_000, StoredBytes: 95_000_000,
				Usage: Usage{Wall: 30 * time.Second, CPU: 12 * time.Second, MaxRSS: 50 << 20}, VsSDK: 0.05, VsGzip: 1.25, export: true},
			{Scenario: "rate", Records: 10, Usage: Usage{Wall: 10 * time.Second}, Rate: &RateResult{LowerBound: 9 * time.Second}},
		},
		Startup: Startup{Runs: []time.Duration{12 * time.Millisecond, 10 * time.Millisecond, 14 * time.Millisecond}, Median: 12 * time.Millisecond},
		Targets: []Target{{Name: "a", Goal: "≤ 1", Value: "2", Met: false}},
		Repeat:  3,
	}
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| export → local 1M | 1,000,000 | 1,800,000,000 | 95,000,000 | 30.00 | 12.00 | 12.00 | 50.0 | 0.050 | 1.25 | – |",
		"| rate | 10 | – | – | 10.00 | 0.00 | – | 0.0 | – | – | 0.900 |",
		"median 12.0 ms of 3 runs (12.0, 10.0, 14.0 ms)",
		"| a | ≤ 1 | 2 | **no** |",
		"median CPU and wall time of 3 runs each",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
	var txt strings.Builder
	if err := rep.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), "MISSED  a: 2 (goal ≤ 1)") {
		t.Errorf("text report lacks the missed target:\n%s", txt.String())
	}
}

// TestRunSmall runs the whole harness at a small scale: the built handler against the sandbox
// (local store), both baselines, a short rate-limited run and the start-up probe.
func TestRunSmall(t *testing.T) {
	sandboxtest.SkipShort(t) // builds and runs the handler against the sandbox
	if runtime.GOOS != "linux" {
		t.Fatalf("the harness measures rusage on Linux only (GOOS %s)", runtime.GOOS)
	}
	dir := t.TempDir()
	handler := filepath.Join(dir, "handler")
	build := exec.Command("go", "build", "-o", handler, "github.com/usage-export/usage-export/handler")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the handler: %v\n%s", err, out)
	}
	rate := RateScenario{
		Scopes: []scope.Scope{scope.MustParse("/providers/Microsoft.Billing/departments/301001")}, Periods: 1,
		RecordsPerDay: 5, PageSize: 10, PerScope: 200, Window: time.Second, PageLatency: 5 * time.Millisecond, Concurrency: 4,
	}
	rep, err := Run(context.Background(), Options{
		Handler: handler, Self: os.Args[0], WorkDir: filepath.Join(dir, "work"),
		Small: 1500, Large: 4500, NoAzurite: true, StartupRuns: 3, Repeat: 2, Rate: &rate, Logf: t.Logf,
		Plan: []PlanScenario{{"small: department month", scope.MustParse("/providers/Microsoft.Billing/departments/301001"), 1, 1200}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Rows {
		names = append(names, r.Scenario)
		if r.CPU <= 0 || r.Wall <= 0 || r.MaxRSS <= 0 {
			t.Errorf("%s: usage %+v not measured", r.Scenario, r.Usage)
		}
		if r.export && r.Records <= 0 {
			t.Errorf("%s: no records", r.Scenario)
		}
		if r.export && (r.VsSDK > 0) != (r.Rate == nil) {
			t.Errorf("%s: vs SDK %v (only the unthrottled exports are compared with the SDK)", r.Scenario, r.VsSDK)
		}
		if wantRuns := 2; (r.Rate == nil && !strings.HasPrefix(r.Scenario, "SDK")) != (r.Runs == wantRuns) {
			t.Errorf("%s: %d runs, want %d for the export, gzip-only and fetch + gzip scenarios, one for the others", r.Scenario, r.Runs, wantRuns)
		}
		if r.export && r.Rate == nil && (r.VsGzip <= 0 || r.Floor <= 0) {
			t.Errorf("%s: gzip-only ratio %v, fetch + gzip ratio %v", r.Scenario, r.VsGzip, r.Floor)
		}
	}
	wantNames := "export → local 1500|gzip only 1500|fetch + gzip only 1500|SDK baseline 1500|export → local 4500|gzip only 4500|fetch + gzip only 4500|rate-limited: 1 scopes × 1 periods, 200/s per scope, 5ms/page"
	if got := strings.Join(names, "|"); got != wantNames {
		t.Errorf("scenarios %q, want %q", got, wantNames)
	}
	if len(rep.Plan) != 2 || rep.Plan[1].DatesIgnore != true {
		t.Fatalf("plan rows %+v, want the scenario with date ranges honoured and ignored", rep.Plan)
	}
	for _, p := range rep.Plan {
		if p.Records <= 0 || p.Calls != p.FloorCalls || p.FloorWall <= 0 || p.Wall <= 0 || p.MaxRSS <= 0 {
			t.Errorf("plan row %+v: want %d calls (the floor) and measured usage", p, p.FloorCalls)
		}
	}
	if len(rep.Startup.Runs) != 3 || rep.Startup.Median <= 0 {
		t.Errorf("start-up %+v, want 3 runs", rep.Startup)
	}
	if len(rep.Targets) == 0 {
		t.Errorf("no targets")
	}
}

// TestPlanTable: the plan table puts calls against the floor first, and the observed rates
// follow the reference's per-scope-kind figures.
func TestPlanTable(t *testing.T) {
	for k, want := range map[scope.Kind]int{scope.Subscription: 10, scope.BillingAccount: 6, scope.BillingProfile: 6,
		scope.Customer: 6, scope.Department: 2, scope.EnrollmentAccount: 2, scope.ManagementGroup: 2} {
		if got := ObservedRate(k); got != want {
			t.Errorf("ObservedRate(%s) = %d, want %d", k, got, want)
		}
	}
	rep := &Report{Plan: []*PlanRow{{Scenario: "small", Kind: scope.Department, RatePerMin: 2, Partitions: 1, Records: 2482,
		Calls: 3, FloorCalls: 3, FloorWall: 150 * time.Millisecond, Usage: Usage{Wall: 300 * time.Millisecond, CPU: time.Second}}}}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(lines[0], "scenario") || !strings.Contains(lines[0], "calls / floor") ||
		strings.Index(lines[0], "calls / floor") > strings.Index(lines[0], "wall / floor") {
		t.Errorf("header %q: want calls / floor first", lines[0])
	}
	if !strings.Contains(lines[1], "1.00") || !strings.Contains(lines[1], "2.00") {
		t.Errorf("row %q: want calls/floor 1.00, wall/floor 2.00", lines[1])
	}
}

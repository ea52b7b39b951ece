// Package bench is the performance harness behind `make bench`.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
)

// Defaults.
const (
	// DefaultLarge and DefaultSmall are the record counts of the two export sizes: one EA
	// billing account month of about a million rows, and a tenth of it for the memory ratio
	// and the SDK baseline (which costs about 200 µs a record).
	DefaultLarge = 1_000_000
	DefaultSmall = 100_000
	// DefaultStartupRuns is how many times the handler's start-up is measured (median).
	DefaultStartupRuns = 7
	// DefaultRepeat is how many times each export, gzip-only and fetch + gzip scenario runs: the
	// table shows the median CPU and wall time and the highest peak RSS. On a small shared
	// machine single runs vary by ±10-20 %.
	DefaultRepeat = 3
	// APIVersion is the usageDetails version every scenario reads (the exporter's default).
	APIVersion = consumption.DefaultAPIVersion
	// Expand asks for additionalInfo, the large nested string of legacy EA records.
	Expand = "additionalInfo"
	// unlimitedRate is the exporter's rate budget for the throughput scenarios (calls a minute,
	// the setting's maximum): the sandbox does not throttle them either.
	unlimitedRate = 100000
)

// EAScope is the EA billing account (enrollment) of the sandbox world: legacy records of all its
// subscriptions.
var EAScope = scope.MustParse("/providers/Microsoft.Billing/billingAccounts/" + sandbox.EABillingAccount)

// Options configure Run. Zero values mean the defaults.
type Options struct {
	Handler string // the built handler binary (required)
	Self    string // the harness binary, re-executed for the baseline children (required)
	Root    string // module root holding node_modules, for Azurite; "" = nearest go.mod upwards
	WorkDir string // scratch directory; "" = a temporary directory, removed at the end
	// Env is the environment every child starts from (for example PATH, HOME, TMPDIR); nil means
	// an empty one. The harness adds each child's own settings.
	Env []string

	Large, Small int  // record counts of the two export sizes
	NoAzurite    bool // skip the Azurite scenarios
	NoSDK        bool // skip the SDK baseline
	StartupRuns  int
	Repeat       int // runs of each volume scenario except the SDK baseline (median CPU and wall, highest RSS)
	// Only, when set, limits the run to these parts: "volumes" (the two export sizes with their
	// baselines), "plan" (calls and wall time against the floor under the observed per-scope-kind
	// limits), "rate" (the rate-limited run), "startup".
	Only []string

	// Rate is the rate-limited scenario; nil = DefaultRateScenario.
	Rate *RateScenario
	// Plan lists the plan table's scenarios; nil = PlanScenarios.
	Plan []PlanScenario

	Logf func(format string, args ...any)
}

// positiveOr returns v, or def when v is zero or negative (an unset count of Options).
func positiveOr(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Report is the outcome of Run.
type Report struct {
	Plan    []*PlanRow // the plan table (-only plan), printed first
	Rows    []*Row
	Startup Startup
	Targets []Target
	Repeat  int // runs per repeated scenario
}

// Run measures every scenario and returns the report. It stops at the first scenario that
// fails (a child exiting non-zero, rows that do not match the sandbox's ground truth).
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Handler == "" || o.Self == "" {
		return nil, fmt.Errorf("bench: Handler and Self are required")
	}
	o.Large = positiveOr(o.Large, DefaultLarge)
	o.Small = positiveOr(o.Small, DefaultSmall)
	o.StartupRuns = positiveOr(o.StartupRuns, DefaultStartupRuns)
	o.Repeat = positiveOr(o.Repeat, DefaultRepeat)
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "usage-export-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	r := &runner{o: o, rep: &Report{}}
	if !o.NoAzurite && o.runs("volumes") {
		az, err := azurite.Start(ctx, &azurite.Options{Root: o.Root})
		if err != nil {
			return nil, fmt.Errorf("bench: starting azurite: %w", err)
		}
		defer az.Stop()
		r.azurite = az.ConnectionString()
	}
	prev := period.Of(time.Now().UTC()).Add(-1)
	var small, large volume
	if o.runs("volumes") {
		var err error
		if small, err = r.volume(ctx, sizeLabel(o.Small), o.Small, prev, !o.NoSDK); err != nil {
			return nil, err
		}
		if large, err = r.volume(ctx, sizeLabel(o.Large), o.Large, prev, false); err != nil {
			return nil, err
		}
	}
	if o.runs("plan") {
		if err := r.planTable(ctx, prev); err != nil {
			return nil, err
		}
	}
	if o.runs("rate") {
		rate := o.Rate
		if rate == nil {
			def := DefaultRateScenario
			rate = &def
		}
		if err := r.rateLimited(ctx, *rate, prev); err != nil {
			return nil, err
		}
	}
	if o.runs("startup") {
		st, err := measureStartup(ctx, o.Handler, o.WorkDir, o.Env, o.StartupRuns)
		if err != nil {
			return nil, err
		}
		r.rep.Startup = st
	}
	for _, x := range r.rep.Rows {
		if x.export && x.Rate == nil && r.sdk > 0 {
			x.VsSDK = x.CPUPerRecord() / r.sdk
		}
	}
	r.rep.Targets = targets(small, large, r.rep, r.sdk)
	r.rep.Repeat = o.Repeat
	return r.rep, nil
}

// runs reports whether the part named part is to run.
func (o *Options) runs(part string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, part)
}

// sizeLabel names a record count: 100k, 1M, 2.5M, 30000.
func sizeLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64), ".0") + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// runner carries the state of one Run.
type runner struct {
	o       Options
	rep     *Report
	azurite string // connection string, "" without Azurite
	sdk     float64
}

// volume is what one data size produced, for the targets.
type volume struct {
	local, blob *Row
	gzip        *Row
	floor       *Row // fetch + gzip only
}

// volume runs the export scenarios of one data size: local, Azurite, gzip-only over the same
// lines, fetch + gzip only of the same listing, and (once) the SDK baseline.
func (r *runner) volume(ctx context.Context, label string, records int, p period.Period, sdk bool) (volume, error) {
	var v volume
	perDay, rows, err := recordsPerDay(EAScope, p, records)
	if err != nil {
		return v, err
	}
	sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: perDay})
	if err != nil {
		return v, fmt.Errorf("bench: sandbox: %w", err)
	}
	if err := sb.Start(); err != nil {
		return v, fmt.Errorf("bench: sandbox: %w", err)
	}
	defer sb.Close()
	r.o.Logf("%s: %d records (%d per subscription-day) of %s in %s", label, rows, perDay, EAScope, p)

	dir := filepath.Join(r.o.WorkDir, "local-"+label)
	ex := exportRun{scopes: []scope.Scope{EAScope}, periods: []period.Period{p}}
	row, sum, err := r.repeatExport(ctx, "export → local "+label, sb, ex, rows, func(k int) output {
		return outputDir(runDir(dir, k))
	})
	if err != nil {
		return v, err
	}
	v.local = r.add(row)

	var jsonBytes int64
	gz, err := r.repeat(func(int) (Row, error) {
		row, n, err := r.gzipOnly(ctx, "gzip only "+label, dir)
		jsonBytes = n
		return row, err
	})
	if err != nil {
		return v, err
	}
	gz.Records = sum.Rows
	v.local.JSONBytes, gz.JSONBytes = jsonBytes, jsonBytes
	v.gzip = r.add(gz)

	floor, err := r.repeat(func(int) (Row, error) { return r.fetchGzip(ctx, "fetch + gzip only "+label, sb, p) })
	if err != nil {
		return v, err
	}
	floor.Records = sum.Rows
	floor.VsGzip = floor.CPU.Seconds() / gz.Usage.CPU.Seconds()
	v.floor = r.add(floor)

	if r.azurite != "" {
		row, _, err := r.repeatExport(ctx, "export → Azurite "+label, sb, ex, rows, func(k int) output {
			return azuriteOut(r.azurite, runDir("bench-"+strings.ToLower(label), k))
		})
		if err != nil {
			return v, err
		}
		row.JSONBytes = jsonBytes
		v.blob = r.add(row)
	}
	if sdk {
		row, err := r.sdkBaseline(ctx, "SDK baseline "+label, sb, p)
		if err != nil {
			return v, err
		}
		if err := checkRows(row.Scenario, row.Records, rows, sb); err != nil {
			return v, err
		}
		r.sdk = row.CPUPerRecord()
		r.add(row)
	}
	// Ratios against the baselines of this size.
	for _, x := range []*Row{v.local, v.blob} {
		if x == nil {
			continue
		}
		x.VsGzip = x.Usage.CPU.Seconds() / gz.Usage.CPU.Seconds()
		x.Floor = floor.VsGzip
	}
	return v, nil
}

// repeat runs a measured scenario Options.Repeat times (k from 0) and returns the first run's
// row with the median CPU and wall time of the runs and the highest peak RSS.
func (r *runner) repeat(run func(k int) (Row, error)) (Row, error) {
	var first Row
	var usages []Usage
	for k := range r.o.Repeat {
		row, err := run(k)
		if err != nil {
			return Row{}, err
		}
		if k == 0 {
			first = row
		}
		usages = append(usages, row.Usage)
	}
	first.Usage = combine(usages)
	first.Runs = len(usages)
	return first, nil
}

// combine returns the median CPU and wall time of runs (the lower middle one for an even count)
// and their highest peak RSS.
func combine(runs []Usage) Usage {
	median := func(f func(Usage) time.Duration) time.Duration {
		ds := make([]time.Duration, len(runs))
		for i, u := range runs {
			ds[i] = f(u)
		}
		slices.Sort(ds)
		return ds[(len(ds)-1)/2]
	}
	u := Usage{CPU: median(func(u Usage) time.Duration { return u.CPU }), Wall: median(func(u Usage) time.Duration { return u.Wall })}
	for _, x := range runs {
		u.MaxRSS = max(u.MaxRSS, x.MaxRSS)
	}
	return u
}

// repeatExport repeats an export of ex to out(k), a fresh output each run, checking every run's
// rows against the sandbox; it returns the combined row and the first run's summary.
func (r *runner) repeatExport(ctx context.Context, name string, sb *sandbox.Server, ex exportRun, rows int,
	out func(k int) output) (Row, summary, error) {
	var first summary
	row, err := r.repeat(func(k int) (Row, error) {
		ex.out = out(k)
		row, sum, err := r.export(ctx, name, sb, ex)
		if err != nil {
			return Row{}, err
		}
		if k == 0 {
			first = sum
		}
		return row, checkRows(name, sum.Rows, rows, sb)
	})
	return row, first, err
}

// runDir names the output of repetition k of a scenario: base for the first, base-k after.
func runDir(base string, k int) string {
	if k == 0 {
		return base
	}
	return base + "-" + strconv.Itoa(k)
}

// add appends row to the report and returns it, for the figures learnt later (ratios).
func (r *runner) add(row Row) *Row {
	p := &row
	r.rep.Rows = append(r.rep.Rows, p)
	return p
}

// recordsPerDay picks the sandbox's records per subscription-day that gives about want rows for
// scope sc in period p, and returns it with the exact row count it gives: the rows are linear in
// it (subscriptions × days, plus a fixed number of monthly reservation rows), so two small probes
// give the line without generating the large set.
func recordsPerDay(sc scope.Scope, p period.Period, want int) (perDay, rows int, err error) {
	count := func(perDay int) (int, error) {
		sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: perDay})
		if err != nil {
			return 0, err
		}
		t, err := sb.GroundTruth(sc, p, "actualcost")
		return t.Rows, err
	}
	r1, err := count(1)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: sizing the sandbox: %w", err)
	}
	r2, err := count(2)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: sizing the sandbox: %w", err)
	}
	slope, fixed := r2-r1, r1-(r2-r1)
	if slope <= 0 {
		return 0, 0, fmt.Errorf("bench: sizing the sandbox: %s has no usage in %s", sc, p)
	}
	perDay = max(1, int(math.Round(float64(want-fixed)/float64(slope))))
	return perDay, fixed + slope*perDay, nil
}

// checkRows compares the rows a scenario wrote with the sandbox's row count of the period, and
// with the records the sandbox served so far (every served record lands exactly once, or is
// served again: then it was fetched twice and must not be counted twice).
func checkRows(name string, got int64, want int, sb *sandbox.Server) error {
	if got != int64(want) {
		return fmt.Errorf("bench: %s: wrote %d rows, the sandbox has %d", name, got, want)
	}
	if served := sb.Stats().Records; served%int64(want) != 0 {
		return fmt.Errorf("bench: %s: the sandbox served %d records, not a multiple of the period's %d", name, served, want)
	}
	return nil
}

// output is where an export writes: a local directory or an Azurite container.
type output struct {
	env  []string
	name string
}

func outputDir(dir string) output {
	return output{env: []string{"USAGE_EXPORT_OUTPUT_DIR=" + dir}, name: "local"}
}

func azuriteOut(conn, container string) output {
	return output{env: []string{"USAGE_EXPORT_STORAGE_CONNECTION=" + conn, "USAGE_EXPORT_CONTAINER=" + container}, name: "azurite"}
}

// exportRun is one `handler export` invocation.
type exportRun struct {
	scopes       []scope.Scope
	periods      []period.Period
	out          output
	ratePerScope int // calls a minute; 0 = unlimited
	rateTenant   int
	concurrency  int
}

// summary is the part of the export's JSON summary the harness reads.
type summary struct {
	Partitions []struct {
		Scope  string `json:"scope"`
		Period string `json:"billingPeriod"`
		Status string `json:"status"`
		Rows   int64  `json:"rows"`
		Pages  int    `json:"pages"`
		Error  string `json:"error"`
	} `json:"partitions"`
	Rows   int64 `json:"rows"`
	Bytes  int64 `json:"bytes"`
	Budget struct {
		Calls     int64 `json:"Calls"`
		Throttled int64 `json:"Throttled"`
	} `json:"rateBudget"`
}

// export runs `handler export` as a child against sb and measures it.
func (r *runner) export(ctx context.Context, name string, sb *sandbox.Server, ex exportRun) (Row, summary, error) {
	var scopes, periods []string
	for _, s := range ex.scopes {
		scopes = append(scopes, s.String())
	}
	for _, p := range ex.periods {
		periods = append(periods, p.String())
	}
	rate, tenant := ex.ratePerScope, ex.rateTenant
	if rate == 0 {
		rate, tenant = unlimitedRate, unlimitedRate
	}
	args := []string{"export",
		"--scopes", strings.Join(scopes, ","), "--periods", strings.Join(periods, ","),
		"--api-version", APIVersion, "--expand", Expand,
		"--rate-per-scope", strconv.Itoa(rate), "--rate-per-tenant", strconv.Itoa(tenant),
		"--progress", "none", "--log-level", "warn",
		// The scenarios measure the usageDetails data path; the source is not left to the
		// automatic choice, which may pick Cost Details for an EA scope.
		"--source", "usageDetails",
	}
	if ex.concurrency > 0 {
		args = append(args, "--concurrency", strconv.Itoa(ex.concurrency))
	}
	cmd := exec.CommandContext(ctx, r.o.Handler, args...)
	cmd.Env = childEnv(r.o.Env, "USAGE_EXPORT_MANAGEMENT_ENDPOINT="+sb.URL(), "USAGE_EXPORT_TOKEN="+sb.Token())
	cmd.Env = append(cmd.Env, ex.out.env...)
	r.o.Logf("%s: %s %s", name, r.o.Handler, strings.Join(args, " "))
	res, err := runChild(ctx, cmd)
	if err != nil {
		return Row{}, summary{}, fmt.Errorf("bench: %s: %w", name, err)
	}
	var sum summary
	if err := json.Unmarshal(res.Stdout, &sum); err != nil {
		return Row{}, summary{}, fmt.Errorf("bench: %s: reading the summary: %w", name, err)
	}
	for _, p := range sum.Partitions {
		if p.Status != "committed" {
			return Row{}, sum, fmt.Errorf("bench: %s: %s %s: %s %s", name, p.Scope, p.Period, p.Status, p.Error)
		}
	}
	row := Row{Scenario: name, Records: sum.Rows, StoredBytes: sum.Bytes, Usage: res.Usage, export: true}
	r.o.Logf("%s: %s", name, row.brief())
	return row, sum, nil
}

// childEnv returns a child's environment: the base (Options.Env) and the extra variables, never
// the harness's own settings (a USAGE_EXPORT_* variable of the caller would change the run).
func childEnv(base []string, extra ...string) []string {
	return append(slices.Clip(base), extra...)
}

// listingChild runs a baseline child that lists a period of sb (args from listingArgs, plus its
// own), with the sandbox's token, and decodes the JSON it prints into result.
func (r *runner) listingChild(ctx context.Context, name string, sb *sandbox.Server, args []string, result any) (Usage, error) {
	cmd := exec.CommandContext(ctx, r.o.Self, args...)
	cmd.Env = childEnv(r.o.Env, EnvToken+"="+sb.Token())
	r.o.Logf("%s: %s %s", name, r.o.Self, strings.Join(args, " "))
	res, err := runChild(ctx, cmd)
	if err != nil {
		return Usage{}, fmt.Errorf("bench: %s: %w", name, err)
	}
	if err := json.Unmarshal(res.Stdout, result); err != nil {
		return Usage{}, fmt.Errorf("bench: %s: reading its result: %w", name, err)
	}
	return res.Usage, nil
}

// sdkBaseline runs the SDK baseline child against sb for period p.
func (r *runner) sdkBaseline(ctx context.Context, name string, sb *sandbox.Server, p period.Period) (Row, error) {
	out := filepath.Join(r.o.WorkDir, "sdk-baseline.jsonl.gz")
	defer os.Remove(out)
	var sr SDKResult
	usage, err := r.listingChild(ctx, name, sb, append(listingArgs(ModeSDK, sb, EAScope, p), "-out", out), &sr)
	if err != nil {
		return Row{}, err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return Row{}, fmt.Errorf("bench: %s: %w", name, err)
	}
	row := Row{Scenario: name, Records: sr.Records, JSONBytes: sr.Bytes, StoredBytes: fi.Size(), Usage: usage, VsSDK: 1}
	r.o.Logf("%s: %s", name, row.brief())
	return row, nil
}

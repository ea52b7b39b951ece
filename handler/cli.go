package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/functions"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// settingFlags maps each flag to its environment twin.
var settingFlags = []struct{ flag, env, help string }{
	{"scopes", config.EnvScopes, "billing scopes, comma-separated"},
	{"costdetails-scopes", config.EnvCostDetailsScopes, "scopes (of --scopes) exported through Cost Details reports"},
	{"output-dir", config.EnvOutputDir, "write to a local directory"},
	{"storage-connection", config.EnvStorageConnection, "Blob Storage connection string (Azurite: UseDevelopmentStorage=true)"},
	{"storage-account-url", config.EnvStorageAccountURL, "Blob Storage account URL (Entra ID / managed identity)"},
	{"container", config.EnvContainer, "blob container (created if missing)"},
	{"prefix", config.EnvPrefix, "blob name prefix of the output tree"},
	{"api-version", config.EnvAPIVersion, "usageDetails API version"},
	{"metric", config.EnvMetric, "actualcost, amortizedcost or usage (comma-separated for several)"},
	{"endpoint", config.EnvManagementEndpoint, "management endpoint"},
	{"token-file", config.EnvTokenFile, "file holding a bearer token (instead of Entra ID credentials)"},
	{"ca-file", config.EnvCAFile, "extra CA certificate (PEM) for the endpoint, e.g. the sandbox's"},
	{"gzip", config.EnvGzip, "gzip the JSON lines (true/false)"},
	{"part-days", config.EnvPartDays, "usage days per part file"},
	{"rate-per-scope", config.EnvRatePerScope, "API calls per minute per scope"},
	{"rate-per-tenant", config.EnvRatePerTenant, "API calls per minute per tenant"},
	{"restatement-days", config.EnvRestatementDays, "days after month end a period still changes"},
	{"drop-guard", config.EnvDropGuard, "hold a closed-period re-export that drops more than this fraction"},
	{"row-key", config.EnvRowKey, "add a _rowKey content hash to each line (true/false)"},
	{"focus", config.EnvFocus, "also build the FOCUS 1.2 dataset (implies actualcost and amortizedcost) (true/false)"},
	{"expand", config.EnvExpand, "$expand value (none to send none)"},
	{"concurrency", config.EnvConcurrency, "chunks fetched at once"},
	{"lease-seconds", config.EnvLeaseSeconds, "partition lease in seconds (15-60): how long a dead writer blocks its partition"},
	{"log-level", config.EnvLogLevel, "trace, debug, info, warn or error"},
}

// loadSettings parses the setting flags of fs and returns a lookup that prefers flags set on the
// command line over the environment.
func settingsLookup(fs *flag.FlagSet, vals map[string]*string) func(string) (string, bool) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return func(env string) (string, bool) {
		for _, s := range settingFlags {
			if s.env == env && set[s.flag] {
				return *vals[s.flag], true
			}
		}
		return os.LookupEnv(env)
	}
}

func addSettingFlags(fs *flag.FlagSet) map[string]*string {
	vals := map[string]*string{}
	for _, s := range settingFlags {
		vals[s.flag] = fs.String(s.flag, "", s.help+" (env "+s.env+")")
	}
	return vals
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := addSettingFlags(fs)
	periods := fs.String("periods", "", "billing periods YYYYMM, comma-separated (default: the scheduled plan: current month, plus the previous one inside the restatement window)")
	from := fs.String("from", "", "first billing period of a range (YYYYMM)")
	to := fs.String("to", "", "last billing period of a range (YYYYMM; default: current)")
	source := fs.String("source", "", "usageDetails or costDetails for every scope (default: per scope from settings)")
	force := fs.Bool("force", false, "publish even when the drop guard would hold the export back")
	progress := fs.String("progress", "auto", "progress display: auto, bar, lines or none")
	if err := fs.Parse(args); err != nil {
		return exitError{code: exitUsage}
	}
	cfg, err := config.Load(settingsLookup(fs, vals), true, true)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	if *source != "" && *source != export.SourceUsageDetails && *source != export.SourceCostDetails {
		return exitError{code: exitUsage, msg: fmt.Sprintf("--source %q: want usageDetails or costDetails", *source)}
	}
	plan, err := planPeriods(*periods, *from, *to, cfg, time.Now())
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	log := newLogger(stderr, cfg.LogLevel)
	ctx = log.WithContext(ctx)
	warnOverlaps(log, cfg)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	a.forceSource = *source
	parts := functions.Partitions(cfg.Scopes, plan, cfg.Metrics)
	bar := newProgress(*progress, stderr, len(parts))
	start := time.Now()
	sum, err := a.exporter("OnDemand", bar.update, *force).Run(ctx, parts)
	bar.done()
	if sum != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			*export.Summary
			Budget any `json:"rateBudget"`
		}{sum, a.budget.Stats()})
	}
	if err != nil {
		return err
	}
	log.Info().Int("partitions", len(parts)).Int64("rows", sum.Rows).Int64("bytes", sum.Bytes).
		Float64("seconds", durationSince(start)).Msg("export finished")
	if sum.Failed() > 0 {
		return exitError{code: exitFailed, msg: "export failed for some partitions:\n" + redact(sum.Err().Error())}
	}
	for _, r := range sum.Partitions {
		if r.Status != export.StatusCommitted {
			return exitError{code: exitAttended, msg: fmt.Sprintf("%s %s %s: %s: %s", r.Scope, r.Period, r.Metric, r.Status, r.Error)}
		}
	}
	return nil
}

// warnOverlaps names the configured scope pairs that contain each other (or may: the EA
// hierarchy is not visible in ids), since they double-count in a lake.
func warnOverlaps(log zerolog.Logger, cfg *config.Config) {
	for _, o := range scope.Overlaps(cfg.Scopes) {
		log.Warn().Str("scope_a", o.A.String()).Str("scope_b", o.B.String()).Str("relation", o.Relation.String()).
			Msg("configured scopes can double-count in a lake; see README 'Choosing scopes'")
	}
}

// planPeriods turns the period flags into a list of periods.
func planPeriods(list, from, to string, cfg *config.Config, now time.Time) ([]period.Period, error) {
	switch {
	case list != "" && (from != "" || to != ""):
		return nil, fmt.Errorf("use --periods or --from/--to, not both")
	case list != "":
		var out []period.Period
		for _, s := range strings.Split(list, ",") {
			p, err := period.Parse(strings.TrimSpace(s))
			if err != nil {
				return nil, err
			}
			if period.Of(now).Before(p) {
				return nil, fmt.Errorf("billing period %s is in the future", p)
			}
			out = append(out, p)
		}
		return out, nil
	case from != "" || to != "":
		if from == "" {
			return nil, fmt.Errorf("--to needs --from")
		}
		first, err := period.Parse(from)
		if err != nil {
			return nil, err
		}
		last := period.Of(now)
		if to != "" {
			if last, err = period.Parse(to); err != nil {
				return nil, err
			}
		}
		if period.Of(now).Before(last) {
			return nil, fmt.Errorf("billing period %s is in the future", last)
		}
		return period.Range(first, last, cfg.MaxMonths)
	}
	return period.Scheduled(now, cfg.RestatementDays), nil
}

// progressView draws a one-line progress bar on a terminal, or plain lines otherwise.
type progressView struct {
	mode  string
	w     io.Writer
	total int
	mu    sync.Mutex
	state map[string]export.Progress
	last  time.Time
}

func newProgress(mode string, w io.Writer, total int) *progressView {
	if mode == "auto" {
		mode = "lines"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			mode = "bar"
		}
	}
	return &progressView{mode: mode, w: w, total: total, state: map[string]export.Progress{}}
}

func (p *progressView) update(pr export.Progress) {
	if p.mode == "none" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := pr.Partition.RelPath()
	p.state[key] = pr
	if !pr.Done && time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	var rows, bytes int64
	done := 0
	for _, s := range p.state {
		rows += s.Rows
		bytes += s.Bytes
		if s.Done {
			done++
		}
	}
	switch p.mode {
	case "bar":
		const width = 30
		filled := width * done / max(p.total, 1)
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d partitions  %d rows  %.1f MiB ",
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, p.total, rows, float64(bytes)/(1<<20))
	case "lines":
		if pr.Done {
			fmt.Fprintf(p.w, "progress: %d/%d partitions, %d rows, %d bytes\n", done, p.total, rows, bytes)
		}
	}
}

func (p *progressView) done() {
	if p.mode == "bar" {
		fmt.Fprintln(p.w)
	}
}

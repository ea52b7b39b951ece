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
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
)

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	usageFunc(fs, "export [flags]\n\nExport scopes × billing periods once; the run summary (JSON) goes to stdout, logs to stderr.")
	sf := addSettingFlags(fs, config.UseStore|config.UseRun)
	periods := fs.String("periods", "", "billing periods YYYYMM, comma-separated (default: the scheduled plan: current month, plus the previous one inside the restatement window)")
	from := fs.String("from", "", "first billing period of a range (YYYYMM)")
	to := fs.String("to", "", "last billing period of a range (YYYYMM; default: current)")
	source := fs.String("source", "", "usageDetails or costDetails for every scope (default: per scope from settings)")
	force := fs.Bool("force", false, "publish even when the drop guard would hold the export back")
	progress := fs.String("progress", "auto", "progress display: auto, bar, lines or none")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{code: exitUsage, msg: fmt.Sprintf("export takes no arguments, got %q", fs.Args())}
	}
	cfg, err := sf.load(true, true)
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
		_ = enc.Encode(newRunSummary(sum, a.budget.Stats()))
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

// runSummary is the CLI's run summary on stdout, published as docs/schemas/summary.schema.json:
// camelCase keys, durations in seconds as numbers.
type runSummary struct {
	*export.Summary
	RateBudget rateBudget `json:"rateBudget"`
}

// rateBudget is ratelimit.Stats for people.
type rateBudget struct {
	Calls         int64   `json:"calls"`
	Throttled     int64   `json:"throttled"`
	Pauses        int64   `json:"pauses"`
	WaitedSeconds float64 `json:"waitedSeconds"`
	Scopes        int     `json:"scopes"`
}

func newRunSummary(sum *export.Summary, st ratelimit.Stats) runSummary {
	return runSummary{Summary: sum, RateBudget: rateBudget{
		Calls: st.Calls, Throttled: st.Throttled, Pauses: st.Pauses, WaitedSeconds: st.Waited.Seconds(), Scopes: st.ScopesSeen,
	}}
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

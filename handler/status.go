package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/record"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// partitionStatus is one partition of `handler status` and GET /api/partitions: what is live,
// and what waits in the control tree.
type partitionStatus struct {
	Scope         string `json:"scope"`
	Metric        string `json:"metric"`
	BillingPeriod string `json:"billingPeriod"`
	// PeriodStatus is the period's status now (open, closing, final); ExportedAs its status when
	// the live export was written.
	PeriodStatus string `json:"periodStatus"`
	ExportedAs   string `json:"exportedAs,omitempty"`
	Committed    bool   `json:"committed"`
	Source       string `json:"source,omitempty"`
	Rows         int64  `json:"rows"`
	Bytes        int64  `json:"bytes"`
	// Totals are the billing-currency cost sums (currency → exact decimal).
	Totals     map[string]string `json:"totals,omitempty"`
	LastRun    *runStatus        `json:"lastRun,omitempty"`
	Held       []heldStatus      `json:"held,omitempty"`
	Unfinished bool              `json:"unfinished,omitempty"` // a checkpoint waits: the next run resumes it
	Manifest   string            `json:"manifest,omitempty"`
}

type runStatus struct {
	RunID         string    `json:"runId"`
	ExecutionType string    `json:"executionType"`
	FinishedTime  time.Time `json:"finishedTime"`
	AgeSeconds    float64   `json:"ageSeconds"`
}

type heldStatus struct {
	RunID       string            `json:"runId"`
	Rows        int64             `json:"rows"`
	Totals      map[string]string `json:"totals,omitempty"`
	HeldTime    time.Time         `json:"heldTime"`
	ExpiresTime time.Time         `json:"expiresTime"`
	Manifest    string            `json:"manifest"`
}

// statusReport is the whole answer.
type statusReport struct {
	Partitions []partitionStatus `json:"partitions"`
	Count      int               `json:"count"`
	Rows       int64             `json:"rows"`
	Held       int               `json:"held"`
	Unfinished int               `json:"unfinished"`
}

// statusFilter selects partitions; empty fields select all.
type statusFilter struct {
	Scopes  []scope.Scope
	Periods map[string]bool
	Metrics map[string]bool
}

func (f statusFilter) match(sc, p, metric string) bool {
	if len(f.Periods) > 0 && !f.Periods[p] {
		return false
	}
	if len(f.Metrics) > 0 && !f.Metrics[metric] {
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

// collectStatus reads the live manifests, the held runs and the checkpoints under the prefix.
func collectStatus(ctx context.Context, st export.Store, e *export.Exporter, prefix string, restatementDays int, f statusFilter, now time.Time) (*statusReport, error) {
	root := ""
	if prefix != "" {
		root = prefix + "/"
	}
	byPath := map[string]*partitionStatus{}
	get := func(relPath, sc, p, metric string) *partitionStatus {
		ps := byPath[relPath]
		if ps == nil {
			ps = &partitionStatus{Scope: sc, Metric: metric, BillingPeriod: p}
			if per, err := period.Parse(p); err == nil {
				ps.PeriodStatus = string(per.StatusAt(now, restatementDays))
			}
			byPath[relPath] = ps
		}
		return ps
	}
	var manifests []string
	var checkpoints []string
	err := st.List(ctx, root, func(it store.Item) error {
		rel := strings.TrimPrefix(it.Name, root)
		switch {
		case strings.HasPrefix(rel, "_control/checkpoints/") && path.Base(rel) == "checkpoint.json":
			checkpoints = append(checkpoints, path.Dir(strings.TrimPrefix(rel, "_control/checkpoints/")))
		case !strings.HasPrefix(rel, "_control/") && path.Base(rel) == manifest.FileName:
			manifests = append(manifests, it.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the output: %w", err)
	}
	for _, name := range manifests {
		m, err := readManifestFile(ctx, st, name)
		if err != nil {
			return nil, err
		}
		if !f.match(m.Scope, m.BillingPeriod, m.Metric) {
			continue
		}
		rel := strings.TrimPrefix(path.Dir(name), root)
		ps := get(rel, m.Scope, m.BillingPeriod, m.Metric)
		ps.Committed = true
		ps.ExportedAs, ps.Source, ps.Rows, ps.Bytes = m.PeriodStatus, m.Source, m.DataRowCount, m.ByteCount
		ps.Totals = billingTotals(m.Totals)
		ps.Manifest = name
		ps.LastRun = &runStatus{RunID: m.RunInfo.RunID, ExecutionType: m.RunInfo.ExecutionType,
			FinishedTime: m.RunInfo.FinishedTime, AgeSeconds: roundSeconds(now.Sub(m.RunInfo.FinishedTime))}
	}
	folders, err := e.RunFolders(ctx)
	if err != nil {
		return nil, err
	}
	for _, fo := range folders {
		if fo.Held == nil || !f.match(fo.Held.Scope, fo.Held.BillingPeriod, fo.Held.Metric) {
			continue
		}
		ps := get(fo.RelPath, fo.Held.Scope, fo.Held.BillingPeriod, fo.Held.Metric)
		ps.Held = append(ps.Held, heldStatus{RunID: fo.RunID, Rows: fo.Held.DataRowCount, Totals: billingTotals(fo.Held.Totals),
			HeldTime: fo.Newest.UTC(), ExpiresTime: fo.Newest.Add(export.DefaultHeldRetention).UTC(), Manifest: path.Join(fo.Dir, manifest.FileName)})
	}
	for _, rel := range checkpoints {
		if ps := byPath[rel]; ps != nil {
			ps.Unfinished = true
			continue
		}
		// An unfinished first run: the partition has no manifest yet; its names come from the
		// folder (scope=… is the escaped folder name, not the scope path).
		metric, sc, p, ok := splitRelPath(rel)
		if !ok || (len(f.Scopes) > 0) || (len(f.Periods) > 0 && !f.Periods[p]) || (len(f.Metrics) > 0 && !f.Metrics[metric]) {
			continue
		}
		get(rel, sc, p, metric).Unfinished = true
	}
	rep := &statusReport{Partitions: []partitionStatus{}}
	for _, ps := range byPath {
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
	return rep, nil
}

func splitRelPath(rel string) (metric, sc, p string, ok bool) {
	segs := strings.Split(rel, "/")
	if len(segs) != 3 {
		return "", "", "", false
	}
	metric, ok1 := strings.CutPrefix(segs[0], "metric=")
	sc, ok2 := strings.CutPrefix(segs[1], "scope=")
	p, ok3 := strings.CutPrefix(segs[2], "billingPeriod=")
	if u, err := scope.UnescapePathName(sc); err == nil {
		sc = u
	}
	return metric, sc, p, ok1 && ok2 && ok3
}

func roundSeconds(d time.Duration) float64 { return float64(d.Round(time.Second) / time.Second) }

func readManifestFile(ctx context.Context, st export.Store, name string) (*manifest.Manifest, error) {
	rc, _, err := st.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// writeStatusTable prints the report for a person.
func writeStatusTable(w io.Writer, rep *statusReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tMETRIC\tPERIOD\tSTATUS\tSOURCE\tROWS\tTOTAL\tAGE\tLAST RUN\tWAITING")
	for _, p := range rep.Partitions {
		var totals []string
		for cur, v := range p.Totals {
			totals = append(totals, shortDecimal(v)+" "+cur)
		}
		sort.Strings(totals)
		age, last := "-", "-"
		if p.LastRun != nil {
			age = humanAge(time.Duration(p.LastRun.AgeSeconds) * time.Second)
			last = p.LastRun.ExecutionType + " " + shortID(p.LastRun.RunID)
		}
		var waiting []string
		for _, h := range p.Held {
			waiting = append(waiting, fmt.Sprintf("held %s (%d rows)", h.RunID, h.Rows))
		}
		if p.Unfinished {
			waiting = append(waiting, "unfinished: next run resumes")
		}
		if len(waiting) == 0 {
			waiting = []string{"-"}
		}
		rows := fmt.Sprint(p.Rows)
		if !p.Committed {
			rows = "not committed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Scope, p.Metric, p.BillingPeriod, p.PeriodStatus,
			orDash(p.Source), rows, orDash(strings.Join(totals, ", ")), age, last, strings.Join(waiting, "; "))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d partitions, %d rows; %d held runs waiting, %d unfinished\n", rep.Count, rep.Rows, rep.Held, rep.Unfinished)
	if rep.Held > 0 {
		fmt.Fprintln(w, "publish or discard a held run: handler publish RUN_ID / handler discard RUN_ID")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// shortDecimal cuts an exact decimal to two places for the table (the JSON keeps every digit).
func shortDecimal(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s) > i+3 {
		return s[:i+3]
	}
	return s
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// readOnlyExporter is an exporter over st for the control-tree operations (status, publish,
// discard, clean); it runs no export.
func readOnlyExporter(st export.Store, cfg *config.Config) *export.Exporter {
	return export.New(st, func(scope.Scope) (export.Source, error) {
		return nil, errors.New("no source: this exporter only reads and tidies the output")
	}, &export.Options{Prefix: cfg.Prefix, LeaseTTL: time.Duration(cfg.LeaseSeconds) * time.Second})
}

// parseStatusFilter turns the filter flags into a filter.
func parseStatusFilter(scopes, periods, from, to, metrics string, cfg *config.Config, now time.Time) (statusFilter, error) {
	var f statusFilter
	var err error
	if f.Scopes, err = config.ParseScopes(scopes); err != nil {
		return f, fmt.Errorf("--scope: %w", err)
	}
	if periods != "" || from != "" || to != "" {
		list, err := planPeriods(periods, from, to, cfg, now)
		if err != nil {
			return f, err
		}
		f.Periods = map[string]bool{}
		for _, p := range list {
			f.Periods[p.String()] = true
		}
	}
	for _, m := range strings.Split(metrics, ",") {
		if m = strings.TrimSpace(strings.ToLower(m)); m != "" {
			if f.Metrics == nil {
				f.Metrics = map[string]bool{}
			}
			f.Metrics[m] = true
		}
	}
	return f, nil
}

// cmdStatus prints what has been exported.
func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	usageFunc(fs, "status [flags]\n\nShow what has been exported, read from the manifests: per partition its rows, totals, period\nstatus, source, age, last run, held runs waiting and unfinished runs. A table on a terminal,\nJSON otherwise (--format). Reads only.")
	sf := addSettingFlags(fs, config.UseStore)
	scopes := fs.String("scope", "", "only these scopes (comma-separated)")
	periods := fs.String("periods", "", "only these billing periods YYYYMM (comma-separated)")
	from := fs.String("from", "", "only billing periods from this one (YYYYMM)")
	to := fs.String("to", "", "only billing periods up to this one (YYYYMM; default: current)")
	metrics := fs.String("metric", "", "only these metrics (comma-separated)")
	format := fs.String("format", "auto", "auto (table on a terminal, JSON otherwise), table or json")
	restatement := fs.Int("restatement-days", config.DefaultRestatementDays, "days after month end a period still changes (for the period status)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg, err := sf.load(false, true)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	now := time.Now()
	filter, err := parseStatusFilter(*scopes, *periods, *from, *to, *metrics, cfg, now)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	log := newLogger(stderr, cfg.LogLevel)
	ctx = log.WithContext(ctx)
	st, err := openReadStore(ctx, cfg)
	if err != nil {
		return err
	}
	rep, err := collectStatus(ctx, st, readOnlyExporter(st, cfg), cfg.Prefix, *restatement, filter, now)
	if err != nil {
		return err
	}
	return writeReport(stdout, *format, rep, func(w io.Writer) { writeStatusTable(w, rep) })
}

// writeReport writes v as a table on a terminal (or --format table) and as indented JSON
// otherwise.
func writeReport(w io.Writer, format string, v any, table func(io.Writer)) error {
	switch format {
	case "table":
		table(w)
		return nil
	case "json":
	case "auto":
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			table(w)
			return nil
		}
	default:
		return exitError{code: exitUsage, msg: fmt.Sprintf("--format %q: want auto, table or json", format)}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cmdHeld publishes or discards a held run (action "publish" or "discard").
func cmdHeld(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	what := "Publish a run the drop guard held back: its parts replace the live ones, its manifest is\nwritten last (refused when the live export changed since it was held)."
	if action == "discard" {
		what = "Discard a run the drop guard held back; the live export stays as it is."
	}
	usageFunc(fs, action+" [flags] RUN_ID\n\n"+what+" handler status lists held runs.")
	sf := addSettingFlags(fs, config.UseStore)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitError{code: exitUsage, msg: action + " takes one run id (handler status lists held runs)"}
	}
	cfg, err := sf.load(false, true)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	log := newLogger(stderr, cfg.LogLevel)
	ctx = log.WithContext(ctx)
	st, err := openReadStore(ctx, cfg)
	if err != nil {
		return err
	}
	e := readOnlyExporter(st, cfg)
	id := fs.Arg(0)
	out := map[string]any{"runId": id, "action": action}
	if action == "publish" {
		m, err := e.PublishHeld(ctx, id)
		if err != nil {
			return heldError(err)
		}
		out["scope"], out["billingPeriod"], out["metric"], out["rows"] = m.Scope, m.BillingPeriod, m.Metric, m.DataRowCount
		log.Info().Str("run_id", id).Int64("rows", m.DataRowCount).Msg("held run published")
	} else {
		if err := e.DiscardHeld(ctx, id); err != nil {
			return heldError(err)
		}
		log.Info().Str("run_id", id).Msg("held run discarded")
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func heldError(err error) error {
	switch {
	case errors.Is(err, export.ErrNoHeldRun):
		return exitError{code: exitUsage, msg: err.Error()}
	case errors.Is(err, export.ErrHeldStale), errors.Is(err, export.ErrRunActive):
		return exitError{code: exitAttended, msg: err.Error()}
	}
	return err
}

// cmdClean removes expired run folders.
func cmdClean(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("clean", flag.ContinueOnError)
	usageFunc(fs, fmt.Sprintf("clean [flags]\n\nRemove run folders of the control tree that the rule expires: held runs %d days after they\nwere held, abandoned run folders %d days after their last write. Unfinished runs are kept.",
		int(export.DefaultHeldRetention.Hours()/24), int(export.DefaultAbandonedRetention.Hours()/24)))
	sf := addSettingFlags(fs, config.UseStore)
	dry := fs.Bool("dry-run", false, "only list what would be removed")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	cfg, err := sf.load(false, true)
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	log := newLogger(stderr, cfg.LogLevel)
	ctx = log.WithContext(ctx)
	st, err := openReadStore(ctx, cfg)
	if err != nil {
		return err
	}
	removed, err := readOnlyExporter(st, cfg).Clean(ctx, time.Now(), nil, *dry)
	if err != nil {
		return err
	}
	type folder struct {
		RunID   string    `json:"runId"`
		Folder  string    `json:"folder"`
		Held    bool      `json:"held"`
		Newest  time.Time `json:"lastWritten"`
		Objects int       `json:"objects"`
		Bytes   int64     `json:"bytes"`
	}
	out := struct {
		DryRun  bool     `json:"dryRun"`
		Removed []folder `json:"removed"`
	}{DryRun: *dry, Removed: []folder{}}
	for _, f := range removed {
		out.Removed = append(out.Removed, folder{f.RunID, f.Dir, f.Held != nil, f.Newest.UTC(), f.Objects, f.Bytes})
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

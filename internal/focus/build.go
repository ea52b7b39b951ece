package focus

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/decimal"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

// Store is what the builder needs from a store (store.Local and store.Blob).
type Store interface {
	Put(ctx context.Context, name string, r io.Reader, o *store.PutOptions) (store.Props, error)
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
	List(ctx context.Context, prefix string, fn func(store.Item) error) error
	Delete(ctx context.Context, name string) error
	Move(ctx context.Context, src, dst string, o *store.PutOptions) error
	AcquireLease(ctx context.Context, name string, ttl time.Duration) (*store.Lease, error)
}

// Options configure a Builder; nil means the defaults.
type Options struct {
	Prefix        string                 // the output tree's prefix, as export.Options.Prefix
	NoGzip        bool                   // write .jsonl instead of .jsonl.gz
	LeaseTTL      time.Duration          // partition lease; 0 = export.DefaultLeaseTTL
	ExecutionType manifest.ExecutionType // "" = manifest.OnDemand
	Now           func() time.Time
}

// Builder builds FOCUS partitions in one store.
type Builder struct {
	st Store
	o  Options
}

// New returns a Builder.
func New(st Store, o *Options) *Builder {
	var c Options
	if o != nil {
		c = *o
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = export.DefaultLeaseTTL
	}
	if c.ExecutionType == "" {
		c.ExecutionType = manifest.OnDemand
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Builder{st: st, o: c}
}

// Outcomes of Build.
const (
	StatusCommitted               = export.StatusCommitted // the FOCUS partition was (re)built
	StatusUpToDate  export.Status = "upToDate"             // built from the same committed inputs already
	StatusWaiting   export.Status = "waiting"              // an input partition is not committed; nothing built
	StatusBusy                    = export.StatusBusy      // another writer holds the FOCUS partition
	StatusFailed                  = export.StatusFailed    // nothing published; the previous FOCUS partition is intact
)

// Result is the outcome of building one FOCUS partition.
type Result struct {
	Scope    string        `json:"scope"`
	Period   string        `json:"billingPeriod"`
	Status   export.Status `json:"status"`
	RunID    string        `json:"runId,omitempty"`
	Rows     int64         `json:"rows"`
	Manifest string        `json:"manifest,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Err      error         `json:"-"`
}

// ErrInputChanged reports that an input partition was re-committed while it was read: the
// build is abandoned (the run that re-committed it triggers the next build).
var ErrInputChanged = errors.New("an input partition changed while it was read")

// inputs are the metrics the dataset is built from, in reading order.
var inputs = []metric.Metric{metric.AmortizedCost, metric.ActualCost}

func (b *Builder) join(elems ...string) string {
	if b.o.Prefix != "" {
		elems = append([]string{b.o.Prefix}, elems...)
	}
	return path.Join(elems...)
}

// RelPath is the FOCUS partition folder relative to the prefix.
func RelPath(sc scope.Scope, p period.Period) string {
	return fmt.Sprintf("dataset=%s/scope=%s/billingPeriod=%s", Dataset, sc.Folder(), p)
}

// ManifestName is the live manifest of the FOCUS partition of sc and p.
func (b *Builder) ManifestName(sc scope.Scope, p period.Period) string {
	return b.join(RelPath(sc, p), manifest.FileName)
}

func (b *Builder) inputManifest(sc scope.Scope, p period.Period, mt metric.Metric) string {
	return b.join(export.Partition{Scope: sc, Period: p, Metric: mt}.RelPath(), manifest.FileName)
}

// AfterRun rebuilds the FOCUS partition of every scope and period whose actualcost or
// amortizedcost partition the run committed, and appends one export.Derived per FOCUS partition
// to the summary. It is export.Options.AfterRun.
func (b *Builder) AfterRun(ctx context.Context, sum *export.Summary) {
	type key struct{ sc, p string }
	seen := map[key]bool{}
	var todo []export.Partition
	for _, r := range sum.Partitions {
		if r.Status != export.StatusCommitted || (r.Metric != metric.ActualCost && r.Metric != metric.AmortizedCost) {
			continue
		}
		k := key{r.Partition.Scope.String(), r.Partition.Period.String()}
		if !seen[k] {
			seen[k] = true
			todo = append(todo, r.Partition)
		}
	}
	for _, p := range todo {
		res := b.Build(ctx, p.Scope, p.Period, false)
		sum.Derived = append(sum.Derived, export.Derived{Dataset: Dataset, Scope: res.Scope, Period: res.Period,
			Status: res.Status, RunID: res.RunID, Rows: res.Rows, Manifest: res.Manifest, Error: res.Reason})
	}
}

// Build builds the FOCUS partition of sc and p from the live actualcost and amortizedcost
// partitions when both are committed and the FOCUS partition was not built from exactly these
// (force: build anyway). It never returns a partial partition: a failure leaves the previous
// FOCUS partition live.
func (b *Builder) Build(ctx context.Context, sc scope.Scope, p period.Period, force bool) Result {
	res := Result{Scope: sc.String(), Period: p.String()}
	log := zerolog.Ctx(ctx).With().Str("scope", res.Scope).Str("period", res.Period).Str("dataset", Dataset).Logger()
	err := b.build(log.WithContext(ctx), sc, p, force, &res)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrLeased):
		res.Status, res.Reason = StatusBusy, "already running: another writer holds this partition"
	default:
		res.Status, res.Err, res.Reason = StatusFailed, err, err.Error()
	}
	ev := log.Info()
	if res.Status == StatusFailed {
		ev = log.Error().Err(err)
	}
	ev.Str("status", string(res.Status)).Str("run_id", res.RunID).Int64("rows", res.Rows).Str("reason", res.Reason).Msg("focus partition done")
	return res
}

func (b *Builder) build(ctx context.Context, sc scope.Scope, p period.Period, force bool, res *Result) error {
	rel := RelPath(sc, p)
	ctx, release, err := b.holdLease(ctx, rel)
	if err != nil {
		return err
	}
	defer release()

	in, why, err := b.readInputs(ctx, sc, p)
	if err != nil {
		return err
	}
	if why != "" {
		res.Status, res.Reason = StatusWaiting, why
		return nil
	}
	liveName := b.ManifestName(sc, p)
	if done, err := b.upToDate(ctx, liveName, in, force, res); done || err != nil {
		return err
	}

	runID := uuid.NewString()
	submitted := b.o.Now().UTC()
	ext := ".jsonl.gz"
	if b.o.NoGzip {
		ext = ".jsonl"
	}
	last := p.End().AddDate(0, 0, -1)
	partName := "part-" + p.Start().Format("20060102") + "-" + last.Format("20060102") + ext
	runDir := b.join("_control", "runs", runID, rel)
	staged := path.Join(runDir, partName) + ".staged"

	acc, err := b.write(ctx, p, in, staged, !b.o.NoGzip)
	if err == nil {
		err = b.inputsUnchanged(ctx, in)
	}
	if err != nil {
		b.deleteTree(ctx, runDir+"/")
		return err
	}
	m := b.newManifest(sc, p, runID, submitted, in, acc)
	if acc.rows > 0 {
		m.Blobs = append(m.Blobs, manifest.Blob{BlobName: b.join(rel, partName), ByteCount: acc.bytes,
			DataRowCount: acc.rows, SHA256: acc.sha, UsageDateStart: p.Start().Format(time.DateOnly),
			UsageDateEnd: last.Format(time.DateOnly), Totals: m.Totals})
		m.BlobCount, m.ByteCount = 1, acc.bytes
	}
	for _, c := range m.Checks {
		if !c.OK {
			zerolog.Ctx(ctx).Warn().Str("check", c.Name).Str("detail", c.Detail).Msg("focus invariant does not hold")
		}
	}
	if err := b.publish(ctx, rel, staged, partName, ext, runDir, m); err != nil {
		return err
	}
	res.Status, res.RunID, res.Rows, res.Manifest = StatusCommitted, runID, acc.rows, liveName
	return nil
}

// holdLease takes the FOCUS partition's lease and keeps it renewed under the returned context;
// release stops the renewal and releases it.
func (b *Builder) holdLease(ctx context.Context, rel string) (context.Context, func(), error) {
	lease, err := b.st.AcquireLease(ctx, b.join("_control", "leases", rel, "lease"), b.o.LeaseTTL)
	if err != nil {
		return nil, nil, fmt.Errorf("taking focus partition lease: %w", err)
	}
	ctx, release := lease.Hold(ctx, "focus partition lease")
	return ctx, release, nil
}

// readInputs reads the inputs as committed now; why says what the build waits for when an
// input is not ready.
func (b *Builder) readInputs(ctx context.Context, sc scope.Scope, p period.Period) (map[metric.Metric]*inputState, string, error) {
	in := map[metric.Metric]*inputState{}
	for _, mt := range inputs {
		st, why, err := b.readInput(ctx, sc, p, mt)
		if err != nil {
			return nil, "", err
		}
		if why != "" {
			return nil, why, nil
		}
		in[mt] = st
	}
	return in, "", nil
}

// upToDate reports (and records in res) whether the live partition was built from the inputs
// in already; force rebuilds it anyway.
func (b *Builder) upToDate(ctx context.Context, liveName string, in map[metric.Metric]*inputState, force bool, res *Result) (bool, error) {
	liveBytes, err := b.readBlob(ctx, liveName)
	if err != nil || liveBytes == nil || force {
		return false, err
	}
	live, err := ParseManifest(liveBytes)
	if err != nil || !sameInputs(live.Inputs, in) {
		return false, nil
	}
	res.Status, res.RunID, res.Rows, res.Manifest = StatusUpToDate, live.RunInfo.RunID, live.DataRowCount, liveName
	res.Reason = "built from the committed inputs already"
	return true, nil
}

// inputsUnchanged checks that both inputs are still the committed ones read: a build never
// comes from a half-committed pair.
func (b *Builder) inputsUnchanged(ctx context.Context, in map[metric.Metric]*inputState) error {
	for _, mt := range inputs {
		now, err := b.readBlob(ctx, in[mt].name)
		if err != nil {
			return err
		}
		if !bytes.Equal(now, in[mt].raw) {
			return fmt.Errorf("%s: %w", in[mt].name, ErrInputChanged)
		}
	}
	return nil
}

// newManifest builds the manifest of the run runID from what it wrote (acc), without its blob.
func (b *Builder) newManifest(sc scope.Scope, p period.Period, runID string, submitted time.Time, in map[metric.Metric]*inputState, acc *accum) *Manifest {
	m := &Manifest{
		ManifestVersion: manifest.Version, Dataset: Dataset, FocusVersion: Version, Status: manifest.StatusCommitted,
		RunInfo: manifest.RunInfo{RunID: runID, ExecutionType: b.o.ExecutionType, SubmittedTime: submitted,
			FinishedTime: b.o.Now().UTC(), StartDate: p.Start().Format(time.DateOnly),
			EndDate: p.End().AddDate(0, 0, -1).Format(time.DateOnly)},
		Scope: sc.String(), ScopeFolder: sc.Folder(), BillingPeriod: p.String(), Format: "jsonl", Compression: "none",
		DataRowCount: acc.rows, RowsFrom: acc.from, Inputs: map[metric.Metric]Input{}, Blobs: []manifest.Blob{},
	}
	if !b.o.NoGzip {
		m.Compression = "gzip"
	}
	for _, mt := range inputs {
		m.Inputs[mt] = in[mt].Input
	}
	m.Totals = acc.totals()
	m.Commitments = acc.commitmentSums()
	m.Checks = acc.checks(in)
	return m
}

// inputState is one input partition as read.
type inputState struct {
	Input
	name string
	raw  []byte
	m    *manifest.Manifest
}

// readInput reads the live manifest of an input; why is set when the input is not usable.
func (b *Builder) readInput(ctx context.Context, sc scope.Scope, p period.Period, mt metric.Metric) (*inputState, string, error) {
	name := b.inputManifest(sc, p, mt)
	raw, err := b.readBlob(ctx, name)
	if err != nil {
		return nil, "", err
	}
	if raw == nil {
		return nil, "no committed " + string(mt) + " partition", nil
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("input %s: %w", name, err)
	}
	if m.Status != manifest.StatusCommitted {
		return nil, "the " + string(mt) + " partition is " + string(m.Status), nil
	}
	sum := sha256.Sum256(raw)
	in := &inputState{name: name, raw: raw, m: m, Input: Input{Manifest: name, RunID: m.RunInfo.RunID,
		ManifestSHA256: hex.EncodeToString(sum[:]), Source: m.Source, DataRowCount: m.DataRowCount, Cost: costTotals(m.Totals)}}
	return in, "", nil
}

// costTotals is the billing-currency cost per currency of a raw manifest's totals.
func costTotals(t map[string]map[string]string) map[string]string {
	sums := map[string]*decimal.Sum{}
	for _, field := range []string{"cost", "costInBillingCurrency"} {
		for cur, v := range t[field] {
			if sums[cur] == nil {
				sums[cur] = &decimal.Sum{}
			}
			_ = sums[cur].AddString(v)
		}
	}
	out := map[string]string{}
	for cur, s := range sums {
		out[cur] = s.String()
	}
	return out
}

func sameInputs(a map[metric.Metric]Input, in map[metric.Metric]*inputState) bool {
	for _, mt := range inputs {
		x, ok := a[mt]
		if !ok || x.RunID != in[mt].RunID || x.ManifestSHA256 != in[mt].ManifestSHA256 {
			return false
		}
	}
	return true
}

// accum collects what the manifest says about the rows written.
type accum struct {
	rows, bytes int64
	sha         string
	from        map[metric.Metric]int64
	billed      map[string]*decimal.Sum
	effective   map[string]*decimal.Sum
	commit      map[string]map[string]*[3]decimal.Sum // order → currency → used, unused, purchases
	bad         int64
	firstBad    string
}

func (a *accum) add(r *Row, from metric.Metric, ck *Checker) {
	a.rows++
	a.from[from]++
	sum := func(m map[string]*decimal.Sum, v string) {
		if m[r.Currency] == nil {
			m[r.Currency] = &decimal.Sum{}
		}
		_ = m[r.Currency].AddString(v) // validated in Convert
	}
	sum(a.billed, r.Billed)
	sum(a.effective, r.Effective)
	if r.Commitment != "" {
		byCur := a.commit[r.Commitment]
		if byCur == nil {
			byCur = map[string]*[3]decimal.Sum{}
			a.commit[r.Commitment] = byCur
		}
		s := byCur[r.Currency]
		if s == nil {
			s = &[3]decimal.Sum{}
			byCur[r.Currency] = s
		}
		switch {
		case r.Status == "Used":
			_ = s[0].AddString(r.Effective)
		case r.Status == "Unused":
			_ = s[1].AddString(r.Effective)
		case r.Purchase:
			_ = s[2].AddString(r.Billed)
		}
	}
	if bad := ck.Row(r); len(bad) > 0 {
		a.bad++
		if a.firstBad == "" {
			a.firstBad = strings.Join(bad, "; ")
		}
	}
}

func strs(m map[string]*decimal.Sum) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.String()
	}
	return out
}

func (a *accum) totals() map[string]map[string]string {
	return map[string]map[string]string{"BilledCost": strs(a.billed), "EffectiveCost": strs(a.effective)}
}

func (a *accum) commitmentSums() map[string]map[string]Commitment {
	out := map[string]map[string]Commitment{}
	for order, byCur := range a.commit {
		out[order] = map[string]Commitment{}
		for cur, s := range byCur {
			out[order][cur] = Commitment{Used: s[0].String(), Unused: s[1].String(), Purchases: s[2].String()}
		}
	}
	return out
}

// checks are the invariants of a built partition: Σ BilledCost = the actual partition's cost and
// Σ EffectiveCost = the amortized partition's cost, per currency, exactly; every row conforms to
// the column table.
func (a *accum) checks(in map[metric.Metric]*inputState) []Check {
	return []Check{
		reconcile("BilledCost = actualcost cost", strs(a.billed), in[metric.ActualCost].Cost),
		reconcile("EffectiveCost = amortizedcost cost", strs(a.effective), in[metric.AmortizedCost].Cost),
		{Name: "rows conform to the FOCUS " + Version + " column table", OK: a.bad == 0, Detail: badDetail(a.bad, a.firstBad)},
	}
}

func badDetail(n int64, first string) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d rows break it; first: %s", n, first)
}

// reconcile compares two per-currency sums exactly; zero sums and missing currencies are equal.
func reconcile(name string, got, want map[string]string) Check {
	c := Check{Name: name, OK: true}
	curs := map[string]bool{}
	for k := range got {
		curs[k] = true
	}
	for k := range want {
		curs[k] = true
	}
	keys := make([]string, 0, len(curs))
	for k := range curs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var diffs []string
	for _, cur := range keys {
		g, _ := decimal.Parse(orZero(got[cur]))
		w, _ := decimal.Parse(orZero(want[cur]))
		if g.Rat().Cmp(w.Rat()) != 0 {
			diffs = append(diffs, fmt.Sprintf("%s: %s vs %s", cur, orZero(got[cur]), orZero(want[cur])))
		}
	}
	if len(diffs) > 0 {
		c.OK, c.Detail = false, strings.Join(diffs, "; ")
	}
	return c
}

// write streams the FOCUS rows of both inputs into the staged part (nothing is written when
// there are no rows). Memory: one line and the gzip and upload buffers.
func (b *Builder) write(ctx context.Context, p period.Period, in map[metric.Metric]*inputState, staged string, gz bool) (*accum, error) {
	spec, err := LoadSpec()
	if err != nil {
		return nil, err
	}
	ck, err := NewChecker(spec)
	if err != nil {
		return nil, err
	}
	acc := &accum{from: map[metric.Metric]int64{}, billed: map[string]*decimal.Sum{}, effective: map[string]*decimal.Sum{},
		commit: map[string]map[string]*[3]decimal.Sum{}}
	pr, pw := io.Pipe()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(pw, h)}
	putDone := make(chan error, 1)
	var put bool
	startPut := func() {
		put = true
		go func() {
			_, err := b.st.Put(ctx, staged, pr, &store.PutOptions{ContentType: "application/x-ndjson"})
			pr.CloseWithError(err)
			putDone <- err
		}()
	}
	var out io.Writer = cw
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(cw)
		out = zw
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	var line []byte
	werr := func() error {
		err := b.eachRow(ctx, p, in, func(row *Row, mt metric.Metric) error {
			if !put {
				startPut()
			}
			acc.add(row, mt, ck)
			line = append(row.AppendJSON(line[:0]), '\n')
			_, err := bw.Write(line)
			return err
		})
		if err != nil {
			return err
		}
		if !put {
			return nil // no rows: no part
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if zw != nil {
			return zw.Close()
		}
		return nil
	}()
	pw.CloseWithError(werr)
	if put {
		if err := <-putDone; err != nil && werr == nil {
			werr = fmt.Errorf("writing %s: %w", staged, err)
		}
	}
	if werr != nil {
		return nil, werr
	}
	acc.bytes, acc.sha = cw.n, hex.EncodeToString(h.Sum(nil))
	return acc, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// eachRow converts the records of the inputs' parts (amortized, then actual) and hands fn each
// row the dataset takes, with the metric it came from.
func (b *Builder) eachRow(ctx context.Context, p period.Period, in map[metric.Metric]*inputState, fn func(*Row, metric.Metric) error) error {
	per := Period{Start: p.Start(), End: p.End()}
	for _, mt := range inputs {
		st := in[mt]
		for _, bl := range st.m.Blobs {
			err := b.readPart(ctx, st, bl, func(raw []byte) error {
				row, ok, err := Convert(raw, mt, per)
				if err != nil || !ok {
					return err
				}
				return fn(row, mt)
			})
			if err != nil {
				return fmt.Errorf("reading %s: %w", bl.BlobName, err)
			}
		}
	}
	return nil
}

// readPart streams the records of one input part to fn, checking that the part is the one the
// manifest lists (its runid metadata and SHA-256): a part replaced by a newer run of the input is
// ErrInputChanged.
func (b *Builder) readPart(ctx context.Context, st *inputState, bl manifest.Blob, fn func([]byte) error) error {
	rc, props, err := b.st.Get(ctx, bl.BlobName)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("part is gone: %w", ErrInputChanged)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	if id := props.Metadata[store.MetaRunID]; id != st.RunID {
		return fmt.Errorf("part is from run %q, the manifest from %q: %w", id, st.RunID, ErrInputChanged)
	}
	got, err := verify.ReadPart(rc, st.m.Compression == "gzip", fn)
	if err != nil {
		return err
	}
	if got.SHA256 != bl.SHA256 {
		return fmt.Errorf("sha256 %s, manifest says %s: %w", got.SHA256, bl.SHA256, ErrInputChanged)
	}
	return nil
}

// publish moves the staged part to its live name, deletes live parts the new build does not
// have, writes the manifest last and clears the run folder (the raw trees' protocol).
func (b *Builder) publish(ctx context.Context, rel, staged, partName, ext, runDir string, m *Manifest) error {
	dir := b.join(rel)
	keep := map[string]bool{}
	if len(m.Blobs) > 0 {
		meta := map[string]string{store.MetaRunID: m.RunInfo.RunID, "rows": strconv.FormatInt(m.DataRowCount, 10), "sha256": m.Blobs[0].SHA256}
		ct := "application/x-ndjson"
		if strings.HasSuffix(ext, ".gz") {
			ct = "application/gzip"
		}
		if err := b.st.Move(ctx, staged, path.Join(dir, partName), &store.PutOptions{Metadata: meta, ContentType: ct}); err != nil {
			return fmt.Errorf("publishing focus part: %w", err)
		}
		keep[path.Join(dir, partName)] = true
	}
	var stale []string
	err := b.st.List(ctx, dir+"/", func(it store.Item) error {
		if strings.HasPrefix(path.Base(it.Name), "part-") && !keep[it.Name] {
			stale = append(stale, it.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing live focus parts: %w", err)
	}
	for _, n := range stale {
		if err := b.st.Delete(ctx, n); err != nil {
			return fmt.Errorf("removing stale focus part %s: %w", n, err)
		}
	}
	body, err := jsonIndent(m)
	if err != nil {
		return err
	}
	if _, err := b.st.Put(ctx, b.join(rel, manifest.FileName), bytes.NewReader(body), &store.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("writing focus manifest: %w", err)
	}
	b.deleteTree(ctx, runDir+"/")
	return nil
}

func (b *Builder) readBlob(ctx context.Context, name string) ([]byte, error) {
	body, err := store.ReadSmall(ctx, b.st, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return body, nil
}

func (b *Builder) deleteTree(ctx context.Context, prefix string) {
	var names []string
	_ = b.st.List(ctx, prefix, func(it store.Item) error {
		names = append(names, it.Name)
		return nil
	})
	for _, n := range names {
		if err := b.st.Delete(ctx, n); err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Str("blob", n).Msg("cleaning focus run folder")
		}
	}
}

func jsonIndent(m *Manifest) ([]byte, error) {
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding focus manifest: %w", err)
	}
	return body, nil
}

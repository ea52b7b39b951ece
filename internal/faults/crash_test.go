package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/testutil"
)

// Crash test sizes. The handler exports the previous month of a department for two metrics
// (two partitions of 28–31 one-day parts) from small pages, replacing an earlier export of the
// same month whose data the API has since restated (more rows per day), so a reader can tell
// the two exports' days apart.
const (
	crashRecordsOld  = 3
	crashRecordsNew  = 4
	crashPageSize    = 5
	crashPageLatency = 25 * time.Millisecond
	// crashLeaseSeconds is the partition lease (USAGE_EXPORT_LEASE_SECONDS): Blob Storage's
	// shortest, so a killed writer's lease expires within 15 s and it is renewed every 5 s.
	crashLeaseSeconds = 15
	// crashSlowLatency makes the lease-renewal point's export outlast the first renewal
	// (at a third of the lease): 248 requests, 4 at a time, take at least 9 s.
	crashSlowLatency = 150 * time.Millisecond
	// runLimit bounds one handler run; restartFor bounds the restarts after the last kill
	// (with Azurite a dead writer's lease holds the partition until it expires).
	runLimit   = 4 * time.Minute
	restartFor = 4 * time.Minute
	// pollEvery is the store polling interval of the staged-parts trigger.
	pollEvery = 10 * time.Millisecond
	// localParallel is how many local crash points run at once (the machine has 2 cores).
	localParallel = 2
)

var crashMetrics = []string{"actualcost", "amortizedcost"}

// trigger decides when a run of the handler is killed.
type trigger struct {
	page    int64   // hold the n-th usageDetails request of the run
	half    bool    // … after half of its body was sent
	staged  int     // once at least n parts are checkpointed (all partitions)
	elapsed float64 // after this fraction of an uninterrupted export's duration
	blobOp  string  // Azurite: hold the n-th storage request of this kind (blobOp)
	blobN   int64
}

func (k trigger) String() string {
	switch {
	case k.half:
		return fmt.Sprintf("page request %d half sent", k.page)
	case k.page > 0:
		return fmt.Sprintf("page request %d held", k.page)
	case k.staged > 0:
		return fmt.Sprintf("after %d parts checkpointed", k.staged)
	case k.elapsed > 0:
		return fmt.Sprintf("at %.0f%% of an export's time", k.elapsed*100)
	case k.blobOp != "":
		return fmt.Sprintf("%s #%d held", k.blobOp, k.blobN)
	}
	return "?"
}

// crashPoint is one crash test: the kills, in order, then restarts until the export is done.
type crashPoint struct {
	what    string // the moment aimed at, for the report
	azurite bool
	latency time.Duration // page latency; 0 = crashPageLatency
	kills   []trigger
}

// crashWorld is what every crash point shares: the binary, the scope and period, the previous
// export (a local template), and the figures of an uninterrupted export.
type crashWorld struct {
	bin      string
	token    string
	scope    scope.Scope
	period   period.Period
	prefix   string
	dirs     map[string]string // metric → live partition folder
	old      *sandbox.Server
	template string
	oldDays  map[string]map[string]int // folder → day → rows of the previous export
	truth    map[string]sandbox.Truth  // metric → ground truth of the restated data
	fullReqs int64                     // usageDetails requests of an uninterrupted export
	full     map[string]int64          // … per metric
	fullTime time.Duration
	chunks   int
}

var (
	worldOnce sync.Once
	world     *crashWorld
	worldErr  error
	localSem  = make(chan struct{}, localParallel)
)

// crashToken is the sandbox bearer token the handler gets through USAGE_EXPORT_TOKEN.
const crashToken = "faults-crash-token"

// getWorld prepares the crash world once: builds the handler, exports the previous month from
// the original data into a template store, and times an uninterrupted export of the restated
// data.
func getWorld(t *testing.T) *crashWorld {
	t.Helper()
	bin := testutil.HandlerBinary(t)
	worldOnce.Do(func() { world, worldErr = newWorld(t, bin) })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return world
}

func newWorld(t *testing.T, bin string) (*crashWorld, error) {
	now := time.Now().UTC()
	w := &crashWorld{
		bin: bin, token: crashToken, scope: departmentScope, period: period.Of(now).Add(-1), prefix: "usage",
		dirs: map[string]string{}, oldDays: map[string]map[string]int{}, truth: map[string]sandbox.Truth{},
	}
	w.chunks = w.period.Days()
	for _, m := range crashMetrics {
		p := export.Partition{Scope: w.scope, Period: w.period, Metric: metric.Metric(m)}
		w.dirs[m] = w.prefix + "/" + p.RelPath()
	}
	// The sandboxes use the real clock: the handler plans with time.Now.
	old, err := sandbox.New(&sandbox.Options{RecordsPerDay: crashRecordsOld, PageSize: crashPageSize, Token: w.token})
	if err != nil {
		return nil, err
	}
	if err := old.Start(); err != nil {
		return nil, err
	}
	w.old = old // stopped with the process: it serves every point's previous export
	// The template lives beside the built binary and goes with it at the end.
	tmp := filepath.Join(filepath.Dir(bin), "template")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, err
	}
	w.template = tmp
	if code, out := w.runOnce(t, old.URL(), w.localEnv(tmp)); code != 0 {
		return nil, fmt.Errorf("previous export: exit %d: %s", code, out)
	}
	st, err := store.NewLocal(tmp)
	if err != nil {
		return nil, err
	}
	for _, dir := range w.dirs {
		if w.oldDays[dir], err = dayCounts(context.Background(), st, dir); err != nil {
			return nil, fmt.Errorf("previous export: %w", err)
		}
	}
	sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: crashRecordsNew, PageSize: crashPageSize})
	if err != nil {
		return nil, err
	}
	for _, m := range crashMetrics {
		if w.truth[m], err = sb.GroundTruthVersion(w.scope, w.period, m, apiVersion); err != nil {
			return nil, err
		}
	}
	sb.Close()
	return w, nil
}

// env is the handler's environment for one store target (USAGE_EXPORT_OUTPUT_DIR=…, or the
// connection string and container).
func (w *crashWorld) env(endpoint string, target []string) []string {
	return append([]string{
		"USAGE_EXPORT_SCOPES=" + w.scope.String(),
		"USAGE_EXPORT_MANAGEMENT_ENDPOINT=" + endpoint,
		"USAGE_EXPORT_TOKEN=" + w.token,
		"USAGE_EXPORT_API_VERSION=" + apiVersion,
		"USAGE_EXPORT_EXPAND=none",
		// The crash points and the second writer are pinned to usageDetails page requests; the
		// automatic source could choose a Cost Details report instead.
		"USAGE_EXPORT_SOURCE=usageDetails",
		"USAGE_EXPORT_METRIC=" + strings.Join(crashMetrics, ","),
		"USAGE_EXPORT_PREFIX=" + w.prefix,
		"USAGE_EXPORT_PART_DAYS=1",
		"USAGE_EXPORT_RATE_PER_SCOPE=100000",
		"USAGE_EXPORT_RATE_PER_TENANT=100000",
		// Debug logs every request line (azcore's, bridged), so the leak check sees them all.
		"USAGE_EXPORT_LOG_LEVEL=debug",
		"USAGE_EXPORT_LEASE_SECONDS=" + strconv.Itoa(crashLeaseSeconds),
	}, target...)
}

func (w *crashWorld) localEnv(dir string) []string {
	return []string{"USAGE_EXPORT_OUTPUT_DIR=" + dir}
}

func (w *crashWorld) blobEnv(blobEndpoint, container string) []string {
	cs := "DefaultEndpointsProtocol=http;AccountName=" + azurite.AccountName + ";AccountKey=" + azurite.AccountKey +
		";BlobEndpoint=" + blobEndpoint + ";"
	return []string{"USAGE_EXPORT_STORAGE_CONNECTION=" + cs, "USAGE_EXPORT_CONTAINER=" + container}
}

func (w *crashWorld) args() []string {
	return []string{"export", "--periods", w.period.String(), "--progress", "none"}
}

// runOnce runs one export to its end and returns the exit code and stderr's tail.
func (w *crashWorld) runOnce(t *testing.T, endpoint string, target []string) (int, string) {
	p := startHandler(t, w.bin, w.env(endpoint, target), w.args())
	if !p.wait(runLimit) {
		return -1, "timed out: " + p.tail(2000)
	}
	return p.code, p.tail(2000)
}

// copyTree copies the regular files and folders of src into dst (which exists).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// leaks returns a problem for each secret found in a process's output, and for a continuation
// token that was logged without redaction.
func leaks(out string, secrets ...string) []string {
	var problems []string
	for _, sec := range secrets {
		if strings.Contains(out, sec) {
			problems = append(problems, fmt.Sprintf("a secret (%.6s…) appears in the handler's output", sec))
		}
	}
	for _, m := range skiptokenValue.FindAllString(out, 3) {
		problems = append(problems, "an unredacted continuation token in the handler's output: "+m)
	}
	return problems
}

// skiptokenValue matches a $skiptoken query value other than the redaction marker.
var skiptokenValue = regexp.MustCompile(`(?i)skiptoken=(?:[^R&"\s]|R[^E])[^&"\s]{0,20}`)

// checkpointDoc is the part of a partition checkpoint the tests read.
type checkpointDoc struct {
	RunID string                     `json:"runId"`
	Phase string                     `json:"phase"`
	Parts map[string]json.RawMessage `json:"parts"`
}

type storeView interface {
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
	List(ctx context.Context, prefix string, fn func(store.Item) error) error
}

func readCheckpoint(ctx context.Context, st storeView, name string) (*checkpointDoc, error) {
	rc, _, err := st.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var cp checkpointDoc
	if err := json.NewDecoder(rc).Decode(&cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	return &cp, nil
}

func (w *crashWorld) checkpointName(m string) string {
	p := export.Partition{Scope: w.scope, Period: w.period, Metric: metric.Metric(m)}
	return w.prefix + "/_control/checkpoints/" + p.RelPath() + "/checkpoint.json"
}

// partState is what a crash left of one partition.
type partState struct {
	checkpoint *checkpointDoc
	desc       string
}

// crashState describes the store after a kill, per partition: not started, writing (parts
// checkpointed), publishing (parts live from the new run), manifest written with the cleanup
// pending, or committed.
func (w *crashWorld) crashState(ctx context.Context, st storeView, prevRuns map[string]string) (map[string]partState, error) {
	out := map[string]partState{}
	for _, m := range crashMetrics {
		dir := w.dirs[m]
		cp, err := readCheckpoint(ctx, st, w.checkpointName(m))
		if err != nil {
			return nil, err
		}
		live := ""
		if rc, _, err := st.Get(ctx, dir+"/"+manifest.FileName); err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			if mf, err := manifest.Parse(b); err == nil {
				live = mf.RunInfo.RunID
			}
		}
		var desc string
		switch {
		case cp == nil && live != prevRuns[m]:
			desc = "committed"
		case cp == nil:
			desc = "not started"
		case cp.Phase == "writing":
			desc = fmt.Sprintf("writing, %d/%d parts checkpointed", len(cp.Parts), w.chunks)
		case live == cp.RunID:
			desc = "manifest written, cleanup pending"
		default:
			moved := 0
			err := st.List(ctx, dir+"/", func(it store.Item) error {
				if it.Metadata["runid"] == cp.RunID {
					moved++
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			desc = fmt.Sprintf("publishing, %d/%d parts live", moved, len(cp.Parts))
		}
		out[m] = partState{checkpoint: cp, desc: desc}
	}
	return out, nil
}

func describe(states map[string]partState) string {
	var out []string
	for _, m := range crashMetrics {
		out = append(out, m+" "+states[m].desc)
	}
	return strings.Join(out, "; ")
}

// checkpointed counts the parts recorded in the checkpoints of every partition.
func (w *crashWorld) checkpointed(ctx context.Context, st storeView) int {
	n := 0
	for _, m := range crashMetrics {
		if cp, err := readCheckpoint(ctx, st, w.checkpointName(m)); err == nil && cp != nil {
			n += len(cp.Parts)
		}
	}
	return n
}

// calibrate runs one uninterrupted export of the restated data over a copy of the previous
// export and records its duration and request count, which place the time-based crash points
// and bound the requests a resumed run may make.
func calibrate(t *testing.T, w *crashWorld) error {
	gw := newGateway(t, sandbox.Options{RecordsPerDay: crashRecordsNew, PageSize: crashPageSize, PageLatency: crashPageLatency, Token: w.token})
	dir := t.TempDir()
	if err := copyTree(w.template, dir); err != nil {
		return err
	}
	start := time.Now()
	code, out := w.runOnce(t, gw.url, w.localEnv(dir))
	if code != 0 {
		return fmt.Errorf("uninterrupted export: exit %d: %s", code, out)
	}
	w.fullTime, w.fullReqs, w.full = time.Since(start), gw.requests.Load(), gw.metricRequests()
	st, err := store.NewLocal(dir)
	if err != nil {
		return err
	}
	for _, m := range crashMetrics {
		if _, err := checkExact(context.Background(), st, w.dirs[m]+"/"+manifest.FileName, w.truth[m]); err != nil {
			return fmt.Errorf("uninterrupted export of %s is not exact: %w", m, err)
		}
	}
	t.Logf("uninterrupted export: %s, %d page requests", w.fullTime.Round(time.Millisecond), w.fullReqs)
	return nil
}

var (
	calibrateOnce sync.Once
	calibrateErr  error
)

func calibrated(t *testing.T) *crashWorld {
	t.Helper()
	w := getWorld(t)
	calibrateOnce.Do(func() { calibrateErr = calibrate(t, w) })
	if calibrateErr != nil {
		t.Fatal(calibrateErr)
	}
	return w
}

// localPoints and azuritePoints are the crash points, spread over an export of about 190 page
// requests and 2 × 30 parts: the first request, mid-page and mid-body at many depths, after
// parts were checkpointed, at time fractions, at the very last page, repeated crashes, and, on
// Azurite where the proxy pins each storage step, mid-upload, between upload and checkpoint,
// during the publish moves, between the last move and the manifest, after the manifest and
// during lease renewal.
func localPoints(full int64) []crashPoint {
	frac := func(f float64) int64 { return max(1, int64(float64(full)*f)) }
	return []crashPoint{
		{what: "first API call", kills: []trigger{{page: 1}}},
		{what: "mid-page", kills: []trigger{{page: frac(0.05)}}},
		{what: "mid-page", kills: []trigger{{page: frac(0.15)}}},
		{what: "mid-page", kills: []trigger{{page: frac(0.3)}}},
		{what: "mid-page", kills: []trigger{{page: frac(0.5)}}},
		{what: "mid-page", kills: []trigger{{page: frac(0.7)}}},
		{what: "mid-page", kills: []trigger{{page: frac(0.9)}}},
		{what: "last page", kills: []trigger{{page: full}}},
		{what: "mid-body (part upload streaming)", kills: []trigger{{page: frac(0.02), half: true}}},
		{what: "mid-body (part upload streaming)", kills: []trigger{{page: frac(0.25), half: true}}},
		{what: "mid-body (part upload streaming)", kills: []trigger{{page: frac(0.6), half: true}}},
		{what: "mid-body (part upload streaming)", kills: []trigger{{page: frac(0.95), half: true}}},
		{what: "after a part's checkpoint", kills: []trigger{{staged: 1}}},
		{what: "after parts' checkpoints", kills: []trigger{{staged: 20}}},
		{what: "after parts' checkpoints", kills: []trigger{{staged: 45}}},
		{what: "by time", kills: []trigger{{elapsed: 0.35}}},
		{what: "by time", kills: []trigger{{elapsed: 0.65}}},
		{what: "two crashes in a row", kills: []trigger{{page: frac(0.2)}, {page: frac(0.3)}}},
		{what: "three crashes in a row", kills: []trigger{{page: frac(0.1), half: true}, {page: frac(0.2)}, {page: frac(0.3), half: true}}},
	}
}

func azuritePoints() []crashPoint {
	return []crashPoint{
		// A listing stages its parts' blocks and commits them when it ends (one listing a
		// partition here): the pins count those requests over both partitions.
		{what: "mid-upload of a staged part", azurite: true, kills: []trigger{{blobOp: "PUT staged:block", blobN: 1}}},
		{what: "part uploaded, checkpoint save in flight", azurite: true, kills: []trigger{{blobOp: "PUT checkpoint", blobN: 3}}},
		{what: "publish: first move", azurite: true, kills: []trigger{{blobOp: "PUT part", blobN: 1}}},
		{what: "publish: mid-moves", azurite: true, kills: []trigger{{blobOp: "PUT part", blobN: 2}}},
		{what: "publish: a moved part's staged copy being deleted", azurite: true, kills: []trigger{{blobOp: "DELETE staged", blobN: 1}}},
		{what: "between the last move and the manifest", azurite: true, kills: []trigger{{blobOp: "PUT manifest", blobN: 1}}},
		{what: "after the manifest, before the cleanup", azurite: true, kills: []trigger{{blobOp: "DELETE checkpoint", blobN: 1}}},
		{what: "during lease renewal", azurite: true, latency: crashSlowLatency, kills: []trigger{{blobOp: "PUT lease:lease:renew", blobN: 1}}},
	}
}

// TestCrashPoints kills the handler (`handler export`, a real process) with SIGKILL at spread
// points of an export, restarts it until it exits 0, and compares every partition with the
// sandbox's ground truth, while a reader lists and reads the live partitions in a loop.
func TestCrashPoints(t *testing.T) {
	gate(t)
	w := calibrated(t)
	locals, azurites := localPoints(w.fullReqs), azuritePoints()
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		for i, pt := range locals {
			idx := i + 1
			t.Run(fmt.Sprintf("%02d", idx), func(t *testing.T) {
				t.Parallel()
				localSem <- struct{}{}
				defer func() { <-localSem }()
				runCrashPoint(t, w, idx, pt)
			})
		}
	})
	t.Run("azurite", func(t *testing.T) {
		t.Parallel()
		azuritetest.Start(t)
		for i, pt := range azurites {
			idx := len(locals) + i + 1
			t.Run(fmt.Sprintf("%02d", idx), func(t *testing.T) {
				t.Parallel()
				runCrashPoint(t, w, idx, pt)
			})
		}
	})
}

func runCrashPoint(t *testing.T, w *crashWorld, idx int, pt crashPoint) {
	ctx := context.Background()
	latency := pt.latency
	if latency == 0 {
		latency = crashPageLatency
	}
	gw := newGateway(t, sandbox.Options{RecordsPerDay: crashRecordsNew, PageSize: crashPageSize, PageLatency: latency, Token: w.token})
	var (
		st     storeView
		target []string
		proxy  *blobProxy
		where  = "local"
	)
	if pt.azurite {
		where = "azurite"
		az := azuritetest.Start(t)
		container := fmt.Sprintf("faults-crash-%02d-%d", idx, time.Now().UnixNano()%1_000_000)
		if code, out := w.runOnce(t, w.old.URL(), w.blobEnv(az.BlobEndpoint(), container)); code != 0 {
			t.Fatalf("previous export: exit %d: %s", code, out)
		}
		blob, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: az.ConnectionString(), Container: container})
		if err != nil {
			t.Fatal(err)
		}
		st = blob
		proxy = newBlobProxy(t, az.BlobEndpoint())
		target = w.blobEnv(proxy.url+"/"+azurite.AccountName, container)
	} else {
		dir := t.TempDir()
		if err := copyTree(w.template, dir); err != nil {
			t.Fatal(err)
		}
		local, err := store.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		st = local
		target = w.localEnv(dir)
	}
	env := w.env(gw.url, target)
	prevRuns := map[string]string{}
	for _, m := range crashMetrics {
		run, _, err := liveState(ctx, st, w.dirs[m]+"/"+manifest.FileName)
		if err != nil || run == "" {
			t.Fatalf("previous export of %s: %q %v", m, run, err)
		}
		prevRuns[m] = run
	}
	var dirs []string
	for _, m := range crashMetrics {
		dirs = append(dirs, w.dirs[m])
	}
	rd := startReader(st, dirs)
	defer func() {
		select {
		case <-rd.stop:
		default:
			close(rd.stop)
			<-rd.done
		}
	}()
	name := fmt.Sprintf("point %02d (%s, %s:", idx, where, pt.what)

	// The crashes.
	var procs []*proc
	var states map[string]partState
	var stateDescs []string
	for i, k := range pt.kills {
		fired := make(chan struct{})
		var stopPoll chan struct{}
		// The store- and time-based triggers of a first run get a backstop: the run's last page
		// request is held, so a run that is faster than the calibration cannot finish before
		// its kill (the printed state says where the kill landed).
		var backstop chan struct{}
		if i == 0 && (k.staged > 0 || k.elapsed > 0) {
			h := newHold(w.fullReqs, false)
			gw.setHold(h)
			backstop = h.fired
		}
		switch {
		case k.page > 0:
			h := newHold(k.page, k.half)
			gw.setHold(h)
			fired = h.fired
		case k.blobOp != "":
			h := newHold(k.blobN, false)
			proxy.setHold(k.blobOp, h)
			fired = h.fired
		case k.staged > 0:
			stopPoll = make(chan struct{})
			go func() {
				for {
					if w.checkpointed(ctx, st) >= k.staged {
						close(fired)
						return
					}
					select {
					case <-stopPoll:
						return
					case <-time.After(pollEvery):
					}
				}
			}()
		}
		p := startHandler(t, w.bin, env, w.args())
		procs = append(procs, p)
		var timer <-chan time.Time
		if k.elapsed > 0 {
			timer = time.After(time.Duration(float64(w.fullTime) * k.elapsed))
		}
		label := k.String()
		select {
		case <-fired:
		case <-timer:
		case <-backstop:
			label += " (reached the last page request first)"
		case <-p.done:
		case <-time.After(runLimit):
		}
		if stopPoll != nil {
			close(stopPoll)
		}
		gw.setHold(nil)
		if proxy != nil {
			proxy.setHold("", nil)
		}
		if p.exited() {
			extra := ""
			if proxy != nil {
				extra = "; storage requests: " + proxy.opCounts()
			}
			report(t, kindCrash, false, "%s %s): trigger never reached, the run ended first (exit %d)%s: %s", name, k, p.code, extra, p.tail(500))
			return
		}
		p.kill()
		var err error
		if states, err = w.crashState(ctx, st, prevRuns); err != nil {
			t.Fatalf("reading the state after the kill: %v", err)
		}
		stateDescs = append(stateDescs, label+" → "+describe(states))
	}

	// Restart until the export is done; with Azurite the dead writer's lease makes the first
	// restarts report the partition busy until it expires. A partition's restart cost is the
	// page requests of the runs up to its first one that was not busy (a later run of a
	// partition that is already committed is a new export, not the resume).
	busy := 0
	first := map[string]bool{} // metric → resumed, from its first run that was not busy
	reqs := map[string]int64{} // metric → page requests up to that run
	for deadline := time.Now().Add(restartFor); ; {
		before := gw.metricRequests()
		p := startHandler(t, w.bin, env, w.args())
		procs = append(procs, p)
		if !p.wait(runLimit) {
			report(t, kindCrash, false, "%s %s): restart did not finish in %s", name, strings.Join(stateDescs, " / "), runLimit)
			return
		}
		after := gw.metricRequests()
		s, err := p.summary()
		if err != nil {
			t.Logf("restart stderr:\n%s", p.stderr.String())
			report(t, kindCrash, false, "%s %s): restart exit %d without a summary: %s", name, strings.Join(stateDescs, " / "), p.code, p.tail(500))
			return
		}
		allowedBusy := true
		for _, r := range s.Partitions {
			if _, done := first[r.Metric]; !done {
				reqs[r.Metric] += after[r.Metric] - before[r.Metric]
				if r.Status != string(export.StatusBusy) {
					first[r.Metric] = r.Resumed
				}
			}
			if r.Status != string(export.StatusBusy) && r.Status != string(export.StatusCommitted) {
				allowedBusy = false
			}
		}
		if p.code == 0 {
			break
		}
		if p.code != 3 || !allowedBusy || time.Now().After(deadline) {
			report(t, kindCrash, false, "%s %s): restart exit %d: %s", name, strings.Join(stateDescs, " / "), p.code, p.tail(800))
			return
		}
		busy++
		time.Sleep(busyRetry)
	}
	rd.finish()

	// The verdict: resumed where a checkpoint was left, without starting over, exactly the
	// ground truth, and the reader never saw a partial or duplicated partition.
	var problems []string
	parts := 0
	var restartReqs, fullReqs int64
	for _, m := range crashMetrics {
		cp := states[m].checkpoint
		if cp != nil && !first[m] {
			problems = append(problems, m+": a checkpoint was left but the restart did not resume it")
		}
		if cp != nil && len(cp.Parts) > 0 {
			parts += len(cp.Parts)
			if reqs[m] >= w.full[m] {
				problems = append(problems, fmt.Sprintf("%s: the restart made %d page requests, an uninterrupted export %d: it started over", m, reqs[m], w.full[m]))
			}
		}
		restartReqs += reqs[m]
		fullReqs += w.full[m]
	}
	rows := 0
	newDays := map[string]map[string]int{}
	for _, m := range crashMetrics {
		n, err := checkExact(ctx, st, w.dirs[m]+"/"+manifest.FileName, w.truth[m])
		if err != nil {
			problems = append(problems, m+": "+err.Error())
		}
		rows += n
		if newDays[w.dirs[m]], err = dayCounts(ctx, st, w.dirs[m]); err != nil {
			problems = append(problems, m+": "+err.Error())
		}
		if cp, err := readCheckpoint(ctx, st, w.checkpointName(m)); err != nil || cp != nil {
			problems = append(problems, fmt.Sprintf("%s: checkpoint left after the export finished (%v)", m, err))
		}
		// The manifest's "previous" names the export this one replaced: the one live before
		// the crash when the killed run was resumed, and never the run itself.
		if s, err := readPartition(ctx, st, w.dirs[m]+"/"+manifest.FileName); err == nil {
			pv, self := s.manifest.Previous, s.manifest.RunInfo.RunID
			switch {
			case pv == nil:
				problems = append(problems, m+": manifest has no previous export")
			case pv.RunID == self:
				problems = append(problems, fmt.Sprintf("%s: manifest names its own run %s as the previous export", m, self))
			case states[m].checkpoint != nil && states[m].checkpoint.RunID == self && pv.RunID != prevRuns[m]:
				problems = append(problems, fmt.Sprintf("%s: manifest names %s as the previous export, want %s", m, pv.RunID, prevRuns[m]))
			}
		}
	}
	problems = append(problems, rd.check(w.oldDays, newDays)...)
	for _, p := range procs {
		problems = append(problems, leaks(p.stdout.String()+p.stderr.String(), w.token, azurite.AccountKey)...)
	}
	wait := ""
	if busy > 0 {
		wait = fmt.Sprintf(", %d busy answers while the dead writer's lease expired", busy)
	}
	desc := fmt.Sprintf("%s %s)", name, strings.Join(stateDescs, " / "))
	if len(problems) > 0 {
		sort.Strings(problems)
		report(t, kindCrash, false, "%s: NOT exact: %s", desc, strings.Join(problems, "; "))
		return
	}
	resumed := "restarted fresh"
	if parts > 0 {
		resumed = fmt.Sprintf("resumed with %d/%d page requests", restartReqs, fullReqs)
	} else if states[crashMetrics[0]].checkpoint != nil || states[crashMetrics[1]].checkpoint != nil {
		resumed = "resumed"
	}
	rd.mu.Lock()
	passes := rd.passes
	rd.mu.Unlock()
	report(t, kindCrash, true, "%s: exact (%d rows in %d partitions; %s%s; reader: %d passes, never partial or duplicated)",
		desc, rows, len(crashMetrics), resumed, wait, passes)
}

// TestLeaks checks the leak detector the crash and hostile suites rely on.
func TestLeaks(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want int
	}{
		{"clean", `GET http://127.0.0.1:1/x?$skiptoken=REDACTED&skiptokenver=v1 Authorization: REDACTED`, 0},
		{"token", `error: 401 with bearer s3cret-token`, 1},
		{"account key", `connection AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==`, 1},
		{"skiptoken", `GET http://127.0.0.1:1/x?$skiptoken=AQAAAB2f&id=1`, 1},
		{"skiptoken in JSON", `{"url":"…?%24skipToken=Zm9v"}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := leaks(tt.out, "s3cret-token", azurite.AccountKey); len(got) != tt.want {
				t.Errorf("leaks(%q) = %q, want %d problems", tt.out, got, tt.want)
			}
		})
	}
}

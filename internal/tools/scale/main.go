// Command scale measures the queue-driven scale-out of `make scale`.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/hostqueue"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
	"github.com/usage-export/usage-export/internal/workqueue"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type params struct {
	handler     string
	instances   int
	scopes      int
	periods     int
	tenant      int
	perDay      int
	pageSize    int
	pageLatency time.Duration
	killAfter   time.Duration
	alone       bool
	partDays    int
	concurrency int
}

func run() error {
	var p params
	flag.StringVar(&p.handler, "handler", ".build/scale-handler", "the handler binary")
	flag.IntVar(&p.instances, "instances", 3, "handler processes")
	flag.IntVar(&p.scopes, "scopes", 6, "sandbox scopes")
	flag.IntVar(&p.periods, "periods", 4, "billing periods per scope (ending last month)")
	flag.IntVar(&p.tenant, "tenant", 120, "tenant calls per minute: the sandbox's limit and the configured budget")
	flag.IntVar(&p.partDays, "part-days", 3, "usage days per part file")
	flag.IntVar(&p.concurrency, "concurrency", 1, "chunks in flight per partition")
	flag.IntVar(&p.perDay, "records-per-day", 1, "sandbox records per subscription per day")
	flag.IntVar(&p.pageSize, "page-size", 4, "sandbox page size (one API call per page)")
	flag.DurationVar(&p.pageLatency, "page-latency", 5*time.Second, "sandbox latency before each page")
	flag.DurationVar(&p.killAfter, "kill-after", 20*time.Second, "SIGKILL a worker this long after the job started, mid-partition")
	flag.BoolVar(&p.alone, "compare-alone", true, "also run the same job on one instance alone")
	flag.Parse()
	ctx, stop := signalContext()
	defer stop()

	az, err := azurite.Start(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting Azurite (run make deps): %w", err)
	}
	defer func() { _ = az.Stop() }()

	res, err := scenario(ctx, az, p, p.instances, true, "scale")
	if err != nil {
		return err
	}
	res.print(os.Stdout, p)
	if p.alone {
		alone, err := scenario(ctx, az, p, 1, false, "alone")
		if err != nil {
			return err
		}
		fmt.Printf("one instance alone        : %s, exact %d/%d, tenant peak %d/min, wall %.1f s\n",
			alone.state, alone.exact, alone.parts, alone.peak, alone.wall.Seconds())
		fmt.Printf("wall time                 : %.1f s with %d instances vs %.1f s alone (%.2fx)\n",
			res.wall.Seconds(), p.instances, alone.wall.Seconds(), alone.wall.Seconds()/res.wall.Seconds())
	}
	if res.exact != res.parts || res.dups != 0 || res.poison != 0 || res.peak > p.tenant {
		return errors.New("a figure is off (see above)")
	}
	return nil
}

// result is one scenario's figures.
type result struct {
	state                    string
	parts, exact, dups       int
	poison                   int
	throttled                int64
	peak                     int
	calls                    int
	wall                     time.Duration
	killed                   string
	invocations              map[string]int
	lost, retried, delivered int
	workers                  int
}

func (r *result) print(w io.Writer, p params) {
	fmt.Fprintf(w, "instances                 : %d handler processes, host.json batchSize 4 / newBatchThreshold 2\n", p.instances)
	fmt.Fprintf(w, "job                       : %d partitions across %d sandbox scopes, %s\n", r.parts, p.scopes, r.state)
	fmt.Fprintf(w, "SIGKILL                   : %s\n", r.killed)
	fmt.Fprintf(w, "partitions exact          : %d/%d (verify clean, rows and record-set hash equal the ground truth)\n", r.exact, r.parts)
	fmt.Fprintf(w, "duplicates                : %d\n", r.dups)
	fmt.Fprintf(w, "poison                    : %d\n", r.poison)
	fmt.Fprintf(w, "throttled calls (429)     : %d of %d API calls\n", r.throttled, r.calls)
	fmt.Fprintf(w, "tenant calls/min, highest : %d seen by the sandbox, configured budget %d\n", r.peak, p.tenant)
	fmt.Fprintf(w, "invocations               : %v (%d deleted, %d retried, %d lost with the killed worker); %d worker processes recorded partitions\n",
		r.invocations, r.delivered, r.retried, r.lost, r.workers)
	fmt.Fprintf(w, "wall time                 : %.1f s\n", r.wall.Seconds())
}

// callLog records the time of every billing API call the sandbox answers.
type callLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *callLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(strings.ToLower(r.URL.Path), "/providers/microsoft.consumption/") {
			c.mu.Lock()
			c.times = append(c.times, time.Now())
			c.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// peak is the most calls in any minute.
func (c *callLog) peak() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := append([]time.Time(nil), c.times...)
	sort.Slice(t, func(i, j int) bool { return t[i].Before(t[j]) })
	best := 0
	for i := range t {
		n := sort.Search(len(t), func(j int) bool { return !t[j].Before(t[i].Add(time.Minute)) }) - i
		best = max(best, n)
	}
	return best, len(t)
}

// instance is a handler process.
type instance struct {
	name string
	cmd  *exec.Cmd
	base string
	done chan struct{}
	stop context.CancelFunc // stops its listener
}

func scenario(ctx context.Context, az *azurite.Server, p params, n int, kill bool, tag string) (*result, error) {
	now := time.Now().UTC()
	c, stop, err := newCluster(ctx, az, p, now, tag)
	if err != nil {
		return nil, err
	}
	defer stop()
	for i := 1; i <= n; i++ {
		in, err := c.start(ctx, fmt.Sprintf("instance-%d", i))
		if err != nil {
			return nil, err
		}
		c.insts = append(c.insts, in)
	}

	last := period.Of(now).Add(-1)
	first := last.Add(-(p.periods - 1))
	body := fmt.Sprintf(`{"from":%q,"to":%q,"metric":"actualcost"}`, first, last)
	began := time.Now()
	j, err := api(ctx, c.insts[0].base, "POST", "", body)
	if err != nil {
		return nil, err
	}
	res := &result{parts: len(j.Partitions), killed: "none"}
	if j, err = c.await(ctx, j, res, began, kill); err != nil {
		return nil, err
	}
	res.wall = time.Since(began)
	res.state = j.State
	if err := c.tally(ctx, j, res); err != nil {
		return nil, err
	}
	if res.exact != res.parts {
		fmt.Fprintf(os.Stderr, "handler output (last 4 KiB):\n%s\n", tail(c.logs.String(), 4096))
	}
	return res, nil
}

// cluster is one scenario's world: the sandbox behind a call log, the store and the work queue
// in Azurite, the host queue, and the handler instances it delivers to with their environment.
type cluster struct {
	p     params
	sb    *sandbox.Server
	calls *callLog
	st    *store.Blob
	host  *hostqueue.Host
	env   []string
	insts []*instance
	logMu sync.Mutex
	logs  strings.Builder // the instances' output
}

// newCluster starts the sandbox and sets up the store, the queue and the host for the first
// p.scopes subscriptions; stop ends the instances, then the sandbox.
func newCluster(ctx context.Context, az *azurite.Server, p params, now time.Time, tag string) (*cluster, func(), error) {
	sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: p.perDay, PageSize: p.pageSize, PageLatency: p.pageLatency,
		RatePerTenant: p.tenant, RatePerScope: 30, Now: func() time.Time { return now }})
	if err != nil {
		return nil, nil, err
	}
	c := &cluster{p: p, sb: sb, calls: &callLog{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: c.calls.wrap(sb.Handler())}
	go func() { _ = srv.Serve(ln) }()
	stop := func() {
		for _, in := range c.insts {
			in.stop()
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			<-in.done
		}
		srv.Close()
	}
	container := fmt.Sprintf("scale-%s-%d", tag, now.UnixNano()%1_000_000)
	if err := c.setup(ctx, az, "http://"+ln.Addr().String(), container); err != nil {
		stop()
		return nil, nil, err
	}
	return c, stop, nil
}

// setup creates the store and the work queue in container and the host queue, and sets the
// instances' environment.
func (c *cluster) setup(ctx context.Context, az *azurite.Server, endpoint, container string) error {
	var names []string
	for _, s := range c.sb.Scopes() {
		if s.Kind == scope.Subscription && len(names) < c.p.scopes {
			names = append(names, s.String())
		}
	}
	if len(names) < c.p.scopes {
		return fmt.Errorf("the sandbox has %d subscriptions, want %d", len(names), c.p.scopes)
	}
	var err error
	c.st, err = store.NewBlob(ctx, &store.BlobOptions{ConnectionString: az.ConnectionString(), Container: container})
	if err != nil {
		return err
	}
	q, err := workqueue.New(workqueue.Settings{ConnectionString: az.ConnectionString(), Queue: container}, nil, nil)
	if err != nil {
		return err
	}
	if err := q.Ensure(ctx); err != nil {
		return err
	}
	c.host = hostqueue.New(hostqueue.Options{Work: q.Work(), Poison: q.Poison(), Function: "UsageExportWorker", Binding: "item",
		BatchSize: 4, NewBatchThreshold: 2, Visibility: 10 * time.Second, RetryDelay: 5 * time.Second, MaxDequeueCount: workqueue.MaxDequeueCount})
	c.env = append(os.Environ(),
		config.EnvScopes+"="+strings.Join(names, ","),
		config.EnvManagementEndpoint+"="+endpoint,
		config.EnvToken+"="+c.sb.Token(),
		config.EnvStorageConnection+"="+az.ConnectionString(),
		config.EnvContainer+"="+container,
		config.EnvRatePerScope+"=30",
		config.EnvRatePerTenant+"="+strconv.Itoa(c.p.tenant),
		config.EnvExpand+"=none",
		config.EnvLogLevel+"=warn",
		config.EnvLeaseSeconds+"=15",
		config.EnvPartDays+"="+strconv.Itoa(c.p.partDays),
		config.EnvConcurrency+"="+strconv.Itoa(c.p.concurrency),
		workqueue.EnvConnection+"="+az.ConnectionString(),
		workqueue.EnvQueue+"="+container,
	)
	return nil
}

// start runs a handler instance called name, waits until it answers, and has the host queue
// deliver to it until it exits.
func (c *cluster) start(ctx context.Context, name string) (*instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logw := writerFunc(func(b []byte) (int, error) { c.logMu.Lock(); defer c.logMu.Unlock(); return c.logs.Write(b) })
	cmd := exec.Command(c.p.handler)
	cmd.Env = append(append([]string(nil), c.env...), "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port), "CONTAINER_NAME="+name)
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	in := &instance{name: name, cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(in.done) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(25 * time.Millisecond) {
		if resp, err := http.Get(in.base + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready in 30 s", name)
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	in.stop = cancel
	go func() {
		select {
		case <-in.done:
			cancel()
		case <-lctx.Done():
		}
	}()
	go c.host.Listen(lctx, name, in.base)
	return in, nil
}

// await polls job j until it ends; with kill, once p.killAfter has passed it kills the last
// instance while that exports a partition, and restarts it 2 s later (said in res.killed).
func (c *cluster) await(ctx context.Context, j *job, res *result, began time.Time, kill bool) (*job, error) {
	killed := !kill
	for !final(j.State) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(500 * time.Millisecond)
		var err error
		if j, err = api(ctx, c.insts[0].base, "GET", j.ID, ""); err != nil {
			return nil, err
		}
		if !killed && time.Since(began) > c.p.killAfter {
			if killed, err = c.killExporting(ctx, j, res, began); err != nil {
				return nil, err
			}
		}
		if time.Since(began) > 20*time.Minute {
			return nil, fmt.Errorf("job %s not finished in 20 minutes: %s", j.ID, j.State)
		}
	}
	return j, nil
}

// killExporting kills the last instance if it is exporting one of j's partitions (rows written
// already), restarts it 2 s later, and reports whether it did.
func (c *cluster) killExporting(ctx context.Context, j *job, res *result, began time.Time) (bool, error) {
	victim := c.insts[len(c.insts)-1]
	for _, pt := range j.Partitions {
		if pt.Status != "running" || pt.Rows == 0 || pt.Worker == nil || pt.Worker.Instance != victim.name {
			continue
		}
		_ = victim.cmd.Process.Signal(syscall.SIGKILL)
		<-victim.done
		res.killed = fmt.Sprintf("%s at %.1f s while it exported %s %s (%d rows written); restarted 2 s later",
			victim.name, time.Since(began).Seconds(), pt.Scope, pt.BillingPeriod, pt.Rows)
		time.Sleep(2 * time.Second)
		in, err := c.start(ctx, victim.name)
		if err != nil {
			return true, err
		}
		c.insts[len(c.insts)-1] = in
		return true, nil
	}
	return false, nil
}

// tally checks every partition of the finished job j against the sandbox (exact, duplicates)
// and adds the workers, the host queue's and the sandbox's counts to res.
func (c *cluster) tally(ctx context.Context, j *job, res *result) error {
	workers := map[string]bool{}
	for _, pt := range j.Partitions {
		if pt.Worker != nil {
			workers[pt.Worker.Process] = true
		}
		sc, err := scope.Parse(pt.Scope)
		if err != nil {
			return err
		}
		per, err := period.Parse(pt.BillingPeriod)
		if err != nil {
			return err
		}
		ok, dups, err := exact(ctx, c.st, c.sb, export.Partition{Scope: sc, Period: per, Metric: metric.Metric(pt.Metric)})
		if err != nil {
			return err
		}
		if ok {
			res.exact++
		}
		res.dups += dups
	}
	res.workers = len(workers)
	hs := c.host.Stats()
	res.invocations, res.lost, res.retried, res.delivered = hs.ByInstance, hs.Lost, hs.Retried, hs.Deleted
	res.poison = hs.Poisoned
	res.throttled = c.sb.Stats().Throttled
	res.peak, res.calls = c.calls.peak()
	return nil
}

// exact checks a partition against the ground truth and counts duplicate lines.
func exact(ctx context.Context, st *store.Blob, sb *sandbox.Server, part export.Partition) (bool, int, error) {
	name := config.DefaultPrefix + "/" + part.RelPath() + "/" + manifest.FileName
	rep, err := verify.Partition(ctx, st, name)
	if err != nil {
		return false, 0, err
	}
	rc, _, err := st.Get(ctx, name)
	if err != nil {
		return false, 0, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	m, err := manifest.Parse(b)
	if err != nil {
		return false, 0, err
	}
	truth, err := sb.GroundTruth(part.Scope, part.Period, string(part.Metric))
	if err != nil {
		return false, 0, err
	}
	var sums []string
	for _, bl := range m.Blobs {
		h, err := lineHashes(ctx, st, bl.BlobName)
		if err != nil {
			return false, 0, err
		}
		sums = append(sums, h...)
	}
	hash := sandbox.HashDigests(sums) // sorts sums
	dups := 0
	for i := 1; i < len(sums); i++ {
		if sums[i-1] == sums[i] {
			dups++
		}
	}
	ok := rep.OK() && m.Status == manifest.StatusCommitted && m.DataRowCount == int64(truth.Rows) &&
		len(sums) == truth.Rows && hash == truth.Hash
	return ok, dups, nil
}

func lineHashes(ctx context.Context, st *store.Blob, name string) ([]string, error) {
	rc, _, err := st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r io.Reader = rc
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(rc)
		if err != nil {
			return nil, err
		}
		r = zr
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		out = append(out, sandbox.RecordDigest(sc.Bytes()))
	}
	return out, sc.Err()
}

// job is the part of a job the tool reads.
type job struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Partitions []struct {
		Scope         string `json:"scope"`
		BillingPeriod string `json:"billingPeriod"`
		Metric        string `json:"metric"`
		Status        string `json:"status"`
		Rows          int64  `json:"rows"`
		Worker        *struct {
			Instance string `json:"instance"`
			Process  string `json:"process"`
		} `json:"worker"`
	} `json:"partitions"`
}

func final(s string) bool { return s == "succeeded" || s == "failed" || s == "cancelled" }

// api calls the HTTP function with the host's payload and decodes the job in Outputs.res.
func api(ctx context.Context, base, method, id, body string) (*job, error) {
	params := map[string]string{}
	url := "http://localhost:7071/api/exports"
	if id != "" {
		params["id"] = id
		url += "/" + id
	}
	req := map[string]any{"Url": url, "Method": method, "Query": map[string]string{}, "Params": params,
		"Headers": map[string][]string{"Content-Type": {"application/json"}}}
	if body != "" {
		req["Body"] = body
	}
	payload, _ := json.Marshal(map[string]any{"Data": map[string]any{"req": req},
		"Metadata": map[string]any{"sys": map[string]string{"MethodName": "UsageExportHttp"}}})
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/UsageExportHttp", strings.NewReader(string(payload)))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Outputs struct {
			Res struct {
				StatusCode int    `json:"statusCode"`
				Body       string `json:"body"`
			} `json:"res"`
		} `json:"Outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Outputs.Res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s /api/exports: %d %s", method, out.Outputs.Res.StatusCode, out.Outputs.Res.Body)
	}
	var j job
	if err := json.Unmarshal([]byte(out.Outputs.Res.Body), &j); err != nil {
		return nil, err
	}
	return &j, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

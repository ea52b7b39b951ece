package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/hostqueue"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// The host's invocation payloads, copied unchanged from the public samples (see
// handler/payloads/SOURCES.md). The demo sends them as the Functions host would.
var (
	//go:embed payloads/timer-invocation-request.json
	timerPayload []byte
	//go:embed payloads/http-invocation-request.json
	httpPayloadTemplate []byte
)

// cmdDemo starts the API sandbox and Azurite, starts this binary as the custom handler the way
// the Functions host does, fires the timer invocation and one on-demand HTTP export, and prints
// where the data landed with a summary per partition.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	usageFunc(fs, "demo [flags]\n\nStart the sandbox and Azurite, run this binary as the Functions host would, print where the data landed.")
	perDay := fs.Int("records-per-day", 20, "sandbox records per subscription per day")
	months := fs.Int("months", 4, "billing periods the on-demand export covers (ending last month); more partitions than one instance takes at once (host.json: batchSize 4 + newBatchThreshold 2), so the job fans out")
	keep := fs.Bool("keep", false, "keep Azurite and the sandbox running until Ctrl-C")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	start := time.Now()
	say := func(format string, a ...any) { fmt.Fprintf(stdout, "==> "+format+"\n", a...) }

	sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: *perDay})
	if err != nil {
		return err
	}
	if err := sb.Start(); err != nil {
		return err
	}
	defer sb.Close()
	say("API sandbox on %s", sb.URL())

	az, err := azurite.Start(ctx, &azurite.Options{})
	if err != nil {
		return fmt.Errorf("starting Azurite (run `make deps` first): %w", err)
	}
	defer func() { _ = az.Stop() }()
	say("Azurite blob service on %s", az.BlobEndpoint())

	ea, mca := demoScopes(sb)
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own binary: %w", err)
	}
	const container = "usage-export"
	host, err := newDemoHost(ctx, az, say)
	if err != nil {
		return err
	}
	lctx, stopListeners := context.WithCancel(ctx)
	defer stopListeners()
	env := demoEnv(az, sb, ea, mca, container)
	var bases []string
	for _, name := range []string{"instance-1", "instance-2"} {
		base, stop, err := startDemoInstance(ctx, self, name, env, stderr, say)
		if err != nil {
			return err
		}
		defer stop()
		bases = append(bases, base)
		go host.Listen(lctx, name, base)
	}
	base := bases[0]
	if err := demoTimer(ctx, base, stdout, say); err != nil {
		return err
	}
	if err := demoOnDemand(ctx, base, ea, mca, *months, stdout, say); err != nil {
		return err
	}
	hs := host.Stats()
	say("queue host: %d invocations (%v), %d deleted, %d retried, %d poisoned", hs.Invocations, hs.ByInstance, hs.Deleted, hs.Retried, hs.Poisoned)
	stopListeners()

	st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: az.ConnectionString(), Container: container})
	if err != nil {
		return err
	}
	if err := printPartitions(ctx, stdout, st, az.BlobEndpoint()+"/"+container, sb); err != nil {
		return err
	}
	say("demo finished in %.1f s", time.Since(start).Seconds())
	if *keep {
		say("Azurite: %s  sandbox: %s (token %s). Ctrl-C to stop.", az.ConnectionString(), sb.URL(), sb.Token())
		<-ctx.Done()
	}
	return nil
}

// newDemoHost creates the work queue in Azurite and the test host that plays the Functions
// host's queue trigger (host.json's batch settings) for each instance.
func newDemoHost(ctx context.Context, az *azurite.Server, say func(string, ...any)) (*hostqueue.Host, error) {
	q, err := workqueue.New(workqueue.Settings{ConnectionString: az.ConnectionString(), Queue: workqueue.DefaultQueue}, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := q.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("creating the work queue: %w", err)
	}
	say("Azurite queue service on %s, work queue %q", az.QueueEndpoint(), workqueue.DefaultQueue)
	return hostqueue.New(hostqueue.Options{Work: q.Work(), Poison: q.Poison(), Function: "UsageExportWorker", Binding: "item",
		BatchSize: 4, NewBatchThreshold: 2, Visibility: 10 * time.Second, RetryDelay: 2 * time.Second, MaxDequeueCount: workqueue.MaxDequeueCount}), nil
}

// demoEnv is the app settings of the demo's instances: the work queue and the store in az, the
// scopes ea and mca of the sandbox sb, rates the sandbox allows.
func demoEnv(az *azurite.Server, sb *sandbox.Server, ea, mca scope.Scope, container string) []string {
	return []string{
		workqueue.EnvConnection + "=" + az.ConnectionString(),
		workqueue.EnvQueue + "=" + workqueue.DefaultQueue,
		config.EnvScopes + "=" + ea.String() + "," + mca.String(),
		config.EnvManagementEndpoint + "=" + sb.URL(),
		config.EnvToken + "=" + sb.Token(),
		config.EnvStorageConnection + "=" + az.ConnectionString(),
		config.EnvContainer + "=" + container,
		config.EnvRatePerScope + "=6000",
		config.EnvRatePerTenant + "=20000",
		config.EnvLogLevel + "=warn",
	}
}

// demoScopes are the scopes the demo exports: the EA enrollment (legacy records) and one MCA
// billing profile (modern).
func demoScopes(sb *sandbox.Server) (ea, mca scope.Scope) {
	for _, s := range sb.Scopes() {
		if s.Kind == scope.BillingAccount && ea.IsZero() {
			ea = s
		}
		if s.Kind == scope.BillingProfile && mca.IsZero() {
			mca = s
		}
	}
	return ea, mca
}

// startDemoInstance runs self serve (this binary) as the custom handler instance name, with env
// added to this process's environment, and waits until it answers. It returns its base URL and
// a function that stops it (SIGTERM, then waits).
func startDemoInstance(ctx context.Context, self, name string, env []string, stderr io.Writer, say func(string, ...any)) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, self, "serve")
	cmd.Env = append(append(os.Environ(), "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port), "CONTAINER_NAME="+name), env...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting the handler: %w", err)
	}
	stop := func() { _ = cmd.Cancel(); _ = cmd.Wait() }
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(ctx, base); err != nil {
		stop()
		return "", nil, err
	}
	say("custom handler %s ready on %s (FUNCTIONS_CUSTOMHANDLER_PORT=%d)", name, base, port)
	return base, stop, nil
}

// demoTimer invokes the timer function, which only plans and enqueues, and waits for each job
// it enqueued.
func demoTimer(ctx context.Context, base string, stdout io.Writer, say func(string, ...any)) error {
	say("host → POST /UsageExportTimer (the timer invocation payload): the timer only plans and enqueues")
	status, body, err := invoke(ctx, base+"/UsageExportTimer", timerPayload)
	if err != nil {
		return err
	}
	say("timer invocation answered %d: %s", status, oneLine(body, 300))
	var timerReply struct{ Logs []string }
	_ = json.Unmarshal(body, &timerReply)
	for _, l := range timerReply.Logs {
		if id, rest, ok := strings.Cut(strings.TrimPrefix(l, "job "), ": "); ok && strings.HasPrefix(l, "job ") && strings.Contains(rest, "enqueued") {
			job, err := demoWait(ctx, base, id)
			if err != nil {
				return err
			}
			say("scheduled job %s: %s", job.ID, job.State)
			printWorkers(stdout, job)
		}
	}
	return nil
}

// demoOnDemand asks the HTTP function for an export of the last months billing periods (to last
// month) of ea and mca and waits for the job.
func demoOnDemand(ctx context.Context, base string, ea, mca scope.Scope, months int, stdout io.Writer, say func(string, ...any)) error {
	last := period.Of(time.Now()).Add(-1)
	first := last.Add(-(months - 1))
	req := fmt.Sprintf(`{"scopes":[%q,%q],"from":%q,"to":%q,"metric":"actualcost"}`, ea.String(), mca.String(), first, last)
	say("host → POST /UsageExportHttp (POST /api/exports %s)", req)
	_, body, err := invoke(ctx, base+"/UsageExportHttp", httpInvocation("POST", "", req))
	if err != nil {
		return err
	}
	res, err := httpOutput(body)
	if err != nil {
		return err
	}
	say("on-demand export answered %v: %s", res.StatusCode, oneLine([]byte(res.Body), 300))
	var accepted demoJob
	_ = json.Unmarshal([]byte(res.Body), &accepted)
	job, err := demoWait(ctx, base, accepted.ID)
	if err != nil {
		return err
	}
	say("job %s: %s, fanned out across the instances:", job.ID, job.State)
	printWorkers(stdout, job)
	return nil
}

// demoWait polls job id through the HTTP function until it ends (10 minutes at most).
func demoWait(ctx context.Context, base, id string) (demoJob, error) {
	var job demoJob
	for deadline := time.Now().Add(10 * time.Minute); ; {
		_, body, err := invoke(ctx, base+"/UsageExportHttp", httpInvocation("GET", id, ""))
		if err != nil {
			return job, err
		}
		res, err := httpOutput(body)
		if err != nil {
			return job, err
		}
		_ = json.Unmarshal([]byte(res.Body), &job)
		if job.State == "succeeded" || job.State == "failed" || job.State == "cancelled" {
			return job, nil
		}
		if time.Now().After(deadline) {
			return job, fmt.Errorf("demo: job %s did not finish in 10 minutes", id)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// demoJob is the part of a job the demo prints.
type demoJob struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Partitions []struct {
		Scope         string `json:"scope"`
		BillingPeriod string `json:"billingPeriod"`
		Status        string `json:"status"`
		Rows          int64  `json:"rows"`
		Attempts      int    `json:"attempts"`
		Worker        *struct {
			Instance string `json:"instance"`
		} `json:"worker"`
	} `json:"partitions"`
}

// printWorkers prints which instance exported each partition of a job.
func printWorkers(w io.Writer, j demoJob) {
	per := map[string]int{}
	for _, p := range j.Partitions {
		inst := "-"
		if p.Worker != nil {
			inst = p.Worker.Instance
		}
		per[inst]++
		fmt.Fprintf(w, "    %-10s %s %-90s %6d rows, delivery %d\n", inst, p.BillingPeriod, p.Scope, p.Rows, p.Attempts)
	}
	fmt.Fprintf(w, "    partitions per instance: %v\n", per)
}

// printPartitions lists every committed partition with its manifest figures next to the
// sandbox's ground truth.
func printPartitions(ctx context.Context, w io.Writer, st *store.Blob, where string, sb *sandbox.Server) error {
	var names []string
	err := st.List(ctx, "", func(it store.Item) error {
		if path.Base(it.Name) == manifest.FileName && !strings.Contains(it.Name, "_control/") {
			names = append(names, it.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\nData landed in %s\n\n", where)
	fmt.Fprintf(w, "%-92s %8s %6s %10s %-8s  %s\n", "partition", "rows", "parts", "bytes", "status", "totals (ground truth rows)")
	var rows, byteCount int64
	for _, n := range names {
		rc, _, err := st.Get(ctx, n)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		m, err := manifest.Parse(b)
		if err != nil {
			return err
		}
		truth := "?"
		if sc, err := scope.Parse(m.Scope); err == nil {
			if p, err := period.Parse(m.BillingPeriod); err == nil {
				if gt, err := sb.GroundTruth(sc, p, string(m.Metric)); err == nil {
					truth = strconv.Itoa(gt.Rows)
				}
			}
		}
		var totals []string
		for field, byCur := range m.Totals {
			for cur, v := range byCur {
				totals = append(totals, fmt.Sprintf("%s %s %s", field, cur, v))
			}
		}
		sort.Strings(totals)
		fmt.Fprintf(w, "%-92s %8d %6d %10d %-8s  %s (%s)\n", path.Dir(n), m.DataRowCount, m.BlobCount, m.ByteCount,
			m.PeriodStatus, strings.Join(totals, ", "), truth)
		rows += m.DataRowCount
		byteCount += m.ByteCount
	}
	fmt.Fprintf(w, "\n%d partitions, %d records, %d bytes (gzip JSON lines)\n\n", len(names), rows, byteCount)
	return nil
}

// httpInvocation builds the host's invocation payload for the HTTP function from the captured
// Core Tools payload: same shape and headers, with this request's method, URL, route params and
// body (a string, as the host sends it).
func httpInvocation(method, id, body string) []byte {
	var p map[string]any
	_ = json.Unmarshal(httpPayloadTemplate, &p)
	data := p["Data"].(map[string]any)
	req := data["req"].(map[string]any)
	url := "http://localhost:7071/api/exports"
	params := map[string]any{}
	if id != "" {
		url += "/" + id
		params["id"] = id
	}
	req["Url"], req["Method"], req["Params"] = url, method, params
	if body != "" {
		req["Body"] = body
		req["Headers"].(map[string]any)["Content-Type"] = []string{"application/json"}
	}
	meta := p["Metadata"].(map[string]any)
	meta["sys"].(map[string]any)["MethodName"] = "UsageExportHttp"
	if id != "" {
		meta["id"] = id
	}
	b, _ := json.Marshal(p)
	return b
}

type httpRes struct {
	StatusCode any               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

func httpOutput(body []byte) (httpRes, error) {
	var resp struct {
		Outputs struct {
			Res httpRes `json:"res"`
		} `json:"Outputs"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return httpRes{}, fmt.Errorf("decoding invocation response: %w (%s)", err, oneLine(body, 200))
	}
	return resp.Outputs.Res, nil
}

// invoke posts an invocation payload as the host does.
func invoke(ctx context.Context, url string, payload []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", newInvocationID())
	req.Header.Set("X-Azure-Functions-HostVersion", "4.33.2.22572")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.33.2.22572")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("invoking %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitReady polls GET / every 25 ms, as the host does, for up to 30 s.
func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	return errors.New("the handler did not answer GET / within 30 s")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func newInvocationID() string { return uuid.NewString() }

func oneLine(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

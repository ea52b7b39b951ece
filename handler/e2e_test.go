package main

// End-to-end tests that play the Functions host: they build the handler binary, start it the way
// the host does (FUNCTIONS_CUSTOMHANDLER_PORT and the app settings in its environment, GET / every
// 25 ms until it answers), post the host's invocation payloads byte for byte and check the
// partitions in Azurite against the API sandbox's ground truth.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/hostqueue"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/metric"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/sandbox/sandboxtest"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/testutil"
	"github.com/usage-export/usage-export/internal/verify"
	"github.com/usage-export/usage-export/internal/workqueue"
)

func TestMain(m *testing.M) {
	code := azuritetest.Main(m)
	testutil.RemoveHandlerBinary()
	os.Exit(code)
}

// Host behaviour the tests reproduce.
const (
	hostReadyPoll    = 25 * time.Millisecond // DefaultHttpWorkerService.IsWorkerReady
	hostReadyTimeout = 30 * time.Second      // HttpWorkerOptions.InitializationTimeout
	hostVersion      = "4.33.2.22572"
)

// hosted is a handler process started as the host starts it.
type hosted struct {
	cmd            *exec.Cmd
	base           string
	stdout, stderr *testutil.SyncBuffer
	done           chan struct{}
	waitErr        error
}

// cleanEnv is this process's environment without settings that would leak into the handler.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "USAGE_EXPORT_") || strings.HasPrefix(k, "FUNCTIONS_") || strings.HasPrefix(k, "AZURE_") ||
			k == "IDENTITY_ENDPOINT" || k == "MSI_ENDPOINT" || k == envInstanceID {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// startHosted starts the handler with settings (name → value) and waits for GET / as the host
// does. It stops the process (SIGTERM, then SIGKILL) when the test ends.
func startHosted(t *testing.T, settings map[string]string) *hosted {
	t.Helper()
	port := testutil.FreePort(t)
	h := &hosted{stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan struct{}), base: "http://127.0.0.1:" + strconv.Itoa(port)}
	h.cmd = exec.Command(testutil.HandlerBinary(t)) // the host runs defaultExecutablePath without arguments
	h.cmd.Env = append(cleanEnv(), envPort+"="+strconv.Itoa(port), "FUNCTIONS_CUSTOMHANDLER_WORKER_ID=e2e")
	for k, v := range settings {
		h.cmd.Env = append(h.cmd.Env, k+"="+v)
	}
	h.cmd.Stdout, h.cmd.Stderr = h.stdout, h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.waitErr = h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		h.stop(t, syscall.SIGTERM)
		if t.Failed() {
			t.Logf("handler stderr:\n%s", h.stderr)
			t.Logf("handler stdout (last 4 KiB):\n%s", tail(h.stdout.String(), 4096))
		}
	})
	start := time.Now()
	for {
		resp, err := http.Get(h.base + "/")
		if err == nil {
			resp.Body.Close()
			return h
		}
		select {
		case <-h.done:
			t.Fatalf("handler exited before it was ready: %v\n%s", h.waitErr, h.stderr)
		case <-time.After(hostReadyPoll):
		}
		if time.Since(start) > hostReadyTimeout {
			t.Fatalf("handler did not answer GET / within %s", hostReadyTimeout)
		}
	}
}

// stop signals the process and waits for it to exit (SIGKILL after 30 s).
func (h *hosted) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(sig)
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Errorf("handler did not exit within 30 s of %v", sig)
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends an invocation payload the way the host does (headers of the Core Tools trace).
func (h *hosted) post(t *testing.T, function string, payload []byte, invocationID string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.base+"/"+function, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Azure-Functions-HostVersion", hostVersion)
	req.Header.Set("X-Azure-Functions-InvocationId", invocationID)
	req.Header.Set("User-Agent", "Azure-Functions-Host/"+hostVersion)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("invoking %s: %v", function, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// hostReply checks what the host requires of every reply (2xx, JSON content type, a JSON body
// with Outputs, Logs and ReturnValue) and returns it.
func hostReply(t *testing.T, resp *http.Response, body []byte) (outputs map[string]json.RawMessage, logs []string) {
	t.Helper()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("host got %d: the invocation would be recorded as failed: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q: the host accepts application/json only", ct)
	}
	var r struct {
		Outputs     map[string]json.RawMessage
		Logs        []string
		ReturnValue json.RawMessage
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, body)
	}
	for _, k := range []string{"Outputs", "Logs", "ReturnValue"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("reply has no %s: %s", k, body)
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r.Outputs, r.Logs
}

// caller is what the caller of /api/exports receives.
type caller struct {
	status  int
	body    []byte
	headers map[string]string
}

// callAPI invokes UsageExportHttp as the host forwards a request to /api/exports[/{id}], built
// from the captured Core Tools payload.
func (h *hosted) callAPI(t *testing.T, method, id, body, contentType string) caller {
	t.Helper()
	var inv map[string]any
	if err := json.Unmarshal(readTestdata(t, "http-invocation-request.json"), &inv); err != nil {
		t.Fatal(err)
	}
	req := inv["Data"].(map[string]any)["req"].(map[string]any)
	meta := inv["Metadata"].(map[string]any)
	u, params := "http://localhost:7071/api/exports", map[string]any{}
	if id != "" {
		u += "/" + id
		params["id"] = id
		meta["id"] = id
	}
	req["Url"], req["Method"], req["Params"] = u, method, params
	if body != "" {
		req["Body"] = body
	}
	if contentType != "" {
		req["Headers"].(map[string]any)["Content-Type"] = []string{contentType}
		meta["Headers"].(map[string]any)["Content-Type"] = contentType
	}
	meta["sys"].(map[string]any)["MethodName"] = "UsageExportHttp"
	payload, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	resp, rb := h.post(t, "UsageExportHttp", payload, "inv-"+strings.ToLower(method))
	outputs, _ := hostReply(t, resp, rb)
	var res struct {
		StatusCode int               `json:"statusCode"`
		Body       string            `json:"body"`
		Headers    map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(outputs["res"], &res); err != nil {
		t.Fatalf("Outputs.res: %v: %s", err, rb)
	}
	c := caller{status: res.StatusCode, body: []byte(res.Body), headers: res.Headers}
	schema := schemas.Job
	switch {
	case c.status >= 400:
		schema = schemas.Error
	case method == http.MethodGet && id == "":
		schema = "job-list.schema.json"
	}
	if err := schemas.Validate(schema, c.body); err != nil {
		t.Errorf("%s %s → %d: body does not match docs/schemas/%s: %v\n%s", method, id, c.status, schema, err, c.body)
	}
	return c
}

// e2eJob is the part of the job document the tests read.
type e2eJob struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	Error      string `json:"error"`
	Attempts   int    `json:"attempts"`
	Partitions []struct {
		Worker *struct {
			Instance string `json:"instance"`
			Process  string `json:"process"`
		} `json:"worker"`
		Scope         string `json:"scope"`
		BillingPeriod string `json:"billingPeriod"`
		Metric        string `json:"metric"`
		Status        string `json:"status"`
		Rows          int64  `json:"rows"`
		Manifest      string `json:"manifest"`
		Error         string `json:"error"`
	} `json:"partitions"`
}

func (h *hosted) job(t *testing.T, id string) e2eJob {
	t.Helper()
	c := h.callAPI(t, http.MethodGet, id, "", "")
	if c.status != http.StatusOK {
		t.Fatalf("GET /api/exports/%s: %d %s", id, c.status, c.body)
	}
	var j e2eJob
	if err := json.Unmarshal(c.body, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// pollJob polls the job (every 200 ms, as a client following Retry-After would, only faster)
// until until(job) holds or the deadline passes.
func (h *hosted) pollJob(t *testing.T, id string, within time.Duration, what string, until func(e2eJob) bool) e2eJob {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := h.job(t, id)
		if until(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %s not reached within %s; state %s, partitions %+v", id, what, within, j.State, j.Partitions)
		}
		select {
		case <-h.done:
			t.Fatalf("handler exited while job %s was %s: %v", id, j.State, h.waitErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// world is the sandbox, Azurite (Blob and Queue) and the settings that point the handler at
// them, with the test host's queue listener.
type world struct {
	sb        *sandbox.Server
	st        *store.Blob
	settings  map[string]string
	container string
	queue     *workqueue.Queue
	host      *hostqueue.Host
}

// listen runs the test host's queue listener for instance h under name until h exits or the
// test ends.
func (w *world) listen(t *testing.T, h *hosted, name string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.host.Listen(ctx, name, h.base)
	}()
	go func() {
		select {
		case <-h.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func newWorld(t *testing.T, o *sandbox.Options, scopes []scope.Scope, extra map[string]string) *world {
	t.Helper()
	now := time.Now().UTC()
	o.Now = func() time.Time { return now } // the data ends at the test's start, whatever the clock does
	sb := sandboxtest.Start(t, o)
	az := azuritetest.Start(t)
	container := fmt.Sprintf("e2e-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-")), now.UnixNano()%1000000)
	if len(container) > 56 { // also the queue's name, which leaves room for "-poison"
		container = container[len(container)-56:]
	}
	container = strings.Trim(container, "-")
	var names []string
	for _, s := range scopes {
		names = append(names, s.String())
	}
	w := &world{sb: sb, container: container, settings: map[string]string{
		config.EnvScopes:             strings.Join(names, ","),
		config.EnvManagementEndpoint: sb.URL(),
		config.EnvToken:              sb.Token(),
		config.EnvStorageConnection:  az.ConnectionString(),
		config.EnvContainer:          container,
		config.EnvRatePerScope:       "100000",
		config.EnvRatePerTenant:      "100000",
		config.EnvExpand:             "none", // records exactly as the ground truth hashes them
		// The ground truth hashes usageDetails records byte for byte; Cost Details lines have the
		// same content without id/name/type (internal/costdetails TestSameLinesBothSources).
		config.EnvSource:       "usageDetails",
		config.EnvSchedule:     "0 0 4 * * *",
		config.EnvLogLevel:     "info",
		config.EnvLeaseSeconds: "15", // a killed writer frees its partitions sooner
	}}
	for k, v := range extra {
		w.settings[k] = v
	}
	var err error
	w.st, err = store.NewBlob(context.Background(), &store.BlobOptions{ConnectionString: az.ConnectionString(), Container: container})
	if err != nil {
		t.Fatal(err)
	}
	// The work queue, named per test, on Azurite's Queue service; the handler enqueues to it
	// through AzureWebJobsStorage, as on Azure.
	w.settings[workqueue.EnvConnection] = az.ConnectionString()
	w.settings[workqueue.EnvQueue] = container
	w.queue, err = workqueue.New(workqueue.Settings{ConnectionString: az.ConnectionString(), Queue: container}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.queue.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.host = hostqueue.New(hostqueue.Options{
		Work: w.queue.Work(), Poison: w.queue.Poison(), Function: "UsageExportWorker", Binding: "item",
		// A redelivery after a kill waits for the visibility timeout; a busy partition (its
		// dead writer's lease, 15 s here) is retried every 4 s, five times at most.
		Visibility: 6 * time.Second, RetryDelay: 4 * time.Second, MaxDequeueCount: 5, Logf: t.Logf,
	})
	return w
}

// checkExact compares the live partition with the sandbox's ground truth: a clean verify
// report, a committed manifest, row count, per-currency sums and the record-set hash of the
// lines. It returns the manifest.
func (w *world) checkExact(t *testing.T, sc scope.Scope, p period.Period, mt metric.Metric) *manifest.Manifest {
	t.Helper()
	ctx := context.Background()
	part := export.Partition{Scope: sc, Period: p, Metric: mt}
	name := config.DefaultPrefix + "/" + part.RelPath() + "/" + manifest.FileName
	rep, err := verify.Partition(ctx, w.st, name)
	if err != nil {
		t.Fatalf("%s: %v", part.RelPath(), err)
	}
	if !rep.OK() {
		t.Errorf("%s: verify: %v", part.RelPath(), rep.Problems)
	}
	rc, _, err := w.st.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if err := schemas.Validate(schemas.Manifest, b); err != nil {
		t.Errorf("%s: manifest schema: %v", part.RelPath(), err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := w.sb.GroundTruth(sc, p, string(mt))
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, bl := range m.Blobs {
		sums = append(sums, lineHashes(t, w.st, bl.BlobName)...)
	}
	hash := sandbox.HashDigests(sums)
	if m.Status != manifest.StatusCommitted || m.DataRowCount != int64(truth.Rows) || len(sums) != truth.Rows {
		t.Errorf("%s: manifest %s with %d rows (%d lines), ground truth %d", part.RelPath(), m.Status, m.DataRowCount, len(sums), truth.Rows)
	}
	if hash != truth.Hash {
		t.Errorf("%s: record-set hash differs from the ground truth", part.RelPath())
	}
	got := costTotals(m)
	if len(got) != len(truth.Sums) {
		t.Errorf("%s: totals %v, ground truth %v", part.RelPath(), got, truth.Sums)
	}
	for cur, want := range truth.Sums {
		if got[cur] != want {
			t.Errorf("%s: %s total %s, ground truth %s", part.RelPath(), cur, got[cur], want)
		}
	}
	return m
}

// lineHashes returns the SHA-256 (hex) of each line of a gzip JSON-lines part.
func lineHashes(t *testing.T, st *store.Blob, name string) []string {
	t.Helper()
	rc, _, err := st.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		out = append(out, sandbox.RecordDigest(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func costTotals(m *manifest.Manifest) map[string]string {
	for _, f := range []string{"cost", "costInBillingCurrency", "pretaxCost"} {
		if v, ok := m.Totals[f]; ok {
			return v
		}
	}
	return map[string]string{}
}

// pick returns the first sandbox scope of kind k.
func pick(t *testing.T, sb *sandbox.Server, k scope.Kind, skip int) scope.Scope {
	t.Helper()
	for _, s := range sb.Scopes() {
		if s.Kind == k {
			if skip == 0 {
				return s
			}
			skip--
		}
	}
	t.Fatalf("sandbox has no %s scope", k)
	return scope.Scope{}
}

// TestHostedTimerAndOnDemand runs the app as the host does: the timer invocation exports the
// scheduled plan; an on-demand export is accepted with 202, followed to success and checked;
// every bad request gets its 4xx with a JSON error.
func TestHostedTimerAndOnDemand(t *testing.T) {
	probe, err := sandbox.New(&sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ea := pick(t, probe, scope.EnrollmentAccount, 0)
	mca := pick(t, probe, scope.BillingProfile, 0)
	sub := pick(t, probe, scope.Subscription, 0)
	notConfigured := pick(t, probe, scope.Department, 0)
	scopes := []scope.Scope{ea, mca, sub}
	w := newWorld(t, &sandbox.Options{RecordsPerDay: 2}, scopes, nil)
	h := startHosted(t, w.settings)
	w.listen(t, h, "instance-1")

	// The timer: the payload exactly as the host sends it.
	const timerInvocation = "fa4fcd1a-a965-431e-8f10-a15c07b4fe2a"
	resp, body := h.post(t, "UsageExportTimer", readTestdata(t, "timer-invocation-request.json"), timerInvocation)
	outputs, logs := hostReply(t, resp, body)
	if len(outputs) != 0 || !bytes.Contains(body, []byte(`"ReturnValue":null`)) {
		t.Errorf("timer reply %s, want Outputs {} and ReturnValue null", body)
	}
	now := time.Now().UTC()
	plan := period.Scheduled(now, config.DefaultRestatementDays)
	if want := fmt.Sprintf("planned %d partition(s)", len(scopes)*len(plan)); !strings.Contains(strings.Join(logs, "\n"), want) {
		t.Errorf("timer Logs %q, want %q", logs, want)
	}
	// The timer only enqueued; the queue's invocations export the partitions.
	var timerJob string
	for _, l := range logs {
		if id, rest, ok := strings.Cut(strings.TrimPrefix(l, "job "), ": "); ok && strings.HasPrefix(l, "job ") && strings.Contains(rest, "enqueued") {
			timerJob = id
		}
	}
	if timerJob == "" {
		t.Fatalf("timer Logs %q name no enqueued job", logs)
	}
	if j := h.pollJob(t, timerJob, 2*time.Minute, "an end state", func(j e2eJob) bool { return j.State == "succeeded" || j.State == "failed" }); j.State != "succeeded" {
		t.Fatalf("scheduled job %s: %s", j.State, j.Error)
	}
	for _, sc := range scopes {
		for _, p := range plan {
			m := w.checkExact(t, sc, p, "actualcost")
			if m.RunInfo.ExecutionType != "Scheduled" {
				t.Errorf("%s %s: executionType %s, want Scheduled", sc, p, m.RunInfo.ExecutionType)
			}
		}
	}
	// Every stdout line is JSON; the timer's lines carry its invocation id.
	var timerLines int
	for _, line := range strings.Split(strings.TrimSpace(h.stdout.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("stdout line is not JSON: %q", line)
			continue
		}
		if ev["invocation_id"] == timerInvocation && ev["function"] == "UsageExportTimer" {
			timerLines++
		}
	}
	if timerLines < 2 {
		t.Errorf("%d log lines carry the timer's invocation id, want the invocation and its plan", timerLines)
	}

	// On demand: the caller's request as the host forwards it.
	last := period.Of(now).Add(-1)
	first := last.Add(-1)
	reqBody := fmt.Sprintf(`{"scopes":[%q,%q],"from":%q,"to":%q,"metric":["actualcost","amortizedcost"]}`, ea, sub, first, last)
	c := h.callAPI(t, http.MethodPost, "", reqBody, "application/json")
	if c.status != http.StatusAccepted {
		t.Fatalf("POST /api/exports: %d %s", c.status, c.body)
	}
	var accepted e2eJob
	if err := json.Unmarshal(c.body, &accepted); err != nil {
		t.Fatal(err)
	}
	if c.headers["Location"] != "/api/exports/"+accepted.ID || len(accepted.Partitions) != 8 {
		t.Errorf("accepted: Location %q, %d partitions; want /api/exports/%s and 8", c.headers["Location"], len(accepted.Partitions), accepted.ID)
	}
	j := h.pollJob(t, accepted.ID, 2*time.Minute, "an end state", func(j e2eJob) bool { return j.State == "succeeded" || j.State == "failed" })
	if j.State != "succeeded" {
		t.Fatalf("job %s: %s", j.State, j.Error)
	}
	for _, jp := range j.Partitions {
		sc, err := scope.Parse(jp.Scope)
		if err != nil {
			t.Fatal(err)
		}
		p, err := period.Parse(jp.BillingPeriod)
		if err != nil {
			t.Fatal(err)
		}
		m := w.checkExact(t, sc, p, metric.Metric(jp.Metric))
		part := export.Partition{Scope: sc, Period: p, Metric: metric.Metric(jp.Metric)}
		wantManifest := config.DefaultPrefix + "/" + part.RelPath() + "/" + manifest.FileName
		if jp.Status != "committed" || jp.Rows != m.DataRowCount || m.RunInfo.ExecutionType != "OnDemand" || jp.Manifest != wantManifest {
			t.Errorf("job partition %+v, manifest %d rows %s", jp, m.DataRowCount, m.RunInfo.ExecutionType)
		}
	}
	list := h.callAPI(t, http.MethodGet, "", "", "")
	if list.status != http.StatusOK || !bytes.Contains(list.body, []byte(accepted.ID)) {
		t.Errorf("GET /api/exports: %d %s", list.status, list.body)
	}

	// Bad requests: each gets its status and a JSON error that says what to fix.
	cur := period.Of(now)
	bad := []struct {
		name, method, id, body, contentType string
		status                              int
		code                                string
	}{
		{"malformed JSON", "POST", "", `{"periods":["202401"`, "application/json", 400, "invalid_json"},
		{"wrong type", "POST", "", `{"periods":"` + last.String() + `"}`, "application/json", 400, "invalid_request"},
		{"unknown field", "POST", "", `{"period":["` + last.String() + `"]}`, "application/json", 400, "unknown_field"},
		{"unknown scope", "POST", "", `{"scopes":["/subscriptions/a/b"],"periods":["` + last.String() + `"]}`, "application/json", 400, "invalid_scope"},
		{"scope not allowed", "POST", "", `{"scopes":["` + notConfigured.String() + `"],"periods":["` + last.String() + `"]}`, "application/json", 403, "scope_not_allowed"},
		{"bad period", "POST", "", `{"periods":["2024-13"]}`, "application/json", 400, "invalid_period"},
		{"future period", "POST", "", `{"periods":["` + cur.Add(1).String() + `"]}`, "application/json", 400, "period_in_future"},
		{"range too long", "POST", "", `{"from":"` + cur.Add(-40).String() + `","to":"` + last.String() + `"}`, "application/json", 400, "range_too_long"},
		{"periods and range", "POST", "", `{"periods":["` + last.String() + `"],"from":"` + first.String() + `"}`, "application/json", 400, "conflicting_periods"},
		{"body too large", "POST", "", `{"periods":["` + last.String() + `"],"scopes":["` + strings.Repeat("a", 70<<10) + `"]}`, "application/json", 413, "body_too_large"},
		{"PUT", "PUT", "", `{"periods":["` + last.String() + `"]}`, "application/json", 405, "method_not_allowed"},
		{"DELETE a finished job", "DELETE", accepted.ID, "", "", 409, "already_finished"},
		{"GET unknown job", "GET", "20200101-000000-000000000000", "", "", 404, "not_found"},
		{"non-JSON content", "POST", "", "periods=" + last.String(), "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
	}
	for _, tt := range bad {
		t.Run("bad request/"+tt.name, func(t *testing.T) {
			c := h.callAPI(t, tt.method, tt.id, tt.body, tt.contentType)
			var eb struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(c.body, &eb); err != nil {
				t.Fatal(err)
			}
			if c.status != tt.status || eb.Error.Code != tt.code || eb.Error.Message == "" {
				t.Errorf("%d %s %q, want %d %s", c.status, eb.Error.Code, eb.Error.Message, tt.status, tt.code)
			}
		})
	}
	// Nothing secret reaches the logs.
	az := azuritetest.Start(t)
	secrets := []string{w.sb.Token()}
	if _, key, ok := strings.Cut(az.ConnectionString(), "AccountKey="); ok {
		secrets = append(secrets, strings.SplitN(key, ";", 2)[0])
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(h.stdout.String(), s) || strings.Contains(h.stderr.String(), s)) {
			t.Error("a token or account key appears in the handler's output")
		}
	}
}

// TestHostedJobAcrossInstances: the instance that accepted a job is SIGKILLed right after the
// 202, as a scale-in does; a second instance works the queue, is SIGKILLed in the middle of a
// partition and started again. The job ends succeeded with every partition equal to the ground
// truth, and its partitions were exported by more than one process.
func TestHostedJobAcrossInstances(t *testing.T) {
	probe, err := sandbox.New(&sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dept := pick(t, probe, scope.Department, 0)
	// Small pages with latency make each partition last long enough to be interrupted.
	w := newWorld(t, &sandbox.Options{RecordsPerDay: 2, PageSize: 4, PageLatency: 40 * time.Millisecond},
		[]scope.Scope{dept}, map[string]string{config.EnvConcurrency: "2"})
	last := period.Of(time.Now().UTC()).Add(-1)
	first := last.Add(-3)
	begin := time.Now()

	// 1. Instance A accepts the job and is killed at once: no work was running in it.
	a := startHosted(t, w.settings)
	c := a.callAPI(t, http.MethodPost, "", fmt.Sprintf(`{"from":%q,"to":%q}`, first, last), "application/json")
	if c.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", c.status, c.body)
	}
	a.stop(t, syscall.SIGKILL)
	var accepted e2eJob
	if err := json.Unmarshal(c.body, &accepted); err != nil {
		t.Fatal(err)
	}
	id := accepted.ID

	// 2. Instance B works the queue; SIGKILL as soon as a partition has rows but is unfinished.
	b := startHosted(t, w.settings)
	w.listen(t, b, "instance-b")
	j := b.pollJob(t, id, 2*time.Minute, "a partition in progress", func(j e2eJob) bool {
		for _, p := range j.Partitions {
			if p.Status == "running" && p.Rows > 0 {
				return true
			}
		}
		return false
	})
	b.stop(t, syscall.SIGKILL)
	t.Logf("%.1fs: SIGKILL of instance B mid-partition (%s)", time.Since(begin).Seconds(), j.State)

	// 3. Instance C (B restarted) finishes: the killed delivery's message comes back after its
	// visibility timeout and resumes from the partition's checkpoint.
	c2 := startHosted(t, w.settings)
	w.listen(t, c2, "instance-c")
	j = c2.pollJob(t, id, 4*time.Minute, "an end state", func(j e2eJob) bool { return j.State == "succeeded" || j.State == "failed" })
	if j.State != "succeeded" {
		t.Fatalf("job %s: %s %+v", j.State, j.Error, j.Partitions)
	}
	workers := map[string]bool{}
	for _, p := range j.Partitions {
		if p.Worker != nil {
			workers[p.Worker.Process] = true
		}
	}
	resumed := 0
	for p := first; !last.Before(p); p = p.Add(1) {
		m := w.checkExact(t, dept, p, "actualcost")
		resumed += m.RunInfo.Resumed
	}
	st := w.host.Stats()
	if st.Poisoned != 0 || st.Lost == 0 {
		t.Errorf("host stats %+v: want a lost delivery (the kill) and no poison", st)
	}
	t.Logf("%.1fs: job %s succeeded; %d worker process(es) recorded partitions; %d run(s) continued from a checkpoint; host %+v",
		time.Since(begin).Seconds(), id, len(workers), resumed, st)
}

// TestHostedBadSettings: a bad setting stops the handler before it listens, with every problem
// in one message on stderr (the host shows its last lines) and a non-zero exit.
func TestHostedBadSettings(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		wants []string
	}{
		{"no port", []string{config.EnvScopes + "=/subscriptions/x", config.EnvOutputDir + "=" + t.TempDir()},
			[]string{envPort + " is not set"}},
		{"several problems", []string{envPort + "=7072", config.EnvScopes + "=/nope", config.EnvMetric + "=cost", config.EnvRestatementDays + "=x"},
			[]string{config.EnvScopes, config.EnvMetric, config.EnvRestatementDays, "output"}},
		{"unknown setting name", []string{envPort + "=7072", config.EnvScopes + "=/subscriptions/x", config.EnvOutputDir + "=" + t.TempDir(), "USAGE_EXPORT_METRICS=usage"},
			[]string{"USAGE_EXPORT_METRICS: is not a setting of Usage Export; did you mean USAGE_EXPORT_METRIC?"}},
		{"legacy port name, bad value", []string{"FUNCTIONS_HTTPWORKER_PORT=http", config.EnvScopes + "=/subscriptions/x", config.EnvOutputDir + "=" + t.TempDir()},
			[]string{"FUNCTIONS_HTTPWORKER_PORT", "not a TCP port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(testutil.HandlerBinary(t))
			cmd.Env = append(cleanEnv(), tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
				t.Fatalf("exit: %v, want code %d", err, exitUsage)
			}
			for _, want := range tt.wants {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not mention %q", stderr.String(), want)
				}
			}
		})
	}
}

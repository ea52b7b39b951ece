package functions

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/testutil"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// Test scopes: the configured allow-list.
const (
	subA    = "/subscriptions/11111111-1111-1111-1111-111111111111"
	subB    = "/subscriptions/22222222-2222-2222-2222-222222222222"
	eaAcct  = "/providers/Microsoft.Billing/billingAccounts/1234567"
	otherEA = "/providers/Microsoft.Billing/billingAccounts/7654321"
)

// testNow is the default clock: inside March 2024's restatement window for February.
var testNow = time.Date(2024, 3, 3, 12, 0, 0, 0, time.UTC)

// fakeExport stands in for the exporter. Every partition reports one page of progress and then
// the status that hook returns (default committed); rows are 10 per partition.
type fakeExport struct {
	mu    sync.Mutex
	runs  []jobs.Run
	calls map[string]int // per partition RelPath
	// hook decides a partition's outcome; it may block (it gets the run's ctx).
	hook func(ctx context.Context, p export.Partition, call int) export.Status
}

func (f *fakeExport) Export(ctx context.Context, r jobs.Run) (*export.Summary, error) {
	f.mu.Lock()
	f.runs = append(f.runs, r)
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.mu.Unlock()
	zerolog.Ctx(ctx).Info().Int("partitions", len(r.Partitions)).Msg("fake export run")
	sum := &export.Summary{}
	for _, p := range r.Partitions {
		f.mu.Lock()
		f.calls[p.RelPath()]++
		call := f.calls[p.RelPath()]
		f.mu.Unlock()
		if r.Progress != nil {
			r.Progress(export.Progress{Partition: p, Pages: 1, Rows: 5, Bytes: 50})
		}
		status := export.StatusCommitted
		if f.hook != nil {
			status = f.hook(ctx, p, call)
		}
		res := export.Result{Partition: p, Scope: p.Scope.String(), Period: p.Period.String(), Metric: p.Metric, Status: status}
		switch {
		case ctx.Err() != nil:
			res.Status, res.Err, res.Error = export.StatusFailed, ctx.Err(), ctx.Err().Error()
		case status == export.StatusCommitted:
			res.Rows, res.Bytes, res.Pages, res.Manifest = 10, 100, 2, "usage/"+p.RelPath()+"/_manifest.json"
		case status == export.StatusFailed:
			res.Err = fmt.Errorf("usage details: 403 AuthorizationFailed")
			res.Error = res.Err.Error()
		case status == export.StatusBusy:
			res.Error = "already running: another writer holds this partition"
		}
		if r.Progress != nil {
			r.Progress(export.Progress{Partition: p, Pages: res.Pages, Rows: res.Rows, Bytes: res.Bytes, Done: true, Status: res.Status})
		}
		sum.Partitions = append(sum.Partitions, res)
		sum.Rows += res.Rows
		sum.Bytes += res.Bytes
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("export run: %w", err)
	}
	return sum, nil
}

func (f *fakeExport) allRuns() []jobs.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]jobs.Run(nil), f.runs...)
}

// memQueue is the work queue in memory: it keeps what was enqueued, in order.
type memQueue struct {
	mu    sync.Mutex
	items []workqueue.Item
	err   error // returned by Enqueue when set
}

func (q *memQueue) Enqueue(_ context.Context, items []workqueue.Item) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.items = append(q.items, items...)
	return nil
}

// take removes and returns what is queued.
func (q *memQueue) take() []workqueue.Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}

type testEnv struct {
	queue    *memQueue
	jobStore jobs.Backend // the job store's backend (default backend)
	backend  *store.Local
	fake     *fakeExport
	logs     *testutil.SyncBuffer
	stderr   *testutil.SyncBuffer
	cfg      *config.Config
	now      time.Time
}

func testConfig(t *testing.T, settings map[string]string) *config.Config {
	t.Helper()
	env := map[string]string{config.EnvScopes: subA + "," + subB + "," + eaAcct}
	for k, v := range settings {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, true, false)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestServer returns a Server over a local store with a fake exporter. mod may change the
// Deps before New.
func newTestServer(t *testing.T, mod func(*Deps, *testEnv)) (*Server, *testEnv, *Deps) {
	t.Helper()
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{queue: &memQueue{}, backend: st, fake: &fakeExport{}, logs: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, now: testNow}
	env.cfg = testConfig(t, nil)
	now := func() time.Time { return env.now }
	d := &Deps{Config: env.cfg, Logger: zerolog.New(env.logs), Errors: env.stderr, Now: now}
	env.jobStore = st
	if mod != nil {
		mod(d, env)
	}
	d.Jobs = jobs.NewRunner(jobs.Deps{
		Store: jobs.New(env.jobStore, env.cfg.Prefix), Queue: env.queue, Export: env.fake.Export, Allowed: d.Config.Allowed,
		Worker: jobs.Worker{Instance: "vm1", Process: "p1"}, Now: now,
		Options: &jobs.Options{FlushInterval: 5 * time.Millisecond},
	})
	return New(*d), env, d
}

// queuePayload is the host's queueTrigger invocation for a message (the shape of
// queue-invocation-request-docs.json): the message text as a JSON string in Data.item.
func queuePayload(t *testing.T, it workqueue.Item, id string, dequeue int) []byte {
	t.Helper()
	text, err := base64.StdEncoding.DecodeString(workqueue.Encode(it))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"Data": map[string]any{ItemBinding: string(text)},
		"Metadata": map[string]any{
			"DequeueCount": dequeue, "Id": id, "PopReceipt": "AgAAAAMAAAAAAAAAAgtnj8x+1QE=",
			"InsertionTime": "2024-03-03T12:00:00+00:00", "ExpirationTime": "9999-12-31T23:59:59+00:00",
			"NextVisibleTime": "2024-03-03T12:10:00+00:00",
			"sys":             map[string]any{"MethodName": WorkerFunction, "UtcNow": "2024-03-03T12:00:00.1234567Z", "RandGuid": "24ad4c06-24ad-4e5b-8294-3da9714877e9"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deliver plays the queue: each queued item is invoked once (delivery count dequeue, message id
// msg-<job>-<index>); it returns the host status per item.
func deliver(t *testing.T, s http.Handler, items []workqueue.Item, dequeue int) []int {
	t.Helper()
	var out []int
	for _, it := range items {
		rec := invoke(t, s, "/"+WorkerFunction, queuePayload(t, it, fmt.Sprintf("msg-%s-%d", it.Job, it.Index), dequeue), "inv-w")
		out = append(out, rec.Code)
	}
	return out
}

// invoke posts an invocation the way the host does (headers of the Core Tools trace).
func invoke(t *testing.T, h http.Handler, path string, payload []byte, invocationID string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:40000"+path, bytes.NewReader(payload))
	r.Header.Set("X-Azure-Functions-HostVersion", "4.33.2.22572")
	r.Header.Set("X-Azure-Functions-InvocationId", invocationID)
	r.Header.Set("User-Agent", "Azure-Functions-Host/4.33.2.22572")
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpPayload turns the captured Core Tools HTTP invocation (testdata/http-invocation-request.json)
// into a call of the UsageExportHttp function: method, route id, body and content type.
func httpPayload(t *testing.T, method, id, body, contentType string) []byte {
	t.Helper()
	var inv map[string]any
	if err := json.Unmarshal(fixture(t, "http-invocation-request.json"), &inv); err != nil {
		t.Fatal(err)
	}
	req := inv["Data"].(map[string]any)["req"].(map[string]any)
	meta := inv["Metadata"].(map[string]any)
	u := "http://localhost:7071/api/exports"
	params := map[string]any{}
	if id != "" {
		u += "/" + id
		params["id"] = id
		meta["id"] = id
	}
	req["Method"], req["Url"], req["Params"] = method, u, params
	headers := req["Headers"].(map[string]any)
	mheaders := meta["Headers"].(map[string]any)
	if body != "" {
		req["Body"] = body
		headers["Content-Length"] = []any{fmt.Sprint(len(body))}
	}
	if contentType != "" {
		headers["Content-Type"] = []any{contentType}
		mheaders["Content-Type"] = contentType
	}
	meta["sys"].(map[string]any)["MethodName"] = HTTPFunction
	b, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostResponse is what the host makes of a handler reply (HttpScriptInvocationResult): it
// requires 2xx and a JSON content type.
type hostResponse struct {
	Outputs     map[string]json.RawMessage
	Logs        []string
	ReturnValue json.RawMessage
}

func readHostResponse(t *testing.T, rec *httptest.ResponseRecorder) hostResponse {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json (the host refuses anything else)", ct)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatalf("reply is not JSON: %v\n%s", err, rec.Body)
	}
	for _, k := range []string{"Outputs", "Logs", "ReturnValue"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("reply has no %s: %s", k, rec.Body)
		}
	}
	var hr hostResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &hr); err != nil {
		t.Fatal(err)
	}
	return hr
}

// normalizeRes mimics the host's normalisation of an http output value (keys matched
// case-insensitively into StatusCode, Status, Body, Headers); TestNormalizeResModel checks it
// against the host's own test cases.
func normalizeRes(raw []byte) (map[string]any, error) {
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	out := map[string]any{"StatusCode": nil, "Status": nil, "Body": nil, "Headers": nil}
	for k, v := range in {
		for _, name := range []string{"StatusCode", "Status", "Body", "Headers"} {
			if strings.EqualFold(k, name) {
				out[name] = v
			}
		}
	}
	return out, nil
}

// callerResponse is the response the caller of /api/exports gets.
type callerResponse struct {
	Status  int
	Body    []byte
	Headers map[string]string
}

// callHTTP invokes UsageExportHttp and returns what the caller would receive.
func callHTTP(t *testing.T, s http.Handler, method, id, body, contentType string) callerResponse {
	t.Helper()
	rec := invoke(t, s, "/"+HTTPFunction, httpPayload(t, method, id, body, contentType), "inv-http")
	if rec.Code != http.StatusOK {
		t.Fatalf("host got %d, want 200 (the caller's status travels in Outputs.res): %s", rec.Code, rec.Body)
	}
	hr := readHostResponse(t, rec)
	res, ok := hr.Outputs[ResponseBinding]
	if !ok {
		t.Fatalf("no Outputs.%s: %s", ResponseBinding, rec.Body)
	}
	n, err := normalizeRes(res)
	if err != nil {
		t.Fatalf("Outputs.res is not an object: %v", err)
	}
	code, ok := n["StatusCode"].(float64)
	if !ok {
		t.Fatalf("Outputs.res has no numeric statusCode: %s", res)
	}
	bodyStr, ok := n["Body"].(string)
	if !ok {
		t.Fatalf("Outputs.res body is not a string: %s", res)
	}
	cr := callerResponse{Status: int(code), Body: []byte(bodyStr), Headers: map[string]string{}}
	if h, ok := n["Headers"].(map[string]any); ok {
		for k, v := range h {
			cr.Headers[k], _ = v.(string)
		}
	}
	if cr.Headers["Content-Type"] != "application/json" {
		t.Errorf("caller Content-Type %q, want application/json", cr.Headers["Content-Type"])
	}
	checkSchema(t, cr)
	return cr
}

// readJob reads a job's view from the test store and checks it against the schema.
func readJob(t *testing.T, env *testEnv, id string) *jobs.Job {
	t.Helper()
	js := jobs.New(env.backend, env.cfg.Prefix)
	j, err := js.View(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(schemas.Job, b); err != nil {
		t.Errorf("job view does not match docs/schemas/job.schema.json: %v\n%s", err, b)
	}
	return j
}

// checkSchema validates a caller's response body against the published schema of its kind.
func checkSchema(t *testing.T, cr callerResponse) {
	t.Helper()
	name := schemas.Job
	switch {
	case cr.Status >= 400:
		name = schemas.Error
	case strings.HasPrefix(string(cr.Body), `{"jobs":`):
		name = jobListSchema
	}
	if err := schemas.Validate(name, cr.Body); err != nil {
		t.Errorf("%d body does not match docs/schemas/%s: %v\n%s", cr.Status, name, err, cr.Body)
	}
}

// jobListSchema is the schema of GET /api/exports.
const jobListSchema = "job-list.schema.json"

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

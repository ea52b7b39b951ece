package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	runplan "github.com/usage-export/usage-export/internal/plan"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/status"
	"github.com/usage-export/usage-export/internal/store"
)

// storeInventory is the handler's Inventory over a store, built from the same packages.
type storeInventory struct {
	st  export.Store
	e   *export.Exporter
	now time.Time
}

func (v *storeInventory) Status(ctx context.Context, f status.Filter) (*status.Report, error) {
	return status.Collect(ctx, v.st, v.e, "usage", 5, f, v.now)
}
func (v *storeInventory) PublishHeld(ctx context.Context, id string) (*manifest.Manifest, error) {
	return v.e.PublishHeld(ctx, id)
}
func (v *storeInventory) DiscardHeld(ctx context.Context, id string) error {
	return v.e.DiscardHeld(ctx, id)
}
func (v *storeInventory) Plan(ctx context.Context, parts []export.Partition, source manifest.Source) (*runplan.Plan, error) {
	choose := func(export.Partition, *manifest.Manifest) runplan.SourceChoice {
		return runplan.SourceChoice{Source: manifest.SourceUsageDetails, Reason: "test"}
	}
	return runplan.Make(ctx, emptyPlanReader{v.e}, parts, choose,
		runplan.Budget{PerScope: func(scope.Scope) float64 { return 10 }, PerTenant: 200}, v.now, 5)
}

func (v *storeInventory) Clean(ctx context.Context) ([]export.RunFolder, error) {
	return v.e.Clean(ctx, v.now, nil, false)
}

type emptyPlanReader struct{ *export.Exporter }

func (emptyPlanReader) HeldRuns(context.Context, export.Partition) (int, error) { return 0, nil }

// putManifest writes a manifest (and, for a held one, its staged part) into the store.
func putManifest(t *testing.T, st export.Store, name string, m manifest.Manifest) {
	t.Helper()
	m.ManifestVersion = manifest.Version
	for _, b := range m.Blobs {
		if _, err := st.Put(context.Background(), b.BlobName, strings.NewReader("{}\n"), nil); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), name, strings.NewReader(string(b)), nil); err != nil {
		t.Fatal(err)
	}
}

// callAPI invokes an HTTP function with the host's payload for method and URL (path params
// given) and returns what the caller receives; error bodies are checked against their schema.
func callAPI(t *testing.T, s http.Handler, function, method, rawURL string, params map[string]string, body string) callerResponse {
	t.Helper()
	var inv map[string]any
	if err := json.Unmarshal(fixture(t, "http-invocation-request.json"), &inv); err != nil {
		t.Fatal(err)
	}
	req := inv["Data"].(map[string]any)["req"].(map[string]any)
	p := map[string]any{}
	for k, v := range params {
		p[k] = v
	}
	req["Method"], req["Url"], req["Params"] = method, rawURL, p
	if body != "" {
		req["Body"] = body
		req["Headers"].(map[string]any)["Content-Length"] = []any{fmt.Sprint(len(body))}
	}
	inv["Metadata"].(map[string]any)["sys"].(map[string]any)["MethodName"] = function
	payload, _ := json.Marshal(inv)
	rec := invoke(t, s, "/"+function, payload, "inv-"+function)
	hr := readHostResponse(t, rec)
	n, err := normalizeRes(hr.Outputs[ResponseBinding])
	if err != nil {
		t.Fatal(err)
	}
	cr := callerResponse{Status: int(n["StatusCode"].(float64)), Body: []byte(n["Body"].(string))}
	if cr.Status >= 400 {
		if err := schemas.Validate(schemas.Error, cr.Body); err != nil {
			t.Errorf("error body: %v", err)
		}
	}
	return cr
}

// TestPartitionsAPI: GET /api/partitions reads the manifests (filtered), POST
// /api/partitions/{runId} publishes a held run, DELETE discards one, and the errors map to
// 404, 405 and 400.
func TestPartitionsAPI(t *testing.T) {
	var st *store.Local
	s, env, _ := newTestServer(t, func(d *Deps, env *testEnv) {
		st = env.backend
		d.Inventory = &storeInventory{st: env.backend, e: export.New(env.backend, nil, &export.Options{Prefix: "usage"}), now: env.now}
	})
	_ = env
	const rel = "metric=actualcost/scope=subscription-11111111-1111-1111-1111-111111111111/billingPeriod=202401"
	live := manifest.Manifest{Status: manifest.StatusCommitted, Scope: subA, BillingPeriod: "202401", Metric: "actualcost",
		Source: manifest.SourceUsageDetails, DataRowCount: 10, PeriodStatus: "final",
		RunInfo: manifest.RunInfo{RunID: "run-live", FinishedTime: testNow.Add(-time.Hour)},
		Totals:  map[string]map[string]string{"costInBillingCurrency": {"USD": "12.5"}}}
	putManifest(t, st, "usage/"+rel+"/_manifest.json", live)
	for _, id := range []string{"run-held-1", "run-held-2"} {
		held := live
		held.Status, held.DataRowCount = manifest.StatusHeld, 2
		held.RunInfo = manifest.RunInfo{RunID: id}
		held.Previous = &manifest.Previous{RunID: "run-live"}
		held.Blobs = []manifest.Blob{{BlobName: "usage/_control/runs/" + id + "/" + rel + "/part-20240101-20240131.jsonl.gz.staged", DataRowCount: 2}}
		putManifest(t, st, "usage/_control/runs/"+id+"/"+rel+"/_manifest.json", held)
	}
	base := "https://app.example.net/api/partitions"

	got := callAPI(t, s, PartitionsFunction, "GET", base+"?scope="+subA+"&period=202401", nil, "")
	var rep status.Report
	if got.Status != 200 || json.Unmarshal(got.Body, &rep) != nil || rep.Count != 1 || rep.Held != 2 || rep.Partitions[0].Totals["USD"] != "12.5" {
		t.Fatalf("GET: %d %s", got.Status, got.Body)
	}
	if got := callAPI(t, s, PartitionsFunction, "GET", base+"?period=202402", nil, ""); !strings.Contains(string(got.Body), `"count":0`) {
		t.Errorf("filtered out: %s", got.Body)
	}
	if got := callAPI(t, s, PartitionsFunction, "GET", base+"?metric=cheapcost", nil, ""); got.Status != 400 {
		t.Errorf("bad metric: %d", got.Status)
	}
	if got := callAPI(t, s, PartitionsFunction, "PUT", base, nil, ""); got.Status != 405 {
		t.Errorf("PUT: %d", got.Status)
	}
	if got := callAPI(t, s, PartitionsFunction, "POST", base+"/nope", map[string]string{"runId": "nope"}, ""); got.Status != 404 {
		t.Errorf("publish of an unknown run: %d %s", got.Status, got.Body)
	}
	got = callAPI(t, s, PartitionsFunction, "POST", base+"/run-held-1", map[string]string{"runId": "run-held-1"}, "")
	if got.Status != 200 || !strings.Contains(string(got.Body), `"rows":2`) {
		t.Fatalf("publish: %d %s", got.Status, got.Body)
	}
	got = callAPI(t, s, PartitionsFunction, "POST", base+"/run-held-2", map[string]string{"runId": "run-held-2"}, "")
	if got.Status != http.StatusConflict {
		t.Errorf("publish over a newer export: %d %s, want 409", got.Status, got.Body)
	}
	if got := callAPI(t, s, PartitionsFunction, "DELETE", base+"/run-held-2", map[string]string{"runId": "run-held-2"}, ""); got.Status != 200 {
		t.Errorf("discard: %d %s", got.Status, got.Body)
	}
	got = callAPI(t, s, PartitionsFunction, "GET", base, nil, "")
	if json.Unmarshal(got.Body, &rep) != nil || rep.Held != 0 || rep.Partitions[0].LastRun.RunID != "run-held-1" || rep.Partitions[0].Rows != 2 {
		t.Errorf("after publish and discard: %s", got.Body)
	}
}

// TestDryRun: POST /api/exports?dryRun=true answers the plan and creates no job.
func TestDryRun(t *testing.T) {
	s, env, _ := newTestServer(t, func(d *Deps, env *testEnv) {
		d.Inventory = &storeInventory{st: env.backend, e: export.New(env.backend, nil, &export.Options{Prefix: "usage"}), now: env.now}
	})
	got := callAPI(t, s, HTTPFunction, "POST", "https://app.example.net/api/exports?dryRun=true", nil,
		`{"scopes":["`+subA+`"],"from":"202312","to":"202402"}`)
	var pl runplan.Plan
	if got.Status != 200 || json.Unmarshal(got.Body, &pl) != nil || len(pl.Partitions) != 3 || pl.Calls != 6 || pl.Unknown != 3 {
		t.Fatalf("dry run: %d %s", got.Status, got.Body)
	}
	if n := len(env.queue.take()); n != 0 {
		t.Errorf("a dry run queued %d messages", n)
	}
	if got := callAPI(t, s, HTTPFunction, "POST", "https://app.example.net/api/exports?dryRun=true", nil, `{"scopes":["/subscriptions/not-configured"]}`); got.Status != 403 {
		t.Errorf("dry run of a scope not configured: %d, want 403 as for a real request", got.Status)
	}
}

// TestShutdownIsNotAnError: a worker invocation cut short by shutdown answers non-2xx (its
// message comes back) and says so at info, with nothing on stderr (the host's Error level).
func TestShutdownIsNotAnError(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	if got := callAPI(t, s, HTTPFunction, "POST", "https://app.example.net/api/exports", nil, `{"scopes":["`+subA+`"],"periods":["202401"]}`); got.Status != 202 {
		t.Fatalf("submit: %d %s", got.Status, got.Body)
	}
	items := env.queue.take()
	if len(items) != 1 {
		t.Fatalf("%d items queued", len(items))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/"+WorkerFunction, bytes.NewReader(queuePayload(t, items[0], "msg-1", 1)))
	rec := serve(s, req)
	if rec.Code < 300 {
		t.Fatalf("interrupted worker answered %d: its message would be deleted", rec.Code)
	}
	if env.stderr.String() != "" {
		t.Errorf("stderr: %q", env.stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(env.logs.String()), "\n") {
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`) {
			t.Errorf("shutdown logged %s", line)
		}
	}
}

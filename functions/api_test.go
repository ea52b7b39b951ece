package functions

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/docs/schemas"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/store"
)

// TestBadRequests is the table of requests the HTTP function refuses, each with its status and
// error code, before anything is stored or exported.
func TestBadRequests(t *testing.T) {
	big := `{"periods":["202401"],"scopes":["` + strings.Repeat("x", maxRequestBodyBytes) + `"]}`
	tests := []struct {
		name        string
		method      string
		id          string
		body        string
		contentType string
		status      int
		code        string
		message     string // a part of the message that says what to fix
	}{
		{"malformed JSON", "POST", "", `{"periods":["202401"]`, "application/json", 400, "invalid_json", "not valid JSON"},
		{"trailing garbage", "POST", "", `{"periods":["202401"]} x`, "application/json", 400, "invalid_json", "not valid JSON"},
		{"duplicate field", "POST", "", `{"periods":["202401"],"periods":["202402"]}`, "application/json", 400, "invalid_json", "duplicate"},
		{"empty body", "POST", "", "", "application/json", 400, "invalid_json", "empty"},
		{"not an object", "POST", "", `["202401"]`, "application/json", 400, "invalid_request", "JSON object"},
		{"scopes not an array", "POST", "", `{"scopes":"` + subA + `","periods":["202401"]}`, "application/json", 400, "invalid_request", "/scopes"},
		{"period a number", "POST", "", `{"periods":[202401]}`, "application/json", 400, "invalid_request", "/periods/0"},
		{"force a string", "POST", "", `{"periods":["202401"],"force":"yes"}`, "application/json", 400, "invalid_request", "true or false"},
		{"metric a number", "POST", "", `{"periods":["202401"],"metric":5}`, "application/json", 400, "invalid_request", "/metric"},
		{"unknown field", "POST", "", `{"periods":["202401"],"scope":["` + subA + `"]}`, "application/json", 400, "unknown_field", `"scope"`},
		{"field in the wrong case", "POST", "", `{"Periods":["202401"]}`, "application/json", 400, "unknown_field", "case-sensitive"},
		{"unparsable scope", "POST", "", `{"scopes":["/subscriptions/../x"],"periods":["202401"]}`, "application/json", 400, "invalid_scope", "invalid scope"},
		{"unknown scope kind", "POST", "", `{"scopes":["/resourceGroups/rg1"],"periods":["202401"]}`, "application/json", 400, "invalid_scope", "not a usage-details scope"},
		{"scope not allowed", "POST", "", `{"scopes":["` + otherEA + `"],"periods":["202401"]}`, "application/json", 403, "scope_not_allowed", "configured scopes"},
		{"bad period", "POST", "", `{"periods":["2024-13"]}`, "application/json", 400, "invalid_period", "YYYYMM"},
		{"period before the API's data", "POST", "", `{"periods":["201001"]}`, "application/json", 400, "invalid_period", "starts in"},
		{"future period", "POST", "", `{"periods":["202404"]}`, "application/json", 400, "period_in_future", "202403"},
		{"future range end", "POST", "", `{"from":"202401","to":"202406"}`, "application/json", 400, "period_in_future", "to"},
		{"range backwards", "POST", "", `{"from":"202402","to":"202401"}`, "application/json", 400, "invalid_period", "after"},
		{"range too long", "POST", "", `{"from":"202001","to":"202312"}`, "application/json", 400, "range_too_long", "48 months; at most 36"},
		{"range too long names the setting", "POST", "", `{"from":"202001","to":"202312"}`, "application/json", 400, "range_too_long", "(USAGE_EXPORT_MAX_MONTHS)"},
		{"future range start", "POST", "", `{"from":"202404"}`, "application/json", 400, "period_in_future", "from: billing period 202404"},
		{"bad range start", "POST", "", `{"from":"24-01"}`, "application/json", 400, "invalid_period", "from: "},
		{"too many periods", "POST", "", `{"periods":[` + periodList(37) + `]}`, "application/json", 400, "range_too_long", "37 billing periods"},
		{"periods and range", "POST", "", `{"periods":["202401"],"from":"202301"}`, "application/json", 400, "conflicting_periods", "not both"},
		{"to without from", "POST", "", `{"to":"202401"}`, "application/json", 400, "invalid_period", `"to" needs "from"`},
		{"no periods", "POST", "", `{"scopes":["` + subA + `"]}`, "application/json", 400, "missing_periods", `"periods"`},
		{"bad metric", "POST", "", `{"periods":["202401"],"metric":"cost"}`, "application/json", 400, "invalid_metric", "actualcost"},
		{"bad source", "POST", "", `{"periods":["202401"],"source":"exports"}`, "application/json", 400, "invalid_source", "usageDetails"},
		{"body too large", "POST", "", big, "application/json", 413, "body_too_large", "at most 65536"},
		{"non-JSON content", "POST", "", `periods=202401`, "application/x-www-form-urlencoded", 415, "unsupported_media_type", "application/json"},
		{"text content type", "POST", "", `{"periods":["202401"]}`, "text/plain", 415, "unsupported_media_type", "application/json"},
		{"PUT", "PUT", "", `{"periods":["202401"]}`, "application/json", 405, "method_not_allowed", "POST /api/exports"},
		{"DELETE the collection", "DELETE", "", "", "", 405, "method_not_allowed", "DELETE /api/exports/{id} cancels"},
		{"DELETE unknown job", "DELETE", "20240101-000000-000000000000", "", "", 404, "not_found", "no export job"},
		{"POST to a job", "POST", "20240101-000000-000000000000", `{}`, "application/json", 405, "method_not_allowed", "allowed: GET, DELETE"},
		{"GET unknown job", "GET", "20240101-000000-000000000000", "", "", 404, "not_found", "no export job"},
		{"GET malformed job id", "GET", "..%2F..%2Fsecrets", "", "", 404, "not_found", "no export job"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, nil)
			got := callHTTP(t, s, tt.method, tt.id, tt.body, tt.contentType)
			if got.Status != tt.status {
				t.Errorf("status %d, want %d: %s", got.Status, tt.status, got.Body)
			}
			var eb struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			dec := json.NewDecoder(strings.NewReader(string(got.Body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&eb); err != nil {
				t.Fatalf("body is not {\"error\":{\"code\",\"message\"}}: %v: %s", err, got.Body)
			}
			if eb.Error.Code != tt.code {
				t.Errorf("code %q, want %q (%s)", eb.Error.Code, tt.code, eb.Error.Message)
			}
			if !strings.Contains(eb.Error.Message, tt.message) {
				t.Errorf("message %q does not contain %q", eb.Error.Message, tt.message)
			}
			if tt.status == 405 && got.Headers["Allow"] == "" {
				t.Error("405 without an Allow header")
			}
			ids, err := jobs.New(env.backend, env.cfg.Prefix).IDs(context.Background())
			if err != nil || len(ids) != 0 {
				t.Errorf("jobs stored after a refused request: %v %v", ids, err)
			}
			if n := len(env.fake.allRuns()); n != 0 {
				t.Errorf("%d export runs after a refused request", n)
			}
		})
	}
}

func periodList(n int) string {
	var out []string
	for i := range n {
		out = append(out, `"`+time.Date(2021, time.Month(1+i), 1, 0, 0, 0, 0, time.UTC).Format("200601")+`"`)
	}
	return strings.Join(out, ",")
}

// TestHugeInvocation: a host payload over the invocation limit still gets a 413 for the caller.
func TestHugeInvocation(t *testing.T) {
	s, _, _ := newTestServer(t, nil)
	body := `{"periods":["202401"],"x":"` + strings.Repeat("a", maxInvocationBytes) + `"}`
	rec := invoke(t, s, "/"+HTTPFunction, httpPayload(t, "POST", "", body, "application/json"), "big")
	if rec.Code != http.StatusOK {
		t.Fatalf("host got %d, want 200", rec.Code)
	}
	hr := readHostResponse(t, rec)
	n, err := normalizeRes(hr.Outputs[ResponseBinding])
	if err != nil || n["StatusCode"] != float64(413) {
		t.Errorf("Outputs.res = %s, want statusCode 413", hr.Outputs[ResponseBinding])
	}
}

func TestAcceptAndGet(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		scopes      []string
		periods     []string
		metrics     []string
	}{
		{"periods, all configured scopes", `{"periods":["202401","202312","202401"]}`, "application/json; charset=utf-8",
			[]string{subA, subB, eaAcct}, []string{"202401", "202312"}, []string{"actualcost"}},
		{"range, one scope in another case, two metrics", `{"scopes":["/SUBSCRIPTIONS/22222222-2222-2222-2222-222222222222"],"from":"202311","to":"202401","metric":["amortizedcost","actualcost"],"force":true,"source":"costDetails"}`, "application/json",
			[]string{subB}, []string{"202311", "202312", "202401"}, []string{"amortizedcost", "actualcost"}},
		{"open range up to the current month, no content type", `{"scopes":["` + eaAcct + `"],"from":"202402","metric":"usage"}`, "",
			[]string{eaAcct}, []string{"202402", "202403"}, []string{"usage"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, env, _ := newTestServer(t, nil)
			got := callHTTP(t, s, "POST", "", tt.body, tt.contentType)
			if got.Status != http.StatusAccepted {
				t.Fatalf("status %d, want 202: %s", got.Status, got.Body)
			}
			var j jobs.Job
			if err := json.Unmarshal(got.Body, &j); err != nil {
				t.Fatal(err)
			}
			if want := "/api/exports/" + j.ID; got.Headers["Location"] != want {
				t.Errorf("Location %q, want %q", got.Headers["Location"], want)
			}
			if j.State != jobs.Queued || !j.CreatedTime.Equal(testNow) || j.ExecutionType != jobs.ExecOnDemand {
				t.Errorf("job %+v, want queued at %s", j, testNow)
			}
			if strings.Join(j.Request.Scopes, ",") != strings.Join(tt.scopes, ",") ||
				strings.Join(j.Request.Periods, ",") != strings.Join(tt.periods, ",") ||
				strings.Join(j.Request.Metrics, ",") != strings.Join(tt.metrics, ",") {
				t.Errorf("request %+v, want scopes %v periods %v metrics %v", j.Request, tt.scopes, tt.periods, tt.metrics)
			}
			if want := len(tt.scopes) * len(tt.periods) * len(tt.metrics); len(j.Partitions) != want {
				t.Errorf("%d partitions, want %d", len(j.Partitions), want)
			}
			for _, p := range j.Partitions {
				if p.Status != jobs.PartQueued {
					t.Errorf("partition %+v not queued", p)
				}
			}
			// One message per partition, in plan order, naming the job.
			items := env.queue.take()
			if len(items) != len(j.Partitions) {
				t.Fatalf("%d messages enqueued, want %d", len(items), len(j.Partitions))
			}
			for i, it := range items {
				p := j.Partitions[i]
				if it.Job != j.ID || it.Index != i || it.Scope != p.Scope || it.Period != p.BillingPeriod || it.Metric != p.Metric {
					t.Errorf("message %d = %+v, want job %s partition %+v", i, it, j.ID, p)
				}
			}
			stored := readJob(t, env, j.ID)
			if stored.ID != j.ID || len(stored.Partitions) != len(j.Partitions) {
				t.Errorf("stored job %+v differs from the reply", stored)
			}
			get := callHTTP(t, s, "GET", j.ID, "", "")
			if get.Status != http.StatusOK || get.Headers["Retry-After"] == "" {
				t.Errorf("GET: %d (Retry-After %q), want 200 with Retry-After", get.Status, get.Headers["Retry-After"])
			}
			var g jobs.Job
			if err := json.Unmarshal(get.Body, &g); err != nil || g.ID != j.ID || g.State != jobs.Queued {
				t.Errorf("GET body %s (%v)", get.Body, err)
			}
			if n := len(env.fake.allRuns()); n != 0 {
				t.Errorf("%d export runs: the request must only enqueue the job", n)
			}
		})
	}
}

// TestLocationKeepsRoutePrefix: Location follows the public URL, so a custom route prefix is kept.
func TestLocationKeepsRoutePrefix(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"http://localhost:7071/api/exports", "/api/exports/ID"},
		{"https://app.azurewebsites.net/custom/exports/?code=secret", "/custom/exports/ID"},
		{"::bad", "/api/exports/ID"},
	} {
		if got := jobLocation(tt.url, "ID"); got != tt.want {
			t.Errorf("jobLocation(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

// TestRequestShapesOfOtherHosts: the docs' older payload (Query as a string) and a payload
// whose body arrives as a JSON value are both understood.
func TestRequestShapesOfOtherHosts(t *testing.T) {
	s, _, _ := newTestServer(t, nil)
	docs := strings.Replace(string(fixture(t, "http-invocation-request-docs.json")),
		`"Body": "{\"id\":1005,\"quantity\":2,\"color\":\"black\"}"`, `"Body": "{\"periods\":[\"202401\"]}"`, 1)
	objectBody := `{"Data":{"req":{"Url":"http://localhost:7071/api/exports","Method":"POST","Query":{},` +
		`"Headers":{"Content-Type":"application/json"},"Params":{"id":null},"Body":{"periods":["202401"]}}},"Metadata":{}}`
	for name, payload := range map[string]string{"docs": docs, "object body": objectBody} {
		rec := invoke(t, s, "/"+HTTPFunction, []byte(payload), name)
		hr := readHostResponse(t, rec)
		n, err := normalizeRes(hr.Outputs[ResponseBinding])
		if err != nil || n["StatusCode"] != float64(202) {
			t.Errorf("%s: Outputs.res = %s, want 202", name, hr.Outputs[ResponseBinding])
		}
	}
}

func TestListJobs(t *testing.T) {
	s, env, _ := newTestServer(t, nil)
	var ids []string
	for i, sc := range []string{subA, subB, eaAcct} {
		env.now = testNow.Add(time.Duration(i) * time.Minute)
		got := callHTTP(t, s, "POST", "", `{"periods":["202401"],"scopes":["`+sc+`"]}`, "application/json")
		var j jobs.Job
		if err := json.Unmarshal(got.Body, &j); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	got := callHTTP(t, s, "GET", "", "", "")
	var list struct {
		Jobs []jobSummary `json:"jobs"`
	}
	if err := json.Unmarshal(got.Body, &list); err != nil || got.Status != 200 {
		t.Fatalf("list: %d %s %v", got.Status, got.Body, err)
	}
	if len(list.Jobs) != 3 || list.Jobs[0].ID != ids[2] || list.Jobs[2].ID != ids[0] {
		t.Errorf("list %+v, want the 3 jobs newest first", list.Jobs)
	}
	if list.Jobs[0].State != jobs.Queued || list.Jobs[0].Partitions != 1 {
		t.Errorf("summary %+v", list.Jobs[0])
	}
}

// TestAllowListUsesConfiguredSpelling: a job stores the scope as configured, whatever case the
// caller used, so it exports exactly the configured scope.
func TestAllowListUsesConfiguredSpelling(t *testing.T) {
	s, _, _ := newTestServer(t, func(d *Deps, env *testEnv) {
		env.cfg = testConfig(t, map[string]string{config.EnvScopes: "/subscriptions/AbC-1"})
		d.Config = env.cfg
	})
	got := callHTTP(t, s, "POST", "", `{"scopes":["/subscriptions/abc-1/"],"periods":["202401"]}`, "application/json")
	var j jobs.Job
	if err := json.Unmarshal(got.Body, &j); err != nil || got.Status != 202 {
		t.Fatalf("%d %s", got.Status, got.Body)
	}
	if j.Request.Scopes[0] != "/subscriptions/AbC-1" || j.Partitions[0].Scope != "/subscriptions/AbC-1" {
		t.Errorf("scope stored as %q / %q, want the configured spelling", j.Request.Scopes[0], j.Partitions[0].Scope)
	}
}

// brokenStore fails puts, to check that a job that cannot be stored is refused with a 500.
type brokenStore struct{ *store.Local }

func (b brokenStore) Put(context.Context, string, io.Reader, *store.PutOptions) (store.Props, error) {
	return store.Props{}, errors.New("storage unavailable")
}

func TestStoreFailureIs500(t *testing.T) {
	s, env, _ := newTestServer(t, func(d *Deps, env *testEnv) { env.jobStore = brokenStore{env.backend} })
	got := callHTTP(t, s, "POST", "", `{"periods":["202401"]}`, "application/json")
	if got.Status != 500 || !strings.Contains(string(got.Body), "internal_error") {
		t.Errorf("%d %s, want 500 internal_error", got.Status, got.Body)
	}
	if strings.Contains(string(got.Body), "storage unavailable") {
		t.Error("internal error text leaked to the caller")
	}
	if !strings.Contains(env.logs.String(), "storage unavailable") {
		t.Error("internal error not logged")
	}
}

// TestSchemasAreStrict: the published schemas reject what the API never sends, so the checks
// in callHTTP and readJob can fail.
func TestSchemasAreStrict(t *testing.T) {
	okJob := `{"version":2,"id":"20240101-000000-0123456789ab","executionType":"OnDemand","state":"queued","createdTime":"2024-01-01T00:00:00Z",` +
		`"requestKey":"0123456789abcdef0123456789abcdef","request":{"scopes":["/subscriptions/x"],"periods":["202401"],"metrics":["actualcost"],"force":false},` +
		`"partitions":[{"scope":"/subscriptions/x","billingPeriod":"202401","metric":"actualcost","status":"queued","pages":0,"rows":0,"bytes":0,"attempts":0}]}`
	if err := schemas.Validate(schemas.Job, []byte(okJob)); err != nil {
		t.Fatalf("a valid job is refused: %v", err)
	}
	bad := map[string]string{
		"unknown state":                strings.Replace(okJob, `"state":"queued"`, `"state":"done"`, 1),
		"succeeded without finish":     strings.Replace(okJob, `"state":"queued"`, `"state":"succeeded","startedTime":"2024-01-01T00:00:00Z"`, 1),
		"failed without error":         strings.Replace(okJob, `"state":"queued"`, `"state":"failed","startedTime":"2024-01-01T00:00:00Z","finishedTime":"2024-01-01T00:00:00Z"`, 1),
		"extra field":                  strings.Replace(okJob, `"attempts":0`, `"attempts":0,"owner":"x"`, 1),
		"cancelled without cancelTime": strings.Replace(okJob, `"state":"queued"`, `"state":"cancelled","finishedTime":"2024-01-01T00:00:00Z","error":"cancelled"`, 1),
		"bad period":                   strings.Replace(okJob, `"periods":["202401"]`, `"periods":["2024-01"]`, 1),
		"queued with a done partition": strings.Replace(okJob, `"status":"queued"`, `"status":"committed"`, 1),
	}
	for name, doc := range bad {
		if err := schemas.Validate(schemas.Job, []byte(doc)); err == nil {
			t.Errorf("job schema accepts %s", name)
		}
	}
	for _, doc := range []string{`{"error":{"code":"nope","message":"x"}}`, `{"error":{"code":"not_found"}}`, `{"error":{"code":"not_found","message":"x","extra":1}}`} {
		if err := schemas.Validate(schemas.Error, []byte(doc)); err == nil {
			t.Errorf("error schema accepts %s", doc)
		}
	}
}

// TestCreateJobSubScopeNotCovered: a configured scope with a billing-period sub-scope must be
// covered by the periods asked for; otherwise the request is refused (400), nothing stored.
func TestCreateJobSubScopeNotCovered(t *testing.T) {
	sub := eaAcct + "/providers/Microsoft.Billing/billingPeriods/202402"
	s, env, _ := newTestServer(t, func(d *Deps, env *testEnv) {
		env.cfg = testConfig(t, map[string]string{config.EnvScopes: subA + "," + sub})
		d.Config = env.cfg
	})
	got := callHTTP(t, s, "POST", "", `{"periods":["202401"]}`, "application/json")
	if got.Status != 400 || !strings.Contains(string(got.Body), `"invalid_period"`) ||
		!strings.Contains(string(got.Body), "scope "+sub+" is configured for billing period 202402 only") {
		t.Errorf("status %d, body %s; want 400 invalid_period naming the scope", got.Status, got.Body)
	}
	if got := callHTTP(t, s, "POST", "", `{"periods":["202402","202401"]}`, "application/json"); got.Status != 202 {
		t.Errorf("covering request: status %d, want 202: %s", got.Status, got.Body)
	}
	if ids, err := jobs.New(env.backend, env.cfg.Prefix).IDs(context.Background()); err != nil || len(ids) != 1 {
		t.Errorf("jobs stored: %v %v, want the covering request's only", ids, err)
	}
}

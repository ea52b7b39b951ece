package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/functions"
	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/jobs"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// fuzzNow is the clock of the fuzzed server: billing periods up to 202403 are in the past.
var fuzzNow = time.Date(2024, 3, 3, 12, 0, 0, 0, time.UTC)

// fuzzScopes is the allow-list of the fuzzed server.
var fuzzScopes = []string{
	"/subscriptions/11111111-1111-1111-1111-111111111111",
	"/providers/Microsoft.Billing/billingAccounts/1234567",
}

// fuzzServer is the HTTP function as the handler builds it, with a job store in a temporary
// directory and an exporter that only counts calls (jobs are stored, never run: nothing here
// starts Server.Run).
type fuzzServer struct {
	s       *functions.Server
	cfg     *config.Config
	exports atomic.Int64
}

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	settings := map[string]string{
		config.EnvScopes:    strings.Join(fuzzScopes, ","),
		config.EnvOutputDir: f.TempDir(),
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := settings[k]; return v, ok }, true, true)
	if err != nil {
		f.Fatal(err)
	}
	st, err := store.NewLocal(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	fs := &fuzzServer{cfg: cfg}
	now := func() time.Time { return fuzzNow }
	fs.s = functions.New(functions.Deps{
		Config: cfg, Logger: zerolog.Nop(), Now: now,
		Jobs: jobs.NewRunner(jobs.Deps{
			Store: jobs.New(st, cfg.Prefix), Queue: discardQueue{}, Allowed: cfg.Allowed, Now: now,
			Worker: jobs.Worker{Instance: "fuzz", Process: "1"},
			// Many accepted jobs stay open: the bound must not turn them into 429s here.
			Options: &jobs.Options{MaxOpenJobs: 1 << 30},
			Export: func(ctx context.Context, r jobs.Run) (*export.Summary, error) {
				fs.exports.Add(1)
				return &export.Summary{}, nil
			},
		}),
	})
	return fs
}

// discardQueue accepts every message and keeps none.
type discardQueue struct{}

func (discardQueue) Enqueue(context.Context, []workqueue.Item) error { return nil }

// invoke posts a host payload to the HTTP function and checks what every answer must satisfy:
// the host gets 200 (or 400 for a payload that is not an invocation) with a JSON body; the
// caller gets 200, 202 or a 4xx, never a 5xx; a 4xx carries an error code and a message; an
// accepted job names configured scopes only; nothing is exported while answering.
func (fs *fuzzServer) invoke(t *testing.T, payload []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/"+functions.HTTPFunction, bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	fs.s.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("answer Content-Type %q, want application/json", ct)
	}
	if fs.exports.Load() != 0 {
		t.Fatal("an export ran while answering a request")
	}
	switch rec.Code {
	case http.StatusOK:
	case http.StatusBadRequest:
		checkErrorBody(t, rec.Body.Bytes())
		return
	default:
		t.Fatalf("host status %d: %s", rec.Code, rec.Body)
	}
	var hr struct {
		Outputs struct {
			Res struct {
				StatusCode int    `json:"statusCode"`
				Body       string `json:"body"`
			} `json:"res"`
		} `json:"Outputs"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &hr); err != nil {
		t.Fatalf("host answer is not an invocation response: %v: %s", err, rec.Body)
	}
	res := hr.Outputs.Res
	switch {
	case res.StatusCode >= 500 || res.StatusCode < 200:
		t.Fatalf("caller status %d: %s", res.StatusCode, res.Body)
	case res.StatusCode >= 400:
		checkErrorBody(t, []byte(res.Body))
	case res.StatusCode == http.StatusAccepted:
		fs.checkJobScopes(t, res.Body)
	}
}

func checkErrorBody(t *testing.T, b []byte) {
	t.Helper()
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("error answer without a code and a message (%v): %s", err, b)
	}
}

// checkJobScopes checks that an accepted job will export configured scopes only.
func (fs *fuzzServer) checkJobScopes(t *testing.T, body string) {
	t.Helper()
	var job struct {
		Request struct {
			Scopes []string `json:"scopes"`
		} `json:"request"`
		Partitions []struct {
			Scope string `json:"scope"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(body), &job); err != nil {
		t.Fatalf("202 without a job: %v: %s", err, body)
	}
	names := job.Request.Scopes
	for _, p := range job.Partitions {
		names = append(names, p.Scope)
	}
	if len(job.Partitions) == 0 {
		t.Fatalf("a job with no partitions was accepted: %s", body)
	}
	for _, n := range names {
		sc, err := scope.Parse(n)
		if err != nil {
			t.Fatalf("accepted job names an invalid scope %q: %v", n, err)
		}
		if allowed, ok := fs.cfg.Allowed(sc); !ok || allowed.String() != n {
			t.Fatalf("accepted job names %q, which is not a configured scope as configured", n)
		}
	}
}

// httpPayload builds the host's invocation for one caller request from the captured Core Tools
// payload in testdata.
func httpPayload(t testing.TB, tmpl []byte, method, id, contentType, body string) []byte {
	var p map[string]any
	if err := json.Unmarshal(tmpl, &p); err != nil {
		t.Fatal(err)
	}
	req := p["Data"].(map[string]any)["req"].(map[string]any)
	url, params := "http://localhost:7071/api/exports", map[string]any{}
	if id != "" {
		url += "/" + id
		params["id"] = id
	}
	req["Url"], req["Method"], req["Params"] = url, method, params
	if contentType != "" {
		req["Headers"].(map[string]any)["Content-Type"] = []string{contentType}
	}
	if body != "" {
		req["Body"] = body
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func invocationTemplate(f *testing.F) []byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "http-invocation-request.json"))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzHTTPRequest fuzzes the caller's request to UsageExportHttp (method, job id, Content-Type
// and body) inside a well-formed host invocation.
func FuzzHTTPRequest(f *testing.F) {
	tmpl := invocationTemplate(f)
	fs := newFuzzServer(f)
	for _, c := range [][4]string{
		{"POST", "", "application/json", `{"periods":["202401"]}`},
		{"POST", "", "application/json", `{"scopes":["/SUBSCRIPTIONS/11111111-1111-1111-1111-111111111111"],"from":"202311","to":"202401","metric":["usage","actualcost"],"force":true,"source":"costDetails"}`},
		{"POST", "", "application/json", `{"scopes":["/providers/Microsoft.Billing/billingAccounts/7654321"],"periods":["202401"]}`},
		{"POST", "", "application/json", `{"scopes":["/subscriptions/../x"],"periods":["2024-13"]}`},
		{"POST", "", "text/plain", `periods=202401`},
		{"GET", "20240101-000000-000000000000", "", ""},
		{"GET", "../../_control/jobs", "", ""},
		{"DELETE", "", "", ""},
	} {
		f.Add(c[0], c[1], c[2], c[3])
	}
	f.Fuzz(func(t *testing.T, method, id, contentType, body string) {
		fs.invoke(t, httpPayload(t, tmpl, method, id, contentType, body))
	})
}

// FuzzInvocation fuzzes the whole host payload posted to /UsageExportHttp.
func FuzzInvocation(f *testing.F) {
	tmpl := invocationTemplate(f)
	fs := newFuzzServer(f)
	f.Add(httpPayload(f, tmpl, "POST", "", "application/json", `{"periods":["202401"]}`))
	f.Add(httpPayload(f, tmpl, "GET", "20240101-000000-000000000000", "", ""))
	f.Add([]byte(`{"Data":{"req":{"Method":"POST","Body":{"periods":["202401"],"scopes":["/providers/Microsoft.Billing/billingAccounts/7654321"]}}},"Metadata":{}}`))
	f.Add([]byte(`{"Data":{"req":"x"}}`))
	f.Add([]byte(`{"Data":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		fs.invoke(t, payload)
	})
}

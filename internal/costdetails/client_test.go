package costdetails

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

const (
	testToken  = "test-bearer-token"
	fixtureDir = "testdata/fixtures/2022-05-01"
)

// samplePad fills a sample row's columns after the first six with empty cells.
var samplePad = strings.Repeat(",", len(mcaColumns)-6)

// sampleCSV is the blob the fake storage serves: three rows of an MCA file (its six first
// columns filled, the others empty).
var sampleCSV = "date,costInBillingCurrency,billingCurrency,costInUsd,meterName,isAzureCreditEligible" + sampleRest() + "\n" +
	"03/01/2020,1.5,EUR,1.65,\"D2s v3, Linux\",True" + samplePad + "\n" +
	"03/02/2020,0.000001980949998,EUR,0.0000022,Hot LRS,False" + samplePad + "\n" +
	"03/03/2020,,EUR,,\"multi\nline\"," + samplePad + "\n"

// sampleRest is the MCA header without the six columns sampleCSV starts with.
func sampleRest() string {
	var b strings.Builder
	for _, c := range mcaColumns {
		switch c.Header {
		case "date", "costInBillingCurrency", "billingCurrency", "costInUsd", "meterName", "isAzureCreditEligible":
		default:
			b.WriteString("," + c.Header)
		}
	}
	return b.String()
}

// sampleRows are the lines sampleCSV becomes (the mapping itself is held by csvjson_test.go
// and the golden files; the client tests check that every row arrives whole and once).
var sampleRows = func() []string {
	var out []string
	if _, err := ConvertCSV(strings.NewReader(sampleCSV), func(l []byte) error { out = append(out, string(l)); return nil }); err != nil {
		panic(err)
	}
	return out
}()

// fixture is one published example.
type fixture struct {
	Parameters struct {
		Scope      string          `json:"scope"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"parameters"`
	Responses map[string]struct {
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func loadFixture(t *testing.T, name string) fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// rehost replaces the scheme and host of link with those of base, keeping path and query.
func rehost(t *testing.T, link, base string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := url.Parse(base)
	u.Scheme, u.Host = b.Scheme, b.Host
	return u.String()
}

// fakeAPI is a management endpoint and a storage host on loopback, scripted per test.
type fakeAPI struct {
	t    *testing.T
	arm  *httptest.Server
	blob *httptest.Server

	mu        sync.Mutex
	armCalls  []string // "METHOD path?query"
	blobCalls []string
	blobAuth  []string // Authorization headers seen by the storage host
	armAuth   []string
	postBody  []byte

	// post answers the POST; poll answers poll number n (from 0).
	post func(w http.ResponseWriter, r *http.Request)
	poll func(n int, w http.ResponseWriter, r *http.Request)
	// blobHandler serves the blobs (default: blobs by path).
	blobHandler http.HandlerFunc
	blobs       map[string][]byte
	polls       int
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, blobs: map[string][]byte{}}
	f.arm = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.armCalls = append(f.armCalls, r.Method+" "+r.URL.RequestURI())
		f.armAuth = append(f.armAuth, r.Header.Get("Authorization"))
		var n int
		if r.Method == http.MethodPost {
			f.postBody = body
		} else {
			n = f.polls
			f.polls++
		}
		f.mu.Unlock()
		switch {
		case r.Method == http.MethodPost && f.post != nil:
			f.post(w, r)
		case r.Method == http.MethodGet && f.poll != nil:
			f.poll(n, w, r)
		default:
			http.Error(w, "unexpected", http.StatusTeapot)
		}
	}))
	f.blob = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.blobCalls = append(f.blobCalls, r.Method+" "+r.URL.RequestURI())
		f.blobAuth = append(f.blobAuth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		if f.blobHandler != nil {
			f.blobHandler(w, r)
			return
		}
		b, ok := f.blobs[r.URL.Path]
		if !ok || r.URL.Query().Get("sig") == "" {
			http.Error(w, "AuthenticationFailed", http.StatusForbidden)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(f.arm.Close)
	t.Cleanup(f.blob.Close)
	return f
}

// accept answers 202 with a Location on the fake endpoint.
func (f *fakeAPI) accept(location, retryAfter string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", rehost(f.t, location, f.arm.URL))
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// result writes a 200 operation result.
func result(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// resultBody builds an operation result whose blobs live on the fake storage host.
func (f *fakeAPI) resultBody(status, validTill string, blobs map[string][]byte) []byte {
	res := Result{ID: "op", Name: "00000000-0000-0000-0000-000000000001", Status: status, ValidTill: validTill}
	if status == StatusCompleted {
		res.Manifest = &Manifest{ManifestVersion: APIVersion, DataFormat: DataFormatCSV, BlobCount: len(blobs)}
		for _, p := range sortedKeys(blobs) {
			f.blobs[p] = blobs[p]
			res.Manifest.Blobs = append(res.Manifest.Blobs, Blob{BlobLink: f.blob.URL + p + "?sv=2020-05-31&sr=b&sig=" + secretSig, ByteCount: int64(len(blobs[p]))})
			res.Manifest.ByteCount += int64(len(blobs[p]))
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// secretSig is the SAS signature of the fake blob links; it must never show up in errors or logs.
const secretSig = "c2VjcmV0LXNhcy1zaWduYXR1cmU%3D"

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func (f *fakeAPI) calls() (arm, blob []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.armCalls...), append([]string(nil), f.blobCalls...)
}

// testClient returns a client for f whose polls record their waits instead of sleeping.
func testClient(t *testing.T, f *fakeAPI, now time.Time, mod func(*Options)) (*Client, *[]time.Duration) {
	t.Helper()
	o := &Options{
		Endpoint: f.arm.URL,
		ClientOptions: policy.ClientOptions{
			Transport: f.arm.Client(),
			Retry:     policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
		},
		PollInterval: time.Millisecond,
		Now:          func() time.Time { return now },
	}
	if mod != nil {
		mod(o)
	}
	c, err := NewClient(mgmt.StaticToken(testToken), o)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return c, waits
}

// collector is a paging.Handler that keeps what it gets.
type collector struct {
	rows  []string
	pages []paging.Page
	err   error // returned by Record
}

func (c *collector) Record(_ context.Context, raw []byte) error {
	if c.err != nil {
		return c.err
	}
	c.rows = append(c.rows, string(raw))
	return nil
}

func (c *collector) PageDone(_ context.Context, p paging.Page) error {
	c.pages = append(c.pages, p)
	return nil
}

// logCapture returns a context whose zerolog logger writes into buf at debug level.
func logCapture(buf *bytes.Buffer) context.Context {
	return zerolog.New(buf).Level(zerolog.DebugLevel).WithContext(context.Background())
}

func TestFixtureFlows(t *testing.T) {
	tests := []struct {
		file string
		req  func(sc scope.Scope) Request
		now  time.Time
	}{
		{"GenerateCostDetailsReportBySubscriptionAndTimePeriod.json", timeRange("2020-03-01", "2020-03-15"), date("2020-03-20")},
		{"GenerateCostDetailsReportByBillingAccountEnterpriseAgreementCustomerAndBillingPeriod.json",
			func(sc scope.Scope) Request {
				return Request{Scope: sc, Metric: MetricActualCost, BillingPeriod: period.Period{Year: 2022, Month: time.May}}
			}, date("2022-05-09")},
		{"GenerateCostDetailsReportByBillingProfileAndInvoiceId.json", invoice("M1234567"), date("2022-05-09")},
		{"GenerateCostDetailsReportByBillingProfileAndInvoiceIdAndCustomerId.json", invoice("M1234567"), date("2022-05-09")},
		{"GenerateCostDetailsReportByCustomerAndTimePeriod.json", timeRange("2020-03-01", "2020-03-15"), date("2020-04-01")},
		{"GenerateCostDetailsReportByDepartmentsAndTimePeriod.json", timeRange("2020-03-01", "2020-03-15"), date("2020-04-01")},
		{"GenerateCostDetailsReportByEnrollmentAccountsAndTimePeriod.json", timeRange("2020-03-01", "2020-03-15"), date("2020-04-01")},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".json"), func(t *testing.T) {
			fx := loadFixture(t, tt.file)
			f := newFakeAPI(t)
			accepted := fx.Responses["202"].Headers
			f.post = f.accept(accepted["Location"], accepted["Retry-After"])
			// The published result, with its blob link moved to the fake storage host: only
			// the scheme and host are rewritten, path and SAS query stay as published.
			var res map[string]any
			if err := json.Unmarshal(fx.Responses["200"].Body, &res); err != nil {
				t.Fatal(err)
			}
			blobs := res["manifest"].(map[string]any)["blobs"].([]any)
			link := blobs[0].(map[string]any)["blobLink"].(string)
			blobs[0].(map[string]any)["blobLink"] = rehost(t, link, f.blob.URL)
			lu, _ := url.Parse(link)
			f.blobs[lu.Path] = []byte(sampleCSV)
			// The served blob replaces the published one, and so does its size: the client
			// resumes a blob that ends before the manifest's byteCount.
			blobs[0].(map[string]any)["byteCount"] = len(sampleCSV)
			body, _ := json.Marshal(res)
			f.poll = func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 0 { // still running once, as the API does
					f.accept(accepted["Location"], accepted["Retry-After"])(w, r)
					return
				}
				result(w, body)
			}

			sc := scope.MustParse(fx.Parameters.Scope)
			c, waits := testClient(t, f, tt.now, nil)
			var h collector
			if err := c.Report(context.Background(), tt.req(sc), &h); err != nil {
				t.Fatalf("Report: %v", err)
			}

			if !jsonEqual(f.postBody, fx.Parameters.Parameters) {
				t.Errorf("request body = %s, want %s", f.postBody, fx.Parameters.Parameters)
			}
			arm, blob := f.calls()
			wantPost := "POST /" + fx.Parameters.Scope + "/providers/Microsoft.CostManagement/generateCostDetailsReport?api-version=2022-05-01"
			lu2, _ := url.Parse(accepted["Location"])
			wantPoll := "GET " + lu2.RequestURI()
			if want := []string{wantPost, wantPoll, wantPoll}; !reflect.DeepEqual(arm, want) {
				t.Errorf("management calls:\ngot  %q\nwant %q", arm, want)
			}
			if want := []string{"GET " + lu.RequestURI()}; !reflect.DeepEqual(blob, want) {
				t.Errorf("blob calls = %q, want %q", blob, want)
			}
			for i, a := range f.armAuth {
				if a != "Bearer "+testToken {
					t.Errorf("management call %d Authorization = %q, want the bearer token", i, a)
				}
			}
			for i, a := range f.blobAuth {
				if a != "" {
					t.Errorf("blob call %d carried Authorization %q; the SAS alone must authorise it", i, a)
				}
			}
			if want := []time.Duration{60 * time.Second, 60 * time.Second}; !reflect.DeepEqual(*waits, want) {
				t.Errorf("waits between polls = %v, want the fixture's Retry-After %v", *waits, want)
			}
			if !reflect.DeepEqual(h.rows, sampleRows) {
				t.Errorf("rows:\ngot  %q\nwant %q", h.rows, sampleRows)
			}
			wantPage := paging.Page{Index: 0, Records: 3, Bytes: int64(len(sampleCSV)), StatusCode: 200}
			if len(h.pages) != 1 || h.pages[0] != wantPage {
				t.Errorf("pages = %+v, want [%+v]", h.pages, wantPage)
			}
		})
	}
}

func mustPeriod(s string) period.Period {
	p, err := period.Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

func timeRange(start, end string) func(scope.Scope) Request {
	return func(sc scope.Scope) Request {
		return Request{Scope: sc, Metric: MetricActualCost, Start: date(start), End: date(end)}
	}
}

func invoice(id string) func(scope.Scope) Request {
	return func(sc scope.Scope) Request { return Request{Scope: sc, Metric: MetricActualCost, InvoiceID: id} }
}

func date(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestFixtureResultsParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil || len(files) != 8 {
		t.Fatalf("fixtures: %v, %d files, want 8", err, len(files))
	}
	for _, file := range files {
		fx := loadFixture(t, filepath.Base(file))
		var res Result
		if err := json.Unmarshal(fx.Responses["200"].Body, &res); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		vt, ok := res.validTill()
		if res.Status != StatusCompleted || res.Manifest == nil || len(res.Manifest.Blobs) != 1 ||
			res.Manifest.BlobCount != 1 || res.Manifest.DataFormat != DataFormatCSV || !ok ||
			!vt.Equal(time.Date(2022, 5, 10, 8, 8, 46, 197325200, time.UTC)) {
			t.Errorf("%s: parsed %+v (validTill %v, %v)", file, res, vt, ok)
		}
		if got := res.Manifest.Blobs[0].ByteCount; got != 32741 {
			t.Errorf("%s: blob byteCount = %d, want 32741", file, got)
		}
	}
}

func TestReportStatuses(t *testing.T) {
	now := date("2024-06-10")
	req := Request{Scope: scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000001"), Metric: MetricAmortizedCost,
		Start: date("2024-05-01"), End: date("2024-05-31")}
	loc := "http://x/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.CostManagement/costDetailsOperationResults/1?api-version=2022-05-01"
	validTill := now.Add(time.Hour).Format(time.RFC3339Nano)

	tests := []struct {
		name      string
		setup     func(f *fakeAPI)
		wantErr   error
		wantInErr string
		wantRows  int
		wantPages []paging.Page
		// wantAPIStatus, when set, is the status of the *mgmt.APIError the error must
		// wrap; IsPermanent must then say true.
		wantAPIStatus int
	}{
		{
			name: "no data found",
			setup: func(f *fakeAPI) {
				f.post = f.accept(loc, "1")
				f.poll = func(_ int, w http.ResponseWriter, _ *http.Request) {
					result(w, f.resultBody(StatusNoDataFound, validTill, nil))
				}
			},
			wantPages: []paging.Page{{StatusCode: 204}},
		},
		{
			name: "204 from the poll",
			setup: func(f *fakeAPI) {
				f.post = f.accept(loc, "1")
				f.poll = func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
			},
			wantPages: []paging.Page{{StatusCode: 204}},
		},
		{
			name: "completed at once (200 to the POST), two blobs, one gzip",
			setup: func(f *fakeAPI) {
				f.post = func(w http.ResponseWriter, _ *http.Request) {
					result(w, f.resultBody(StatusCompleted, validTill, map[string][]byte{
						"/r/part0.csv":    []byte(sampleCSV),
						"/r/part1.csv.gz": gzipped(t, sampleCSV),
					}))
				}
			},
			wantRows: 6,
			wantPages: []paging.Page{
				{Index: 0, Records: 3, Bytes: int64(len(sampleCSV)), StatusCode: 200},
				{Index: 1, Records: 3, Bytes: int64(len(gzipped(t, sampleCSV))), StatusCode: 200},
			},
		},
		{
			name: "failed",
			setup: func(f *fakeAPI) {
				f.post = f.accept(loc, "1")
				f.poll = func(_ int, w http.ResponseWriter, _ *http.Request) {
					result(w, []byte(`{"name":"op-7","status":"Failed","error":{"code":"ReportGenerationFailed","message":"internal failure"}}`))
				}
			},
			wantErr:   ErrReportFailed,
			wantInErr: `operation op-7): code "ReportGenerationFailed": internal failure`,
		},
		{
			name: "expired before download",
			setup: func(f *fakeAPI) {
				f.post = f.accept(loc, "1")
				f.poll = func(_ int, w http.ResponseWriter, _ *http.Request) {
					result(w, f.resultBody(StatusCompleted, now.Add(-time.Second).Format(time.RFC3339Nano), map[string][]byte{"/r/a.csv": []byte(sampleCSV)}))
				}
			},
			wantErr:   ErrReportExpired,
			wantInErr: "report expired before download; will be regenerated next run",
		},
		{
			name: "poll location on another host",
			setup: func(f *fakeAPI) {
				f.post = func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Location", f.blob.URL+"/elsewhere?api-version=2022-05-01")
					w.WriteHeader(http.StatusAccepted)
				}
			},
			wantErr: mgmt.ErrForeignHost,
		},
		{
			name: "later location on another host",
			setup: func(f *fakeAPI) {
				f.post = f.accept(loc, "1")
				f.poll = func(_ int, w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Location", "https://attacker.example/op?api-version=2022-05-01")
					w.WriteHeader(http.StatusAccepted)
				}
			},
			wantErr: mgmt.ErrForeignHost,
		},
		{
			name: "202 without Location",
			setup: func(f *fakeAPI) {
				f.post = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }
			},
			wantInErr: "without a Location header",
		},
		{
			name: "bad request",
			setup: func(f *fakeAPI) {
				f.post = func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("x-ms-request-id", "req-1")
					w.WriteHeader(http.StatusBadRequest)
					io.WriteString(w, `{"error":{"code":"BadRequest","message":"The maximum allowed date range is 1 months"}}`)
				}
			},
			wantInErr:     `400 Bad Request: code "BadRequest": The maximum allowed date range is 1 months (request id req-1)`,
			wantAPIStatus: http.StatusBadRequest,
		},
		{
			name: "redirect refused",
			setup: func(f *fakeAPI) {
				f.post = func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Location", "https://attacker.example/op?api-version=2022-05-01")
					w.WriteHeader(http.StatusFound)
				}
			},
			wantErr:       mgmt.ErrRedirect,
			wantInErr:     "redirect to https://attacker.example refused",
			wantAPIStatus: http.StatusFound,
		},
		{
			name: "poll limit",
			setup: func(f *fakeAPI) {
				f.post = f.accept(loc, "1")
				f.poll = func(_ int, w http.ResponseWriter, r *http.Request) { f.accept(loc, "1")(w, r) }
			},
			wantErr: ErrPollLimit,
		},
		{
			name: "still running in a 200",
			setup: func(f *fakeAPI) {
				f.post = f.accept(loc, "1")
				f.poll = func(n int, w http.ResponseWriter, _ *http.Request) {
					if n < 2 {
						result(w, []byte(`{"status":"InProgress"}`))
						return
					}
					result(w, f.resultBody(StatusCompleted, validTill, map[string][]byte{"/r/a.csv": []byte(sampleCSV)}))
				}
			},
			wantRows:  3,
			wantPages: []paging.Page{{Index: 0, Records: 3, Bytes: int64(len(sampleCSV)), StatusCode: 200}},
		},
		{
			name: "blob link refused by storage",
			setup: func(f *fakeAPI) {
				f.post = func(w http.ResponseWriter, _ *http.Request) {
					result(w, f.resultBody(StatusCompleted, validTill, map[string][]byte{"/r/a.csv": []byte(sampleCSV)}))
				}
				f.blobHandler = func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("x-ms-error-code", "AuthenticationFailed")
					http.Error(w, "Server failed to authenticate the request.", http.StatusForbidden)
				}
			},
			wantInErr:     "403 Forbidden",
			wantAPIStatus: http.StatusForbidden,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			tt.setup(f)
			c, _ := testClient(t, f, now, func(o *Options) { o.MaxPolls = 3 })
			var logs bytes.Buffer
			var h collector
			err := c.Report(logCapture(&logs), req, &h)
			switch {
			case tt.wantErr == nil && tt.wantInErr == "":
				if err != nil {
					t.Fatalf("Report: %v", err)
				}
			case err == nil:
				t.Fatalf("Report succeeded, want an error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("err = %v, want errors.Is %v", err, tt.wantErr)
			case !strings.Contains(err.Error(), tt.wantInErr):
				t.Errorf("err = %v, want it to contain %q", err, tt.wantInErr)
			}
			if len(h.rows) != tt.wantRows {
				t.Errorf("rows = %d, want %d", len(h.rows), tt.wantRows)
			}
			if tt.wantPages != nil && !reflect.DeepEqual(h.pages, tt.wantPages) {
				t.Errorf("pages = %+v, want %+v", h.pages, tt.wantPages)
			}
			if tt.wantAPIStatus != 0 {
				var ae *mgmt.APIError
				if !errors.As(err, &ae) || ae.StatusCode != tt.wantAPIStatus {
					t.Errorf("err = %v, want a *mgmt.APIError with status %d", err, tt.wantAPIStatus)
				}
				if !IsPermanent(err) {
					t.Errorf("IsPermanent(%v) = false, want true", err)
				}
			}
			if err != nil && strings.Contains(err.Error(), secretSig) {
				t.Errorf("error shows the SAS signature: %v", err)
			}
			if strings.Contains(logs.String(), secretSig) || strings.Contains(logs.String(), "sig=") {
				t.Errorf("logs show the SAS signature:\n%s", logs.String())
			}
			_, blob := f.calls()
			if errors.Is(err, ErrReportExpired) || errors.Is(err, mgmt.ErrForeignHost) {
				if len(blob) != 0 {
					t.Errorf("storage got %q, want no call", blob)
				}
			}
		})
	}
}

func TestInvalidRequestsMakeNoCall(t *testing.T) {
	now := date("2024-06-10")
	sub := scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000001")
	ea := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/12345")
	mca := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/12345:6789_2019-05-31")
	mg := scope.MustParse("/providers/Microsoft.Management/managementGroups/mg1")
	p := mustPeriod
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{"management group", Request{Scope: mg, Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-31")},
			"does not support management group scopes"},
		{"too old", Request{Scope: sub, Metric: MetricActualCost, Start: date("2023-04-30"), End: date("2023-05-02")},
			"older than the API serves (13 months: nothing before 2023-05-11)"},
		{"13 calendar months back is too old from now", Request{Scope: sub, Metric: MetricActualCost, Start: date("2023-05-05"), End: date("2023-05-31")},
			"start 2023-05-05 is older than the API serves"},
		{"too old billing period", Request{Scope: ea, Metric: MetricActualCost, BillingPeriod: p("202304")},
			"start 2023-04-01 is older than the API serves"},
		{"longer than a month", Request{Scope: sub, Metric: MetricActualCost, Start: date("2024-04-15"), End: date("2024-05-15")},
			"longer than one month"},
		{"end before start", Request{Scope: sub, Metric: MetricActualCost, Start: date("2024-05-02"), End: date("2024-05-01")},
			"ends before it starts"},
		{"no end", Request{Scope: sub, Metric: MetricActualCost, Start: date("2024-05-02")}, "needs both a start and an end"},
		{"billing period on MCA", Request{Scope: mca, Metric: MetricActualCost, BillingPeriod: p("202405")},
			"only EA scopes"},
		{"invoice on subscription", Request{Scope: sub, Metric: MetricActualCost, InvoiceID: "M1"},
			"only MCA billing profile and customer scopes"},
		{"two periods", Request{Scope: ea, Metric: MetricActualCost, BillingPeriod: p("202405"), Start: date("2024-05-01"), End: date("2024-05-02")},
			"exactly one of"},
		{"nothing", Request{Scope: sub, Metric: MetricActualCost}, "exactly one of"},
		{"metric", Request{Scope: sub, Metric: "Usage", Start: date("2024-05-01"), End: date("2024-05-02")}, `metric "Usage"`},
		{"no scope", Request{Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}, "no scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			c, _ := testClient(t, f, now, nil)
			err := c.Report(context.Background(), tt.req, &collector{})
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want ErrInvalidRequest containing %q", err, tt.wantErr)
			}
			if !IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = false, want true", err)
			}
			if arm, blob := f.calls(); len(arm)+len(blob) != 0 {
				t.Errorf("calls = %q %q, want none", arm, blob)
			}
		})
	}
}

func TestReportRequestBodies(t *testing.T) {
	now := time.Date(2024, 6, 10, 15, 0, 0, 0, time.UTC)
	sub := scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000001")
	dept := scope.MustParse("/providers/Microsoft.Billing/departments/42")
	profile := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/12345:6789_2019-05-31/billingProfiles/P1")
	mg := scope.MustParse("/providers/Microsoft.Management/managementGroups/mg1")
	days := func(sc scope.Scope, metric, from, to string) Request {
		return Request{Scope: sc, Metric: metric, Start: date(from), End: date(to)}
	}
	tests := []struct {
		name     string
		req      Request
		wantBody string // "" when the request is refused before any call
		wantErr  string
	}{
		{"EA billing period", Request{Scope: dept, Metric: MetricActualCost, BillingPeriod: mustPeriod("202405")},
			`{"metric":"ActualCost","billingPeriod":"202405"}`, ""},
		{"days", days(sub, MetricAmortizedCost, "2024-05-01", "2024-05-31"),
			`{"metric":"AmortizedCost","timePeriod":{"start":"2024-05-01","end":"2024-05-31"}}`, ""},
		{"a range past today ends today", days(profile, MetricActualCost, "2024-06-01", "2024-06-30"),
			`{"metric":"ActualCost","timePeriod":{"start":"2024-06-01","end":"2024-06-10"}}`, ""},
		{"invoice", Request{Scope: profile, Metric: MetricActualCost, InvoiceID: "G123456789"},
			`{"metric":"ActualCost","invoiceId":"G123456789"}`, ""},
		{"a range starting after today is not cut", days(sub, MetricActualCost, "2024-06-11", "2024-06-12"),
			`{"metric":"ActualCost","timePeriod":{"start":"2024-06-11","end":"2024-06-12"}}`, ""},
		{"management group", days(mg, MetricActualCost, "2024-05-01", "2024-05-31"), "", "management group"},
		{"too old", days(sub, MetricActualCost, "2023-03-01", "2023-03-31"), "", "older than the API serves"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.post = func(w http.ResponseWriter, _ *http.Request) {
				result(w, []byte(`{"status":"NoDataFound"}`))
			}
			c, _ := testClient(t, f, now, nil)
			err := c.Report(context.Background(), tt.req, &collector{})
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want ErrInvalidRequest containing %q", err, tt.wantErr)
				}
				if arm, _ := f.calls(); len(arm) != 0 {
					t.Errorf("calls = %q, want none", arm)
				}
				return
			}
			if err != nil {
				t.Fatalf("Report: %v", err)
			}
			if !jsonEqual(f.postBody, []byte(tt.wantBody)) {
				t.Errorf("body = %s, want %s", f.postBody, tt.wantBody)
			}
			arm, _ := f.calls()
			if want := "POST " + tt.req.Scope.Path() + "/providers/Microsoft.CostManagement/generateCostDetailsReport?api-version=2022-05-01"; len(arm) != 1 || arm[0] != want {
				t.Errorf("calls = %q, want [%q]", arm, want)
			}
		})
	}
	c, _ := testClient(t, newFakeAPI(t), now, nil)
	if c.APIVersion() != "2022-05-01" {
		t.Errorf("APIVersion = %q", c.APIVersion())
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	now := date("2024-06-10")
	loc := "http://x/subscriptions/s/providers/Microsoft.CostManagement/costDetailsOperationResults/1?api-version=2022-05-01"
	tests := []struct {
		name     string
		headers  []map[string]string // of the POST's 202, then of each poll's 202
		interval time.Duration
		want     []time.Duration
	}{
		{"Retry-After seconds", []map[string]string{{"Retry-After": "3"}, {"Retry-After": "7"}}, time.Millisecond,
			[]time.Duration{3 * time.Second, 7 * time.Second}},
		{"retry-after-ms", []map[string]string{{"Retry-After-Ms": "1500"}, {"x-ms-retry-after-ms": "20"}}, time.Millisecond,
			[]time.Duration{1500 * time.Millisecond, 20 * time.Millisecond}},
		{"milliseconds win over seconds, as in azcore", []map[string]string{{"Retry-After": "1", "Retry-After-Ms": "5"}, {}}, time.Millisecond,
			[]time.Duration{5 * time.Millisecond, time.Millisecond}},
		{"no hint: the poll interval", []map[string]string{{}, {}}, 5 * time.Second,
			[]time.Duration{5 * time.Second, 5 * time.Second}},
		{"a hint below the interval is honoured; a zero hint waits the interval", []map[string]string{{"Retry-After": "1"}, {"Retry-After": "0"}}, 2 * time.Second,
			[]time.Duration{time.Second, 2 * time.Second}},
		{"a huge hint is capped", []map[string]string{{"Retry-After": "86400"}, {}}, time.Millisecond,
			[]time.Duration{maxPollWait, time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			reply := func(h map[string]string) func(http.ResponseWriter, *http.Request) {
				return func(w http.ResponseWriter, _ *http.Request) {
					for k, v := range h {
						w.Header().Set(k, v)
					}
					w.Header().Set("Location", rehost(t, loc, f.arm.URL))
					w.WriteHeader(http.StatusAccepted)
				}
			}
			f.post = reply(tt.headers[0])
			f.poll = func(n int, w http.ResponseWriter, r *http.Request) {
				if n+1 < len(tt.headers) {
					reply(tt.headers[n+1])(w, r)
					return
				}
				result(w, []byte(`{"status":"NoDataFound"}`))
			}
			c, waits := testClient(t, f, now, func(o *Options) { o.PollInterval = tt.interval })
			req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
			if err := c.Report(context.Background(), req, &collector{}); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*waits, tt.want) {
				t.Errorf("waits = %v, want %v", *waits, tt.want)
			}
		})
	}
}

func TestThrottledPostIsRetried(t *testing.T) {
	// 429 with the Cost Management hint, then 503, then success: the one azcore retry layer
	// handles both before the report is polled.
	f := newFakeAPI(t)
	var posts int
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		posts++
		switch posts {
		case 1:
			w.Header().Set("x-ms-ratelimit-microsoft.costmanagement-entity-retry-after", "0.001")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.Header().Set("Retry-After-Ms", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			result(w, []byte(`{"status":"NoDataFound"}`))
		}
	}
	// The hint policy rounds the hint up to whole seconds for Retry-After: allow one second.
	c, _ := testClient(t, f, date("2024-06-10"), func(o *Options) { o.ClientOptions.Retry.MaxRetryDelay = 2 * time.Second })
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	if err := c.Report(context.Background(), req, &collector{}); err != nil {
		t.Fatal(err)
	}
	if posts != 3 {
		t.Errorf("POSTs = %d, want 3", posts)
	}
}

func TestBlobResume(t *testing.T) {
	// The storage host cuts the first response off mid-row; the client asks for the rest with a
	// Range request (If-Match on the ETag) and the rows come out whole and once each.
	big := []byte(sampleCSV + strings.Repeat("03/04/2020,2,EUR,2.2,\"x, y\",True"+samplePad+"\n", 2000))
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, date("2024-06-11").Format(time.RFC3339), map[string][]byte{"/r/a.csv": big}))
	}
	var ranges []string
	var n int
	f.blobHandler = func(w http.ResponseWriter, r *http.Request) {
		n++
		ranges = append(ranges, r.Header.Get("Range")+"|"+r.Header.Get("If-Match"))
		w.Header().Set("ETag", `"v1"`)
		if n == 1 { // send a third of the body, then drop the connection
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.WriteHeader(http.StatusOK)
			w.Write(big[:len(big)/3])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(big))
	}
	c, _ := testClient(t, f, date("2024-06-10"), nil)
	var h collector
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	var logs bytes.Buffer
	if err := c.Report(logCapture(&logs), req, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.rows) != 2003 {
		t.Errorf("rows = %d, want 2003", len(h.rows))
	}
	if want := []string{"|", fmt.Sprintf("bytes=%d-|\"v1\"", len(big)/3)}; !reflect.DeepEqual(ranges, want) {
		t.Errorf("requests (Range|If-Match) = %q, want %q", ranges, want)
	}
	if len(h.pages) != 1 || h.pages[0].Bytes != int64(len(big)) || h.pages[0].Records != 2003 {
		t.Errorf("pages = %+v", h.pages)
	}
	if !strings.Contains(logs.String(), "resuming") || strings.Contains(logs.String(), secretSig) {
		t.Errorf("logs: want a resume line and no SAS:\n%s", logs.String())
	}
}

func TestTruncatedBlobIsResumed(t *testing.T) {
	// The storage host ends the first response cleanly after a third of the blob, with a
	// Content-Length that matches (so HTTP sees nothing wrong), in the middle of a row. The
	// manifest's byteCount tells the body is short: the client resumes with a Range request,
	// and every row comes out whole and once.
	big := []byte(sampleCSV + strings.Repeat("03/04/2020,2,EUR,2.2,\"x, y\",True"+samplePad+"\n", 2000))
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, date("2024-06-11").Format(time.RFC3339), map[string][]byte{"/r/a.csv": big}))
	}
	var ranges []string
	f.blobHandler = func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		w.Header().Set("ETag", `"v1"`)
		if len(ranges) == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)/3))
			w.WriteHeader(http.StatusOK)
			w.Write(big[:len(big)/3])
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(big))
	}
	c, waits := testClient(t, f, date("2024-06-10"), nil)
	var h collector
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	if err := c.Report(context.Background(), req, &h); err != nil {
		t.Fatal(err)
	}
	if len(h.rows) != 2003 || len(h.pages) != 1 || h.pages[0].Bytes != int64(len(big)) {
		t.Errorf("rows = %d, pages = %+v; want 2003 rows in one blob of %d bytes", len(h.rows), h.pages, len(big))
	}
	if want := []string{"", fmt.Sprintf("bytes=%d-", len(big)/3)}; !reflect.DeepEqual(ranges, want) {
		t.Errorf("Range headers = %q, want %q", ranges, want)
	}
	if !slices.Contains(*waits, time.Second) {
		t.Errorf("waits = %v, want the 1 s backoff before the resume", *waits)
	}
}

func TestBrokenBlobIsPageError(t *testing.T) {
	// A body that keeps breaking fails after maxResumes resumes with a PageError that says how
	// many rows were delivered; the message has no SAS.
	body := []byte(sampleCSV)
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, date("2024-06-11").Format(time.RFC3339), map[string][]byte{"/r/a.csv": body}))
	}
	f.blobHandler = func(w http.ResponseWriter, r *http.Request) {
		// Honour the Range, but break off after 10 bytes every time.
		start := 0
		if v := r.Header.Get("Range"); v != "" {
			fmt.Sscanf(v, "bytes=%d-", &start)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(body)-1, len(body)))
			w.Header().Set("Content-Length", fmt.Sprint(len(body)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
		}
		w.Write(body[start : start+10])
		w.(http.Flusher).Flush()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}
	c, _ := testClient(t, f, date("2024-06-10"), nil)
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	err := c.Report(context.Background(), req, &collector{})
	var pe *paging.PageError
	if !errors.As(err, &pe) || pe.RecordsDelivered != 0 {
		t.Fatalf("err = %v, want a PageError with 0 records delivered", err)
	}
	if strings.Contains(err.Error(), secretSig) || strings.Contains(err.Error(), "sig=c2") {
		t.Errorf("error shows the SAS: %v", err)
	}
	if _, blob := f.calls(); len(blob) != 1+maxResumes {
		t.Errorf("blob requests = %d, want %d (the first and %d resumes)", len(blob), 1+maxResumes, maxResumes)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("body broke off at byte 40 after %d resumes", maxResumes)) {
		t.Errorf("err = %v, want the offset and the resumes", err)
	}
}

func TestResumeRefused(t *testing.T) {
	// A server that answers a Range request with the whole blob cannot be resumed from: the
	// blob fails at once instead of delivering rows twice.
	body := []byte(sampleCSV)
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, date("2024-06-11").Format(time.RFC3339), map[string][]byte{"/r/a.csv": body}))
	}
	f.blobHandler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)-20])
		w.(http.Flusher).Flush()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}
	c, _ := testClient(t, f, date("2024-06-10"), nil)
	var h collector
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	err := c.Report(context.Background(), req, &h)
	var pe *paging.PageError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "the server ignored the Range request") {
		t.Fatalf("err = %v, want a PageError saying the Range was ignored", err)
	}
	if pe.RecordsDelivered != len(h.rows) || len(h.rows) != 2 {
		t.Errorf("PageError says %d delivered, handler got %d, want 2", pe.RecordsDelivered, len(h.rows))
	}
	if _, blob := f.calls(); len(blob) != 2 {
		t.Errorf("blob requests = %d, want 2", len(blob))
	}
}

func TestHandlerErrorStops(t *testing.T) {
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, date("2024-06-11").Format(time.RFC3339), map[string][]byte{"/r/a.csv": []byte(sampleCSV)}))
	}
	c, _ := testClient(t, f, date("2024-06-10"), nil)
	stop := errors.New("disk full")
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	err := c.Report(context.Background(), req, &collector{err: stop})
	var pe *paging.PageError
	if !errors.Is(err, stop) || errors.As(err, &pe) {
		t.Errorf("err = %v, want the handler's error, not a PageError", err)
	}
}

func TestSASNeverLoggedByAzcore(t *testing.T) {
	// azcore's own request log (bridged to the app's logger at debug level) must not show the
	// SAS either: the blob pipeline allows no query parameter into it.
	var mu sync.Mutex
	var lines []string
	azlog.SetListener(func(_ azlog.Event, msg string) {
		mu.Lock()
		lines = append(lines, msg)
		mu.Unlock()
	})
	defer azlog.SetListener(nil)
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, date("2024-06-11").Format(time.RFC3339), map[string][]byte{"/r/a.csv": []byte(sampleCSV)}))
	}
	c, _ := testClient(t, f, date("2024-06-10"), func(o *Options) {
		o.ClientOptions.Logging.AllowedQueryParams = []string{"sig", "sv"} // even when the caller allows it for ARM
	})
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	if err := c.Report(context.Background(), req, &collector{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	sawBlob := false
	for _, l := range lines {
		if strings.Contains(l, "/r/a.csv") {
			sawBlob = true
		}
		if strings.Contains(l, secretSig) {
			t.Errorf("azcore log shows the SAS: %s", l)
		}
	}
	if !sawBlob {
		t.Errorf("azcore logged no blob request; the test proves nothing:\n%s", strings.Join(lines, "\n"))
	}
}

func TestNewClientOptions(t *testing.T) {
	tests := []struct {
		name    string
		o       *Options
		wantErr string
	}{
		{"defaults", nil, ""},
		{"loopback http", &Options{Endpoint: "http://127.0.0.1:8080"}, ""},
		{"remote http", &Options{Endpoint: "http://management.example"}, "plain http is allowed only on a loopback address"},
		{"path", &Options{Endpoint: "https://management.azure.com/x"}, "must not contain a path"},
		{"negative", &Options{PollInterval: -1, MaxPolls: -1}, "poll interval -1ns is negative"},
		{"api version", &Options{ClientOptions: policy.ClientOptions{APIVersion: "2023-01-01"}}, "ClientOptions.APIVersion is not used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(mgmt.StaticToken("x"), tt.o)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("NewClient = %v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := NewClient(nil, nil); err == nil || !strings.Contains(err.Error(), "credential is nil") {
		t.Errorf("nil credential: err = %v", err)
	}
	c, _ := NewClient(mgmt.StaticToken("x"), nil)
	if c.Endpoint() != mgmt.DefaultEndpoint || c.pollInterval != DefaultPollInterval || c.maxPolls != DefaultMaxPolls {
		t.Errorf("defaults: endpoint %q, interval %s, polls %d", c.Endpoint(), c.pollInterval, c.maxPolls)
	}
}

func TestEarliest(t *testing.T) {
	// 13 months back from now, the next day (the start must be after that instant).
	for now, want := range map[string]string{
		"2024-06-10T12:00:00Z": "2023-05-11",
		"2024-06-10T00:00:00Z": "2023-05-11",
		"2024-06-01T08:00:00Z": "2023-05-02",
		"2024-03-31T23:59:59Z": "2023-03-04", // 2023-02-31 normalises to 2023-03-03, as in the sandbox
		"2024-12-31T10:00:00Z": "2023-12-02",
	} {
		n, err := time.Parse(time.RFC3339, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := Earliest(n).Format(time.DateOnly); got != want {
			t.Errorf("Earliest(%s) = %s, want %s", now, got, want)
		}
	}
}

// expiringHandler moves the clock past validTill once the first blob is done.
type expiringHandler struct {
	collector
	clock *time.Time
	after time.Time
}

func (h *expiringHandler) PageDone(ctx context.Context, p paging.Page) error {
	*h.clock = h.after
	return h.collector.PageDone(ctx, p)
}

func TestExpiryBetweenBlobs(t *testing.T) {
	// validTill is checked before each blob: a report whose links expire while the first blob
	// is being written fails before the second is fetched.
	now := date("2024-06-10")
	validTill := now.Add(time.Minute)
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, validTill.Format(time.RFC3339Nano), map[string][]byte{
			"/r/a.csv": []byte(sampleCSV), "/r/b.csv": []byte(sampleCSV),
		}))
	}
	clock := now
	c, _ := testClient(t, f, now, func(o *Options) { o.Now = func() time.Time { return clock } })
	h := &expiringHandler{clock: &clock, after: validTill}
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	err := c.Report(context.Background(), req, h)
	if !errors.Is(err, ErrReportExpired) || !strings.Contains(err.Error(), "blob 2 of 2") {
		t.Errorf("err = %v, want ErrReportExpired at blob 2 of 2", err)
	}
	if _, blob := f.calls(); len(blob) != 1 || len(h.rows) != 3 {
		t.Errorf("blob requests %q, rows %d; want only the first blob and its 3 rows", blob, len(h.rows))
	}
}

func TestStalledBlobIsResumed(t *testing.T) {
	// A body that stalls is cut by the idle watchdog and resumed with a Range request.
	body := []byte(sampleCSV)
	f := newFakeAPI(t)
	f.post = func(w http.ResponseWriter, _ *http.Request) {
		result(w, f.resultBody(StatusCompleted, date("2024-06-11").Format(time.RFC3339), map[string][]byte{"/r/a.csv": body}))
	}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var n int
	f.blobHandler = func(w http.ResponseWriter, r *http.Request) {
		n++
		w.Header().Set("ETag", `"v1"`)
		if n == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:50])
			w.(http.Flusher).Flush()
			select { // stall until the client gives up on this response
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}
	c, _ := testClient(t, f, date("2024-06-10"), func(o *Options) { o.BodyIdleTimeout = 50 * time.Millisecond })
	var h collector
	req := Request{Scope: scope.MustParse("/subscriptions/s"), Metric: MetricActualCost, Start: date("2024-05-01"), End: date("2024-05-02")}
	if err := c.Report(context.Background(), req, &h); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.rows, sampleRows) {
		t.Errorf("rows = %q, want %q", h.rows, sampleRows)
	}
	if n != 2 {
		t.Errorf("blob requests = %d, want 2", n)
	}
}

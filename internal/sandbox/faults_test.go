package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/scope"
)

func TestThrottling(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, &Options{RatePerScope: 2, RatePerTenant: 3, Clock: clock.Now})
	a := usageURL(ts.URL, "/providers/Microsoft.Billing/departments/301001", "api-version=2024-08-01&$top=1")
	b := usageURL(ts.URL, "/providers/Microsoft.Billing/departments/301002", "api-version=2024-08-01&$top=1")
	steps := []struct {
		url       string
		status    int
		remaining string
	}{
		{a, 200, "2"},
		{a, 200, "1"},
		{a, 429, "1"}, // scope a is out of calls; the tenant still has one
		{b, 200, "0"},
		{b, 429, "0"}, // tenant limit
	}
	for i, st := range steps {
		resp, body := get(t, s, st.url)
		if resp.StatusCode != st.status {
			t.Fatalf("step %d: status %d, want %d: %s", i, resp.StatusCode, st.status, body)
		}
		if got := resp.Header.Get(hdrTenantRemaining); got != st.remaining {
			t.Errorf("step %d: %s = %q, want %q", i, hdrTenantRemaining, got, st.remaining)
		}
		if st.status == 429 {
			if got := resp.Header.Get(hdrConsumptionRetryAfter); got != "60" {
				t.Errorf("step %d: %s = %q, want 60", i, hdrConsumptionRetryAfter, got)
			}
			if resp.Header.Get("Retry-After") != "" || resp.Header.Get("retry-after-ms") != "" {
				t.Errorf("step %d: 429 carries Retry-After %q / retry-after-ms %q", i, resp.Header.Get("Retry-After"), resp.Header.Get("retry-after-ms"))
			}
			if code := errorCode(t, body); code != "429" {
				t.Errorf("step %d: code %q", i, code)
			}
		}
	}
	clock.Advance(30 * time.Second)
	resp, _ := get(t, s, a)
	if resp.StatusCode != 429 || resp.Header.Get(hdrConsumptionRetryAfter) != "30" {
		t.Errorf("half a window later: status %d retry-after %q, want 429 and 30", resp.StatusCode, resp.Header.Get(hdrConsumptionRetryAfter))
	}
	clock.Advance(31 * time.Second)
	if resp, body := get(t, s, a); resp.StatusCode != 200 {
		t.Errorf("after the window: status %d: %s", resp.StatusCode, body)
	}
	// 401s are not counted against the budget but report it.
	req, _ := http.NewRequest(http.MethodGet, a, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 || resp.Header.Get(hdrTenantRemaining) != "2" {
		t.Errorf("401: %v %v, want the remaining tenant budget 2", err, resp.Header)
	} else {
		resp.Body.Close()
	}
	// 429s are counted in Stats.
	st := s.Stats()
	if st.Throttled != 3 || st.ByStatus[429] != 3 || st.ByScope["/providers/microsoft.billing/departments/301001"] != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestThrottlingScaledWindow(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, &Options{RatePerScope: 1, RateWindow: 500 * time.Millisecond, Clock: clock.Now})
	u := usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=1")
	if resp, _ := get(t, s, u); resp.StatusCode != 200 {
		t.Fatalf("first call: %d", resp.StatusCode)
	}
	clock.Advance(100 * time.Millisecond)
	resp, _ := get(t, s, u)
	if resp.StatusCode != 429 || resp.Header.Get(hdrConsumptionRetryAfter) != "1" || resp.Header.Get("retry-after-ms") != "400" {
		t.Errorf("status %d, %s %q, retry-after-ms %q; want 429, 1, 400", resp.StatusCode, hdrConsumptionRetryAfter,
			resp.Header.Get(hdrConsumptionRetryAfter), resp.Header.Get("retry-after-ms"))
	}
}

func TestResponseFaults(t *testing.T) {
	cases := []struct {
		fault  Fault
		status int
		check  func(t *testing.T, resp *http.Response, body []byte)
	}{
		{Throttle429Consumption, 429, func(t *testing.T, resp *http.Response, body []byte) {
			if resp.Header.Get(hdrConsumptionRetryAfter) != "2" || resp.Header.Get("Retry-After") != "" {
				t.Errorf("headers %v", resp.Header)
			}
		}},
		{Throttle429RetryAfter, 429, func(t *testing.T, resp *http.Response, body []byte) {
			if resp.Header.Get("Retry-After") != "2" || resp.Header.Get(hdrConsumptionRetryAfter) != "" {
				t.Errorf("headers %v", resp.Header)
			}
		}},
		{Unavailable503, 503, func(t *testing.T, resp *http.Response, body []byte) {
			if resp.Header.Get("Retry-After") != "2" || errorCode(t, body) != "ServiceUnavailable" {
				t.Errorf("headers %v body %s", resp.Header, body)
			}
		}},
		{Internal500, 500, func(t *testing.T, resp *http.Response, body []byte) { errorCode(t, body) }},
		{Gateway504, 504, func(t *testing.T, resp *http.Response, body []byte) {
			if errorCode(t, body) != "GatewayTimeout" {
				t.Errorf("body %s", body)
			}
		}},
		{TokenExpired401, 401, func(t *testing.T, resp *http.Response, body []byte) {
			if errorCode(t, body) != "ExpiredAuthenticationToken" {
				t.Errorf("body %s", body)
			}
			mustContain(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
		}},
		{NonJSONError, 400, func(t *testing.T, resp *http.Response, body []byte) {
			if json.Valid(body) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Errorf("content type %q body %q, want HTML", resp.Header.Get("Content-Type"), body)
			}
			mustContain(t, string(body), "The request is badly formed.")
		}},
	}
	for _, c := range cases {
		t.Run(string(c.fault), func(t *testing.T) {
			s, ts := newTestServer(t, &Options{FaultRetryAfter: 2 * time.Second})
			u := usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=3")
			s.Faults().Inject(c.fault, 1)
			resp, body := get(t, s, u)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			c.check(t, resp, body)
			if resp, _ := get(t, s, u); resp.StatusCode != 200 {
				t.Errorf("after one injection: status %d, want 200", resp.StatusCode)
			}
			if got := s.Stats().Faults[c.fault]; got != 1 {
				t.Errorf("fired %d, want 1", got)
			}
		})
	}
}

func TestBodyFaults(t *testing.T) {
	s, ts := newTestServer(t, &Options{StallMax: 20 * time.Millisecond})
	u := usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=3")
	rawGet := func(t *testing.T) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	t.Run("truncated-json", func(t *testing.T) {
		s.Faults().Inject(TruncatedJSON, 1)
		resp, body, err := rawGet(t)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("err %v status %v", err, resp)
		}
		if json.Valid(body) || strconv.Itoa(len(body)) != resp.Header.Get("Content-Length") || len(body) < 100 {
			t.Errorf("body of %d bytes (Content-Length %s) valid=%v, want cut JSON", len(body), resp.Header.Get("Content-Length"), json.Valid(body))
		}
	})
	for _, f := range []Fault{ResetMidBody, StalledBody} {
		t.Run(string(f), func(t *testing.T) {
			s.Faults().Inject(f, 1)
			resp, body, err := rawGet(t)
			if err == nil {
				t.Fatalf("read %d bytes without error", len(body))
			}
			if resp.StatusCode != 200 || len(body) == 0 || json.Valid(body) {
				t.Errorf("status %d, %d bytes before the error %v", resp.StatusCode, len(body), err)
			}
		})
	}
	t.Run("stalled-body ends at Close", func(t *testing.T) {
		s2, ts2 := newTestServer(t, &Options{StallMax: time.Hour})
		s2.Faults().Inject(StalledBody, 1)
		req, _ := http.NewRequest(http.MethodGet, usageURL(ts2.URL, "/subscriptions/"+s2.w.subs[0].guid, "api-version=2024-08-01&$top=3"), nil)
		req.Header.Set("Authorization", "Bearer "+s2.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 10)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("reading the first bytes: %v", err)
		}
		if err := s2.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Error("body completed after Close, want an error")
		}
	})
	t.Run("nextlink-loop", func(t *testing.T) {
		s.Faults().Inject(NextLinkLoop, 1)
		_, body := get(t, s, u)
		var p page
		if err := json.Unmarshal(body, &p); err != nil || p.NextLink == nil || *p.NextLink != u {
			t.Errorf("nextLink %v, want the request URL %s", p.NextLink, u)
		}
	})
	t.Run("nextlink-foreign-host", func(t *testing.T) {
		s.Faults().Inject(NextLinkForeign, 1)
		_, body := get(t, s, u)
		var p page
		if err := json.Unmarshal(body, &p); err != nil || p.NextLink == nil {
			t.Fatalf("no nextLink: %s", body)
		}
		lu, _ := url.Parse(*p.NextLink)
		tu, _ := url.Parse(ts.URL)
		if lu.Hostname() != "127.0.0.2" || lu.Port() != tu.Port() || lu.Query().Get("$skiptoken") == "" {
			t.Errorf("nextLink %s, want host 127.0.0.2:%s with a skiptoken", *p.NextLink, tu.Port())
		}
	})
	t.Run("new-record-shape", func(t *testing.T) {
		s.Faults().Inject(NewRecordShape, 1)
		_, body := get(t, s, u)
		var p page
		if err := json.Unmarshal(body, &p); err != nil || len(p.Value) != 4 {
			t.Fatalf("%d records, want 3 + 1: %v", len(p.Value), err)
		}
		d := decodeRecord(t, p.Value[3])
		if d.Kind == nil || *d.Kind != "future" || d.Properties["futureProperty"] == nil {
			t.Errorf("last record %s, want kind future with futureProperty", p.Value[3])
		}
		if d.Properties["cost"] != json.Number("0") {
			t.Errorf("future record cost %v, want 0", d.Properties["cost"])
		}
	})
}

func TestFaultSelection(t *testing.T) {
	t.Run("OnPage", func(t *testing.T) {
		s, ts := newTestServer(t, nil)
		s.Faults().OnPage(Internal500, 1)
		resp, body := get(t, s, usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=2"))
		if resp.StatusCode != 200 {
			t.Fatalf("page 0: status %d", resp.StatusCode)
		}
		var p page
		_ = json.Unmarshal(body, &p)
		if resp, _ := get(t, s, *p.NextLink); resp.StatusCode != 500 {
			t.Errorf("page 1: status %d, want 500", resp.StatusCode)
		}
		if resp, _ := get(t, s, *p.NextLink); resp.StatusCode != 200 {
			t.Errorf("page 1 retried: status %d, want 200", resp.StatusCode)
		}
	})
	t.Run("Rate is deterministic", func(t *testing.T) {
		run := func() string {
			s, ts := newTestServer(t, &Options{Faults: NewFaults(7)})
			s.Faults().Rate(Gateway504, 0.5)
			var b strings.Builder
			for i := 0; i < 20; i++ {
				resp, _ := get(t, s, usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=1"))
				b.WriteString(strconv.Itoa(resp.StatusCode) + " ")
			}
			return b.String()
		}
		first, second := run(), run()
		if first != second {
			t.Errorf("runs differ:\n%s\n%s", first, second)
		}
		if !strings.Contains(first, "504") || !strings.Contains(first, "200") {
			t.Errorf("statuses %s, want a mix of 200 and 504", first)
		}
	})
	t.Run("HTTP control", func(t *testing.T) {
		s, ts := newTestServer(t, nil)
		ctl := func(body string) (*http.Response, []byte) {
			return do(t, nil, http.MethodPost, ts.URL+"/sandbox/faults", []byte(body))
		}
		if resp, body := ctl(`{"rules":[{"fault":"504","count":1},{"fault":"503-retry-after","count":1,"page":3}]}`); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		u := usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=1")
		if resp, _ := get(t, s, u); resp.StatusCode != 504 {
			t.Errorf("status %d, want 504", resp.StatusCode)
		}
		_, body := get(t, nil, ts.URL+"/sandbox/faults")
		var st faultState
		if err := json.Unmarshal(body, &st); err != nil || st.Fired[Gateway504] != 1 || len(st.Rules) != 1 || *st.Rules[0].Page != 3 {
			t.Errorf("state %s (%v)", body, err)
		}
		if resp, _ := ctl(`{"clear":true}`); resp.StatusCode != 200 || len(s.Faults().Rules()) != 0 {
			t.Errorf("clear: status %d, rules %v", resp.StatusCode, s.Faults().Rules())
		}
		for _, bad := range []string{`{"rules":[{"fault":"boom"}]}`, `{"rules":[{"fault":"500","target":"mars"}]}`, `{"nope":1}`, `not json`} {
			if resp, _ := ctl(bad); resp.StatusCode != 400 {
				t.Errorf("%s: status %d, want 400", bad, resp.StatusCode)
			}
		}
	})
}

func TestTLSAndStart(t *testing.T) {
	s, err := New(&Options{TLS: true, RecordsPerDay: 1, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || len(s.CAPEM()) == 0 {
		t.Fatalf("URL %q, CA %d bytes", s.URL(), len(s.CAPEM()))
	}
	pool := x509CertPool(t, s.CAPEM())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}}
	req, _ := http.NewRequest(http.MethodGet, usageURL(s.URL(), "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=1"), nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p page
	if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil || !strings.HasPrefix(*p.NextLink, s.URL()) {
		t.Errorf("status %d body %.200s", resp.StatusCode, body)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if _, err := New(&Options{Addr: "0.0.0.0:0"}); err == nil {
		t.Error("New accepted a non-loopback address")
	}
	plain, _ := New(nil)
	if plain.CAPEM() != nil {
		t.Error("CAPEM without TLS")
	}
	if len(plain.Token()) < 32 {
		t.Errorf("default token %q is short", plain.Token())
	}
	_ = plain.Close()
}

func TestStatsEndpoint(t *testing.T) {
	s, ts := newTestServer(t, nil)
	get(t, s, usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=4"))
	get(t, nil, usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01"))
	_, body := get(t, nil, ts.URL+"/sandbox/stats")
	var st Stats
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Pages != 1 || st.Records != 4 || st.ByStatus[200] != 1 || st.ByStatus[401] != 1 {
		t.Errorf("stats %s", body)
	}
}

func TestLogNeverShowsSecrets(t *testing.T) {
	lines := make(chan string, 10)
	s, ts := newTestServer(t, &Options{Logf: func(f string, a ...any) { lines <- sprintf(f, a...) }})
	get(t, s, usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01&$top=1&sig=secret"))
	var line string
	select {
	case line = <-lines: // logged after the response is sent
	case <-time.After(10 * time.Second):
		t.Fatal("no log line")
	}
	mustContain(t, line, "/providers/Microsoft.Consumption/usageDetails 200")
	if strings.Contains(line, s.Token()) || strings.Contains(line, "secret") {
		t.Errorf("log line %q leaks a secret", line)
	}
}

// TestObservedRatesPerKind checks that with ObservedRates each scope kind gets its own limit
// (a department 2 calls a window, a subscription 10, a billing account 6), that every answer
// reports the quota left, and that ThrottleWithoutHeaders leaves only the message.
func TestObservedRatesPerKind(t *testing.T) {
	for _, bare := range []bool{false, true} {
		clock := newFakeClock()
		s, ts := newTestServer(t, &Options{RatePerKind: ObservedRates, RatePerTenant: DocumentedTenantRate, Clock: clock.Now, ThrottleWithoutHeaders: bare})
		scopes := map[string]int{
			"/providers/Microsoft.Billing/departments/301001":                       2,
			"/providers/Microsoft.Billing/enrollmentAccounts/" + firstAccount(s):    2,
			"/providers/Microsoft.Management/managementGroups/" + ManagementGroupID: 2,
			"/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount:      6,
			"/subscriptions/" + s.w.subs[0].guid:                                    10,
			"/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount:     6,
		}
		for sc, limit := range scopes {
			u := usageURL(ts.URL, sc, "api-version=2024-08-01&$top=1")
			for i := 0; i <= limit; i++ {
				resp, body := get(t, s, u)
				want := 200
				if i == limit {
					want = 429
				}
				if resp.StatusCode != want {
					t.Fatalf("%s call %d: status %d, want %d: %s", sc, i+1, resp.StatusCode, want, body)
				}
				if resp.Header.Get(hdrTenantRemaining) == "" {
					t.Errorf("%s call %d: no %s", sc, i+1, hdrTenantRemaining)
				}
				if want == 429 {
					mustContain(t, string(body), "Please retry after 60 seconds.")
					if got := resp.Header.Get(hdrConsumptionRetryAfter); (got == "") != bare {
						t.Errorf("%s (without headers %v): %s = %q", sc, bare, hdrConsumptionRetryAfter, got)
					}
				}
			}
		}
	}
}

// TestCostManagementRemainingQuota checks the Cost Details POST's entity (scope) and tenant
// remaining-quota headers.
func TestCostManagementRemainingQuota(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, &Options{Clock: clock.Now, RatePerKind: ObservedRates, RatePerTenant: DocumentedTenantRate})
	dept := "/providers/Microsoft.Billing/departments/301003"
	for i, want := range []string{"1", "0"} {
		resp, _ := do(t, s, http.MethodPost, generateURL(ts.URL, dept), []byte(`{}`))
		if resp.StatusCode != 202 || resp.Header.Get(hdrCMEntityRemaining) != want || resp.Header.Get(hdrCMTenantRemaining) == "" {
			t.Errorf("POST %d: status %d, entity %q (want %s), tenant %q", i+1, resp.StatusCode,
				resp.Header.Get(hdrCMEntityRemaining), want, resp.Header.Get(hdrCMTenantRemaining))
		}
	}
	resp, _ := do(t, s, http.MethodPost, generateURL(ts.URL, dept), []byte(`{}`))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" {
		t.Errorf("third POST: status %d Retry-After %q, want 429 and 60", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func firstAccount(s *Server) string {
	for _, sc := range s.Scopes() {
		if sc.Kind == scope.EnrollmentAccount {
			return sc.IDs[0]
		}
	}
	return ""
}

// TestEveryNth checks the deterministic rate: every third matching request fires, and BodyMix
// takes the body fault kinds in turn.
func TestEveryNth(t *testing.T) {
	f := NewFaults(1)
	f.Every(BodyMix, TargetUsage, 3)
	f.Every(Internal500, TargetBlob, 2)
	var got []Fault
	for i := 0; i < 9; i++ {
		got = append(got, f.take(TargetUsage, i, nil))
	}
	want := []Fault{"", "", ResetMidBody, "", "", TruncatedJSON, "", "", StalledBody}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("usage faults %q, want %q", got, want)
	}
	if a, b := f.take(TargetBlob, 0, nil), f.take(TargetBlob, 0, nil); a != "" || b != Internal500 {
		t.Errorf("blob faults %q %q, want none then 500", a, b)
	}
	if fired := f.Fired(); fired[ResetMidBody] != 1 || fired[TruncatedJSON] != 1 || fired[StalledBody] != 1 || fired[BodyMix] != 0 {
		t.Errorf("fired %v, want each kind once, counted under its own name", fired)
	}
}

package retryhint

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

func TestHeader(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]string
		want time.Duration
	}{
		{"none", nil, 0},
		{"consumption hint", map[string]string{HeaderConsumptionRetryAfter: "60"}, time.Minute},
		{"hint larger than Retry-After", map[string]string{HeaderConsumptionRetryAfter: "60", "Retry-After": "5"}, time.Minute},
		{"Retry-After larger than hint", map[string]string{HeaderConsumptionRetryAfter: "60", "Retry-After": "90"}, 90 * time.Second},
		{"hint beats millisecond header", map[string]string{HeaderConsumptionRetryAfter: "2", "Retry-After-Ms": "500"}, 2 * time.Second},
		{"millisecond header larger", map[string]string{HeaderConsumptionRetryAfter: "2", "Retry-After-Ms": "5000"}, 5 * time.Second},
		{"x-ms millisecond header", map[string]string{"X-Ms-Retry-After-Ms": "250"}, 250 * time.Millisecond},
		{"milliseconds win over Retry-After, as in azcore", map[string]string{"Retry-After": "1", "Retry-After-Ms": "5"}, 5 * time.Millisecond},
		{"largest cost management variant", map[string]string{
			"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after":    "3",
			"x-ms-ratelimit-microsoft.costmanagement-entity-retry-after": "7",
			"x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after": "5",
		}, 7 * time.Second},
		{"fraction", map[string]string{HeaderConsumptionRetryAfter: "1.5"}, 1500 * time.Millisecond},
		{"not a number", map[string]string{HeaderConsumptionRetryAfter: "soon"}, 0},
		{"negative", map[string]string{HeaderConsumptionRetryAfter: "-5"}, 0},
		{"huge is capped", map[string]string{HeaderConsumptionRetryAfter: "1e300"}, Max},
		{"HTTP date in the past", map[string]string{"Retry-After": "Mon, 02 Jan 2006 15:04:05 GMT"}, 0},
		{"unrelated rate-limit header", map[string]string{"x-ms-ratelimit-remaining-subscription-reads": "11999"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.in {
				h.Set(k, v)
			}
			if got := Header(h); got != tt.want {
				t.Errorf("Header = %s, want %s", got, tt.want)
			}
		})
	}
	h := http.Header{}
	h.Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
	if got := Header(h); got < 80*time.Second || got > 90*time.Second {
		t.Errorf("Header(HTTP date in 90 s) = %s, want about 90 s", got)
	}
}

func TestThrottled(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		body   string
		want   time.Duration
	}{
		{"message only", nil, `{"error":{"code":"429","message":"Too many requests. Please retry after 60 seconds."}}`, time.Minute},
		{"message with another wait", nil, `{"error":{"code":"429","message":"Too many requests. Please retry after 5 seconds."}}`, 5 * time.Second},
		{"message, second(s)", nil, `Rate limit is exceeded. Try again in a while. Retry after 12 second(s)`, 12 * time.Second},
		{"message without a number", nil, `{"error":{"code":"429","message":"Too many requests. Please retry."}}`, DefaultThrottleWait},
		{"no body", nil, ``, DefaultThrottleWait},
		{"header wins over message", map[string]string{HeaderConsumptionRetryAfter: "7"}, `Please retry after 60 seconds.`, 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := Throttled(h, []byte(tt.body)); got != tt.want {
				t.Errorf("Throttled = %s, want %s", got, tt.want)
			}
		})
	}
}

// script is a transport answering from a list of responses in turn.
type script struct {
	resps []func(*http.Request) *http.Response
	n     int
	times []time.Time
}

func (s *script) Do(r *http.Request) (*http.Response, error) {
	s.times = append(s.times, time.Now())
	f := s.resps[min(s.n, len(s.resps)-1)]
	s.n++
	return f(r), nil
}

func respond(status int, header map[string]string, body string) func(*http.Request) *http.Response {
	return func(r *http.Request) *http.Response {
		h := http.Header{}
		for k, v := range header {
			h.Set(k, v)
		}
		return &http.Response{StatusCode: status, Header: h, Body: nopBody(body), Request: r}
	}
}

func nopBody(s string) *bodyReader { return &bodyReader{Reader: strings.NewReader(s)} }

type bodyReader struct{ *strings.Reader }

func (bodyReader) Close() error { return nil }

// pipeline builds an azcore pipeline with the hint policy first among the per-retry policies,
// as the billing clients install it, and records the hint policy's own sleeps.
func pipeline(t *testing.T, tr *script, retry policy.RetryOptions, observer policy.Policy) (runtime.Pipeline, *[]time.Duration) {
	t.Helper()
	p := NewPolicy(retry).(*hintPolicy)
	var slept []time.Duration
	p.sleep = func(_ context.Context, d time.Duration) { slept = append(slept, d) }
	per := []policy.Policy{p}
	if observer != nil {
		per = []policy.Policy{observer, p}
	}
	return runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
		Retry: retry, Transport: tr, PerRetryPolicies: per,
	}), &slept
}

func get(t *testing.T, pl runtime.Pipeline) *http.Response {
	t.Helper()
	req, err := runtime.NewRequest(context.Background(), http.MethodGet, "https://management.azure.com/x")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pl.Do(req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	return resp
}

var retryCodes = []int{429, 500, 503}

// TestPolicyHonoursTheMessage: a 429 that names its wait only in the message ("Please retry
// after N seconds") is retried after N seconds, not after azcore's backoff.
func TestPolicyHonoursTheMessage(t *testing.T) {
	var seen []string
	observer := policyFunc(func(req *policy.Request) (*http.Response, error) {
		resp, err := req.Next()
		if resp != nil {
			seen = append(seen, resp.Header.Get("Retry-After")+"/"+resp.Header.Get("Retry-After-Ms"))
		}
		return resp, err
	})
	tr := &script{resps: []func(*http.Request) *http.Response{
		respond(429, nil, `{"error":{"code":"429","message":"Too many requests. Please retry after 1 seconds."}}`),
		respond(200, nil, `{}`),
	}}
	pl, _ := pipeline(t, tr, policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Minute, StatusCodes: retryCodes}, observer)
	if resp := get(t, pl); resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 after one retry", resp.StatusCode)
	}
	if len(seen) < 1 || seen[0] != "1/1000" {
		t.Errorf("hint seen above the policy = %q, want Retry-After 1 / retry-after-ms 1000", seen)
	}
	if gap := tr.times[1].Sub(tr.times[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %s, want about the 1 s the message asked for", gap)
	}
}

// TestPolicyHintLongerThanMaxRetryDelay: azcore gives up on a Retry-After above MaxRetryDelay;
// the policy waits the excess itself and the request is retried, not failed.
func TestPolicyHintLongerThanMaxRetryDelay(t *testing.T) {
	tr := &script{resps: []func(*http.Request) *http.Response{
		respond(429, map[string]string{HeaderConsumptionRetryAfter: "300"}, `{}`),
		respond(200, nil, `{}`),
	}}
	pl, slept := pipeline(t, tr, policy.RetryOptions{MaxRetries: 2, MaxRetryDelay: 50 * time.Millisecond, StatusCodes: retryCodes}, nil)
	if resp := get(t, pl); resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200: a 300 s hint must be waited for, not turned into a failure", resp.StatusCode)
	}
	if want := []time.Duration{300*time.Second - 50*time.Millisecond}; len(*slept) != 1 || (*slept)[0] != want[0] {
		t.Errorf("policy slept %v, want %v (the hint less the MaxRetryDelay azcore waits)", *slept, want)
	}
	if tr.n != 2 {
		t.Errorf("%d tries, want 2", tr.n)
	}
}

// TestPolicyLeavesOtherStatusesAlone: a 202 poll answer keeps its Retry-After (the Cost Details
// client reads it), and a 200 is untouched.
func TestPolicyLeavesOtherStatusesAlone(t *testing.T) {
	tr := &script{resps: []func(*http.Request) *http.Response{
		respond(202, map[string]string{"Retry-After": "600", HeaderConsumptionRetryAfter: "900"}, ``),
	}}
	pl, slept := pipeline(t, tr, policy.RetryOptions{MaxRetries: 1, MaxRetryDelay: time.Second, StatusCodes: retryCodes}, nil)
	resp := get(t, pl)
	if got := resp.Header.Get("Retry-After"); got != "600" || len(*slept) != 0 {
		t.Errorf("202: Retry-After %q, slept %v; want 600 untouched and no sleep", got, *slept)
	}
}

// TestPolicyNoHint5xx: a 500 without any hint keeps azcore's exponential backoff.
func TestPolicyNoHint5xx(t *testing.T) {
	tr := &script{resps: []func(*http.Request) *http.Response{respond(500, nil, `{}`), respond(200, nil, `{}`)}}
	pl, slept := pipeline(t, tr, policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Second, StatusCodes: retryCodes}, nil)
	if resp := get(t, pl); resp.StatusCode != 200 || len(*slept) != 0 {
		t.Errorf("status %d, slept %v; want 200 after azcore's backoff", resp.StatusCode, *slept)
	}
}

type policyFunc func(*policy.Request) (*http.Response, error)

func (f policyFunc) Do(req *policy.Request) (*http.Response, error) { return f(req) }

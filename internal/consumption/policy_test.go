package consumption

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

func TestApplyRetryHint(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]string
		want   string // Retry-After afterwards; "" = absent
		wantMS bool   // whether retry-after-ms survives, when it was there
	}{
		{"consumption hint", map[string]string{HeaderConsumptionRetryAfter: "60"}, "60", false},
		{"hint larger than Retry-After", map[string]string{HeaderConsumptionRetryAfter: "60", "Retry-After": "5"}, "60", false},
		{"Retry-After larger than hint", map[string]string{HeaderConsumptionRetryAfter: "60", "Retry-After": "90"}, "90", false},
		{"hint beats millisecond header", map[string]string{HeaderConsumptionRetryAfter: "2", "Retry-After-Ms": "500"}, "2", false},
		{"millisecond header larger", map[string]string{HeaderConsumptionRetryAfter: "2", "Retry-After-Ms": "5000"}, "", true},
		{"largest cost management variant", map[string]string{
			"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after":    "3",
			"x-ms-ratelimit-microsoft.costmanagement-entity-retry-after": "7",
			"x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after": "5",
		}, "7", false},
		{"fraction rounds up", map[string]string{HeaderConsumptionRetryAfter: "1.2"}, "2", false},
		{"not a number", map[string]string{HeaderConsumptionRetryAfter: "soon"}, "", false},
		{"negative", map[string]string{HeaderConsumptionRetryAfter: "-5"}, "", false},
		{"huge is capped", map[string]string{HeaderConsumptionRetryAfter: "1e300"}, "86400", false},
		{"unrelated rate-limit header", map[string]string{"x-ms-ratelimit-remaining-subscription-reads": "11999"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.in {
				h.Set(k, v)
			}
			applyRetryHint(h)
			if got := h.Get("Retry-After"); got != tt.want {
				t.Errorf("Retry-After = %q, want %q", got, tt.want)
			}
			if _, hadMS := tt.in["Retry-After-Ms"]; hadMS {
				if kept := h.Get("Retry-After-Ms") != ""; kept != tt.wantMS {
					t.Errorf("retry-after-ms kept = %v, want %v", kept, tt.wantMS)
				}
			}
		})
	}
}

// fakeTransport answers every request with a fixed response.
type fakeTransport struct {
	resp func(*http.Request) *http.Response
}

func (f fakeTransport) Do(r *http.Request) (*http.Response, error) { return f.resp(r), nil }

// TestRetryAfterPolicyInPipeline checks the rewritten header is what a policy above it sees,
// which is where azcore's retry policy sits.
func TestRetryAfterPolicyInPipeline(t *testing.T) {
	var seen string
	observer := policyFunc(func(req *policy.Request) (*http.Response, error) {
		resp, err := req.Next()
		if resp != nil {
			seen = resp.Header.Get("Retry-After")
		}
		return resp, err
	})
	pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{PerRetry: []policy.Policy{observer, RetryAfterPolicy{}}},
		&policy.ClientOptions{
			Retry: policy.RetryOptions{MaxRetries: -1},
			Transport: fakeTransport{func(r *http.Request) *http.Response {
				return &http.Response{StatusCode: 429, Header: http.Header{"X-Ms-Ratelimit-Microsoft.consumption-Retry-After": {"42"}},
					Body: http.NoBody, Request: r}
			}},
		})
	req := must(runtime.NewRequest(context.Background(), http.MethodGet, "https://management.azure.com/x"))
	resp, err := pl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen != "42" {
		t.Errorf("policy above RetryAfterPolicy saw Retry-After %q, want 42", seen)
	}
}

type policyFunc func(*policy.Request) (*http.Response, error)

func (f policyFunc) Do(req *policy.Request) (*http.Response, error) { return f(req) }

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{
			"https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&sessiontoken=21:32512334&$skiptoken=327C%27ab&skiptokenver=v1&id=98fce233",
			"https://management.azure.com/subscriptions/x/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&sessiontoken=REDACTED&$skiptoken=REDACTED&skiptokenver=v1&id=98fce233",
		},
		{"https://h/x?%24skiptoken=abc&SKIPTOKEN=d", "https://h/x?%24skiptoken=REDACTED&SKIPTOKEN=REDACTED"},
		{"https://acct.blob.core.windows.net/c/b?sv=2020-05-31&sr=b&sig=abcd%2B", "https://acct.blob.core.windows.net/c/b?sv=2020-05-31&sr=b&sig=REDACTED"},
		{"https://user:pass@h/x", "https://REDACTED@h/x"},
		{"https://h/x#frag", "https://h/x"},
		{"https://h/x", "https://h/x"},
		{"http://h/%zz?$skiptoken=abc", "http://h/%zz?REDACTED"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestStaticToken(t *testing.T) {
	tok, err := StaticToken("  eyJ.abc.def\n").GetToken(context.Background(), policy.TokenRequestOptions{})
	if err != nil || tok.Token != "eyJ.abc.def" || !tok.ExpiresOn.After(time.Now()) {
		t.Errorf("GetToken = %+v, %v; want the trimmed token with a future expiry", tok, err)
	}
	if _, err := StaticToken(" \n").GetToken(context.Background(), policy.TokenRequestOptions{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token: err = %v, want an error saying it is empty", err)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	cred := TokenFile(path)
	get := func() (string, error) {
		tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"x/.default"}})
		return tok.Token, err
	}
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := get(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("missing file: err = %v, want an error naming %s", err, path)
	}
	write(" \n\t")
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("blank file: err = %v, want an error saying it is empty", err)
	}
	write("first-token\n")
	if got, err := get(); err != nil || got != "first-token" {
		t.Errorf("GetToken = %q, %v; want first-token", got, err)
	}
	// Rotation by rewriting in place and by replacing the file, as secret mounts do.
	write("second-token-rotated\n")
	if got, err := get(); err != nil || got != "second-token-rotated" {
		t.Errorf("after rewrite: GetToken = %q, %v; want second-token-rotated", got, err)
	}
	tmp := filepath.Join(dir, "token.new")
	if err := os.WriteFile(tmp, []byte("third"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if got, err := get(); err != nil || got != "third" {
		t.Errorf("after replace: GetToken = %q, %v; want third", got, err)
	}
	write("two\nlines")
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "more than one line") {
		t.Errorf("two lines: err = %v, want a one-line error", err)
	}
}

func TestTokenFileOnTheWire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newScript(t, reply(`{"value":[]}`))
	c, err := NewClient(TokenFile(path), testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List(context.Background(), Query{Scope: subScope}, &collector{}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := srv.request(0).Header.Get("Authorization"); got != "Bearer file-token" {
		t.Errorf("Authorization = %q, want %q", got, "Bearer file-token")
	}
}

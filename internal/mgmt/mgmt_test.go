package mgmt

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in      string
		want    string // Origin.String(); "" means an error is expected
		wantErr string
	}{
		{in: "", want: "https://management.azure.com"},
		{in: "HTTPS://Management.Azure.com:443/", want: "https://management.azure.com"},
		{in: "http://127.0.0.1:80", want: "http://127.0.0.1"},
		{in: "http://[::1]:9000", want: "http://[::1]:9000"},
		{in: "http://LocalHost:7071", want: "http://localhost:7071"},
		{in: "https://10.0.0.5:8443", want: "https://10.0.0.5:8443"},
		{in: "http://10.0.0.5", wantErr: "only on a loopback address"},
		{in: "ftp://management.azure.com", wantErr: "scheme must be https"},
		{in: "https://management.azure.com/x", wantErr: "must not contain a path"},
		{in: "https://management.azure.com?", wantErr: "must not contain a query"},
		{in: "https://u@management.azure.com", wantErr: "must not contain user information"},
		{in: "https://:443", wantErr: "no host"},
		{in: "https://host:0", wantErr: "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEndpoint(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEndpoint(%q) = %v, %v; want an error mentioning %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParseEndpoint(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if scope := TokenScope(got); scope != tt.want+"/.default" {
				t.Errorf("TokenScope = %q, want %q", scope, tt.want+"/.default")
			}
		})
	}
}

// defaultOrigin is the public cloud's management endpoint.
func defaultOrigin(t *testing.T) Origin {
	t.Helper()
	o, err := ParseEndpoint(DefaultEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOriginOf(t *testing.T) {
	home := defaultOrigin(t)
	tests := []struct {
		link string
		same bool
	}{
		{"https://management.azure.com/subscriptions/x?$skiptoken=1", true},
		{"HTTPS://MANAGEMENT.AZURE.COM:443/x", true},
		{"http://management.azure.com/x", false},
		{"https://management.azure.com:8443/x", false},
		{"https://management.azure.com.evil.example/x", false},
		{"https://evil.example/management.azure.com", false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.link)
		if err != nil {
			t.Fatal(err)
		}
		if got := OriginOf(u) == home; got != tt.same {
			t.Errorf("OriginOf(%s) == %s is %v, want %v", tt.link, home, got, tt.same)
		}
	}
}

func TestRetryDefaults(t *testing.T) {
	got := RetryDefaults(policy.RetryOptions{})
	want := policy.RetryOptions{MaxRetries: 6, RetryDelay: 4 * time.Second, MaxRetryDelay: 120 * time.Second,
		StatusCodes: []int{408, 429, 500, 502, 503, 504}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RetryDefaults(zero) = %+v, want %+v", got, want)
	}
	set := policy.RetryOptions{MaxRetries: -1, RetryDelay: time.Millisecond, MaxRetryDelay: time.Second, StatusCodes: []int{}, TryTimeout: time.Minute}
	if got := RetryDefaults(set); !reflect.DeepEqual(got, set) {
		t.Errorf("RetryDefaults(%+v) = %+v, want it unchanged", set, got)
	}
}

func TestNoRedirects(t *testing.T) {
	follow := func(*http.Request, []*http.Request) error { return nil }
	caller := &http.Client{CheckRedirect: follow, Timeout: time.Minute}
	other := transportFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("unused") })
	tests := []struct {
		name string
		in   policy.Transporter
	}{
		{"default", nil},
		{"caller's http.Client", caller},
	}
	for _, tt := range tests {
		c, ok := NoRedirects(tt.in).(*http.Client)
		if !ok || c.CheckRedirect == nil {
			t.Fatalf("%s: NoRedirects = %T, want an *http.Client with CheckRedirect", tt.name, c)
		}
		if err := c.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
			t.Errorf("%s: CheckRedirect = %v, want http.ErrUseLastResponse", tt.name, err)
		}
	}
	if c := NoRedirects(caller).(*http.Client); c == caller || c.Timeout != time.Minute || caller.CheckRedirect(nil, nil) != nil {
		t.Errorf("NoRedirects(caller) = %p (timeout %s), want a copy with the caller's settings and the caller unchanged", c, c.Timeout)
	}
	if got := NoRedirects(other); reflect.ValueOf(got).Pointer() != reflect.ValueOf(other).Pointer() {
		t.Errorf("NoRedirects(other Transporter) = %v, want it returned as is", got)
	}
}

// transportFunc is a policy.Transporter.
type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// pipeline returns a pipeline without retries over tr with the given per-retry policies.
func pipeline(tr policy.Transporter, perRetry ...policy.Policy) runtime.Pipeline {
	return runtime.NewPipeline("arm-test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
		Transport:        tr,
		Retry:            policy.RetryOptions{MaxRetries: -1},
		PerRetryPolicies: perRetry,
	})
}

// deadlineRequest returns a GET request whose context ends 10 s on, or when t ends: a watchdog
// that never fires fails the test instead of hanging it.
func deadlineRequest(t *testing.T) *policy.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := runtime.NewRequest(ctx, http.MethodGet, "https://h/x")
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestHostGuard(t *testing.T) {
	home := defaultOrigin(t)
	tests := []struct {
		link     string
		wantSent bool
	}{
		{"https://management.azure.com/subscriptions/x", true},
		{"https://management.azure.com:443/subscriptions/x", true},
		{"https://attacker.example/subscriptions/x", false},
		{"http://management.azure.com/subscriptions/x", false},
		{"https://user@management.azure.com/subscriptions/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.link, func(t *testing.T) {
			sent := 0
			p := pipeline(transportFunc(func(r *http.Request) (*http.Response, error) {
				sent++
				return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
			}), NewHostGuardPolicy(home))
			req, err := runtime.NewRequest(context.Background(), http.MethodGet, tt.link)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := p.Do(req)
			if tt.wantSent {
				if err != nil || sent != 1 {
					t.Fatalf("Do = %v, sent %d; want it sent once", err, sent)
				}
				resp.Body.Close()
				return
			}
			var nr interface{ NonRetriable() }
			if !errors.Is(err, ErrForeignHost) || !errors.As(err, &nr) || sent != 0 {
				t.Errorf("Do = %v, sent %d; want a NonRetriable ErrForeignHost and nothing sent", err, sent)
			}
		})
	}
}

// stall is a body whose Read blocks until ctx ends.
type stall struct{ ctx context.Context }

func (s stall) Read([]byte) (int, error) { <-s.ctx.Done(); return 0, s.ctx.Err() }
func (s stall) Close() error             { return nil }

func TestIdleTimeout(t *testing.T) {
	const idle = 20 * time.Millisecond
	tests := []struct {
		name string
		tr   transportFunc
	}{
		{"no headers", func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		}},
		{"stalled body", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Body: stall{r.Context()}, Request: r}, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The deadline ends the test if the watchdog never fires; its error is not
			// ErrIdleTimeout, so the test fails instead of hanging.
			req := deadlineRequest(t)
			runtime.SkipBodyDownload(req)
			resp, err := pipeline(tt.tr, NewIdleTimeoutPolicy(idle)).Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if !errors.Is(err, ErrIdleTimeout) {
				t.Errorf("err = %v, want ErrIdleTimeout", err)
			}
		})
	}
}

func TestNewAPIError(t *testing.T) {
	long := strings.Repeat("é", MaxErrorExcerpt) // two bytes a rune: the cut falls inside one
	tests := []struct {
		name          string
		status        int
		header        map[string]string
		body          string
		want          APIError // the exported fields that must match
		wantRedirect  bool
		wantPermanent bool
	}{
		{name: "nested error", status: 400, header: map[string]string{HeaderRequestID: "rid"},
			body:          `{"error":{"code":"BadRequest","message":"bad date"}}`,
			want:          APIError{Code: "BadRequest", Message: "bad date", RequestID: "rid"},
			wantPermanent: true},
		{name: "top-level numeric code", status: 429, body: `{"code":429,"message":"slow down"}`,
			want: APIError{Code: "429", Message: "slow down"}},
		{name: "not JSON", status: 503, body: "  <html>down</html>\n", want: APIError{Excerpt: "<html>down</html>"}},
		{name: "long body", status: 403, body: long,
			want: APIError{Excerpt: strings.Repeat("é", (MaxErrorExcerpt-len("…"))/2) + "…"}, wantPermanent: true},
		{name: "error code header", status: 404, header: map[string]string{"x-ms-error-code": "ResourceNotFound"},
			want: APIError{Code: "ResourceNotFound"}, wantPermanent: true},
		{name: "redirect", status: 302, header: map[string]string{"Location": "https://other.example/x?sig=S"},
			want: APIError{Location: "https://other.example"}, wantRedirect: true, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "https://h/x?sig=SECRET&a=1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer TOKEN")
			header := http.Header{}
			for k, v := range tt.header {
				header.Set(k, v)
			}
			resp := &http.Response{StatusCode: tt.status, Header: header, Request: req,
				Body: io.NopCloser(strings.NewReader(tt.body))}
			e := NewAPIError(resp)
			got := APIError{Code: e.Code, Message: e.Message, Excerpt: e.Excerpt, RequestID: e.RequestID, Location: e.Location}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if e.Method != http.MethodGet || e.URL != "https://h/x?sig=REDACTED&a=1" || e.StatusCode != tt.status {
				t.Errorf("got %s %s %d, want GET https://h/x?sig=REDACTED&a=1 %d", e.Method, e.URL, e.StatusCode, tt.status)
			}
			if len(e.Excerpt) > MaxErrorExcerpt {
				t.Errorf("excerpt is %d bytes, want at most %d", len(e.Excerpt), MaxErrorExcerpt)
			}
			if got := errors.Is(e, ErrRedirect); got != tt.wantRedirect {
				t.Errorf("errors.Is(ErrRedirect) = %v, want %v", got, tt.wantRedirect)
			}
			if got := e.Permanent(); got != tt.wantPermanent {
				t.Errorf("Permanent() = %v, want %v", got, tt.wantPermanent)
			}
			var re *azcore.ResponseError
			if !errors.As(e, &re) || re.StatusCode != tt.status {
				t.Fatalf("errors.As *azcore.ResponseError: %v, want status %d", re, tt.status)
			}
			for _, secret := range []string{"SECRET", "TOKEN", "sig=S"} {
				if strings.Contains(e.Error(), secret) || strings.Contains(re.Error(), secret) {
					t.Errorf("error leaks %q:\n%s\n%s", secret, e.Error(), re.Error())
				}
			}
			if h := re.RawResponse.Request.Header.Get("Authorization"); h != "" {
				t.Errorf("ResponseError keeps the Authorization header %q", h)
			}
		})
	}
}

func TestRedactURLError(t *testing.T) {
	err := &url.Error{Op: "Get", URL: "https://acct.blob.core.windows.net/c/b?sv=1&sig=SECRET", Err: io.ErrUnexpectedEOF}
	got := RedactURLError(errors.Join(errors.New("reading blob"), err))
	if strings.Contains(got.Error(), "SECRET") || !strings.Contains(got.Error(), "sig=REDACTED") {
		t.Errorf("RedactURLError = %q, want the signature redacted", got)
	}
	if !errors.Is(got, io.ErrUnexpectedEOF) {
		t.Errorf("RedactURLError = %v, want the cause kept", got)
	}
}

// trickle is a body that sends one byte every gap, n bytes in all, until done is closed (the
// request's context ended).
type trickle struct {
	done <-chan struct{}
	gap  time.Duration
	n    int
}

func (b *trickle) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	select {
	case <-b.done:
		return 0, context.Canceled
	case <-time.After(b.gap):
	}
	b.n--
	p[0] = 'x'
	return 1, nil
}
func (b *trickle) Close() error { return nil }

// TestGuardTransport checks the transport-level watchdog under azcore's own body download:
// a stalled body is an ErrIdleTimeout (and ErrBrokenBody) error of the try, a slow but steady
// body is not (the watchdog is re-armed for every read, not a deadline for the whole body),
// and a body over the limit is a permanent ErrBodyTooLarge.
func TestGuardTransport(t *testing.T) {
	// The steady body's reads come every idle/5 and take twice idle in all: a deadline for the
	// whole body would fail it, and a loaded machine has 160 ms of slack per read.
	const idle = 200 * time.Millisecond
	tests := []struct {
		name    string
		tr      transportFunc
		max     int64
		wantErr []error
		permErr bool
	}{
		{"stalled body", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Body: stall{r.Context()}, Request: r, Header: http.Header{}}, nil
		}, 0, []error{ErrIdleTimeout, ErrBrokenBody}, false},
		{"slow but steady body, 10 reads of 40 ms", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Body: &trickle{done: r.Context().Done(), gap: idle / 5, n: 10}, Request: r, Header: http.Header{}}, nil
		}, 0, nil, false},
		{"body over the limit", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 101))), Request: r, Header: http.Header{}}, nil
		}, 100, []error{ErrBodyTooLarge}, true},
		{"body at the limit", func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), Request: r, Header: http.Header{}}, nil
		}, 100, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := deadlineRequest(t)
			resp, err := pipeline(GuardTransport(tt.tr, idle, tt.max)).Do(req) // azcore reads the body whole
			if err == nil {
				resp.Body.Close()
			}
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("err = %v, want it to wrap %v", err, want)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Errorf("err = %v, want none", err)
			}
			var nr interface{ NonRetriable() }
			if got := errors.As(err, &nr); got != tt.permErr {
				t.Errorf("non-retriable = %v, want %v (%v)", got, tt.permErr, err)
			}
		})
	}
}

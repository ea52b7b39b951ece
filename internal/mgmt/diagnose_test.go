package mgmt

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/rs/zerolog"
)

// TestDiagnosePolicy: a transient 503 keeps its retry and is logged once at info with its cause;
// a refused connection is logged at error with what to check and is not retried.
func TestDiagnosePolicy(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
		Retry:            policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Millisecond, MaxRetries: 3},
		PerRetryPolicies: []policy.Policy{NewDiagnosePolicy()},
	})
	do := func(url string) (*http.Response, error) {
		req, err := runtime.NewRequest(log.WithContext(context.Background()), http.MethodGet, url)
		if err != nil {
			t.Fatal(err)
		}
		return pl.Do(req)
	}
	resp, err := do(srv.URL)
	if err != nil || resp.StatusCode != http.StatusOK || calls.Load() != 3 {
		t.Fatalf("503, 503, 200: got %v %v after %d calls", resp, err, calls.Load())
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines %q, want two (info, then debug for the repeat)", lines)
	}
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if first["level"] != "info" || first["cause"] != "server_error" || first["status"] != float64(503) {
		t.Errorf("first transient fault logged as %s", lines[0])
	}
	if second["level"] != "debug" {
		t.Errorf("repeat logged as %s", lines[1])
	}

	logs.Reset()
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	start := time.Now()
	_, err = do(url)
	var de *DiagnosedError
	if !errors.As(err, &de) || de.Diagnosis.Cause != "connection_refused" {
		t.Fatalf("refused: err %v, want a DiagnosedError with cause connection_refused", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused connection took %v: retried", d)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "USAGE_EXPORT_MANAGEMENT_ENDPOINT") {
		t.Errorf("refused logged as %s", logs.String())
	}
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct {
		status    int
		cause     string
		permanent bool
	}{
		{401, "unauthorized", true}, {403, "forbidden", true}, {429, "throttled", false},
		{500, "server_error", false}, {503, "server_error", false}, {408, "server_error", false},
	} {
		d, ok := Diagnose(&http.Response{StatusCode: tc.status}, nil)
		if !ok || d.Cause != tc.cause || d.Permanent != tc.permanent || d.Check == "" {
			t.Errorf("%d: %+v %v", tc.status, d, ok)
		}
	}
	for _, s := range []int{200, 204, 400, 404} {
		if _, ok := Diagnose(&http.Response{StatusCode: s}, nil); ok {
			t.Errorf("%d diagnosed", s)
		}
	}
	for _, tc := range []struct {
		err       error
		cause     string
		permanent bool
	}{
		{&url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "managment.azure.com", IsNotFound: true}}}, "dns", true},
		{&net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, "", false},
		{&url.Error{Op: "Get", URL: "https://x", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, "tls_trust", true},
		{&url.Error{Op: "Get", URL: "https://x", Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "x"}}, "tls_trust", true},
		{&url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, "connection_refused", true},
		{&url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, "network", false},
	} {
		d, ok := Diagnose(nil, tc.err)
		if ok != (tc.cause != "") || d.Cause != tc.cause || d.Permanent != tc.permanent {
			t.Errorf("%v: %+v %v, want cause %q permanent %v", tc.err, d, ok, tc.cause, tc.permanent)
		}
	}
	if _, ok := Diagnose(nil, context.Canceled); ok {
		t.Error("a cancelled context diagnosed")
	}
}

// waitPolicy stands in for a rate budget: the first call passes, later ones wait for their
// context.
type waitPolicy struct{ calls *atomic.Int32 }

func (w waitPolicy) Do(req *policy.Request) (*http.Response, error) {
	if w.calls.Add(1) > 1 {
		<-req.Raw().Context().Done()
		return nil, req.Raw().Context().Err()
	}
	return req.Next()
}

// TestStopAfterPermanent: with StopAfterPermanent, a 401 ends the call waiting in the budget at
// once and fails later calls without a request; 403 stops nothing; without the option nothing
// stops.
func TestStopAfterPermanent(t *testing.T) {
	var hits atomic.Int32
	status := atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	run := func(stop bool, code int) (first *http.Response, waited error, later error) {
		hits.Store(0)
		status.Store(int32(code))
		d := NewDiagnoser(&DiagnoseOptions{StopAfterPermanent: stop})
		var budget atomic.Int32
		pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
			Retry:            policy.RetryOptions{MaxRetries: -1},
			PerRetryPolicies: []policy.Policy{d.Guard(), waitPolicy{&budget}, d.Policy()},
		})
		do := func(ctx context.Context) (*http.Response, error) {
			req, err := runtime.NewRequest(ctx, http.MethodGet, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			return pl.Do(req)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done := make(chan error, 1)
		budget.Store(0)
		first, _ = do(ctx)
		go func() { _, err := do(ctx); done <- err }() // waits in the budget
		select {
		case waited = <-done:
		case <-time.After(300 * time.Millisecond):
			waited = errors.New("still waiting")
		}
		budget.Store(-100) // the budget lets everything through now
		_, later = do(ctx)
		return first, waited, later
	}

	first, waited, later := run(true, http.StatusUnauthorized)
	var de *DiagnosedError
	if first == nil || first.StatusCode != 401 {
		t.Fatalf("first call: %v, want the 401 itself", first)
	}
	if !errors.As(waited, &de) || de.Diagnosis.Cause != "unauthorized" || !strings.Contains(waited.Error(), "not called") {
		t.Errorf("waiting call: %v, want it stopped with the 401's diagnosis", waited)
	}
	if !errors.As(later, &de) || hits.Load() != 1 {
		t.Errorf("later call: %v after %d requests, want it stopped without a request", later, hits.Load())
	}
	if _, waited, later := run(true, http.StatusForbidden); waited == nil || !strings.Contains(waited.Error(), "still waiting") || later != nil {
		t.Errorf("403: waiting %v, later %v: a scope's 403 must stop nothing", waited, later)
	}
	if _, waited, later := run(false, http.StatusUnauthorized); !strings.Contains(fmt.Sprint(waited), "still waiting") || later != nil {
		t.Errorf("without the option: waiting %v, later %v", waited, later)
	}
}

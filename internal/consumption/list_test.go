package consumption

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/retryhint"
	"github.com/usage-export/usage-export/internal/scope"
)

// subPath is the usageDetails path of the test subscription scope.
const subPath = "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Consumption/usageDetails"

var subScope = scope.MustParse("/subscriptions/00000000-0000-0000-0000-000000000000")

// step answers one request of a scripted server.
type step func(w http.ResponseWriter, r *http.Request)

// script is a loopback server that answers requests with its steps in order and fails the test
// on a request beyond the last step.
type script struct {
	*httptest.Server
	mu       sync.Mutex
	steps    []step
	requests []*http.Request
}

func newScript(t *testing.T, steps ...step) *script {
	t.Helper()
	s := &script{steps: steps}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		i := len(s.requests)
		s.requests = append(s.requests, r)
		var next step
		if i < len(s.steps) {
			next = s.steps[i]
		}
		s.mu.Unlock()
		if next == nil {
			t.Errorf("unexpected request %d: %s", i, r.RequestURI)
			http.Error(w, "unexpected", http.StatusTeapot)
			return
		}
		next(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// add appends a step.
func (s *script) add(st step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, st)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *script) request(i int) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[i]
}

// records returns n synthetic records named from first on.
func records(first, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"id":"r%d","properties":{"cost":0.000001980949998}}`, first+i)
	}
	return strings.Join(parts, ",")
}

// reply writes a 200 page with a JSON body.
func reply(body string) step {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

// status writes a status with optional header pairs and body.
func status(code int, body string, header ...string) step {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func ids(c *collector) string {
	var s []string
	for _, r := range c.records {
		_, after, _ := strings.Cut(string(r), `"id":"`)
		id, _, _ := strings.Cut(after, `"`)
		s = append(s, id)
	}
	return strings.Join(s, ",")
}

func TestListFollowsNextLinkVerbatim(t *testing.T) {
	// Service links carry parameters no swagger defines and characters a re-encoder would change:
	// %27, '+', ':' and a percent-encoded ':' in the path.
	const (
		query2 = "api-version=2024-08-01&sessiontoken=21:32512334&$skiptoken=327C%27ab+c%2Fd&skiptokenver=v1&id=98fce233-0c9c-4b2e-9f8a-5f4e7a1b2c3d"
		path3  = "/providers/Microsoft.Billing/billingAccounts/1234%3A56789/providers/Microsoft.Consumption/usageDetails"
		query3 = "%24skiptoken=AAA%3D%3D&api-version=2024-08-01&skiptokenver=v1&id=0f0f0f0f-0000-0000-0000-000000000001"
	)
	var srv *script
	srv = newScript(t,
		func(w http.ResponseWriter, r *http.Request) {
			reply(`{"value":[`+records(0, 2)+`],"nextLink":"`+srv.URL+subPath+"?"+query2+`"}`)(w, r)
		},
		func(w http.ResponseWriter, r *http.Request) {
			// nextLink first, an unknown member, and value last.
			reply(`{"nextLink":"`+srv.URL+path3+"?"+query3+`","@odata.count":{"x":[1,2]},"value":[`+records(2, 3)+`]}`)(w, r)
		},
		reply(`{"value":[`+records(5, 1)+`],"nextLink":null}`),
	)
	c := newTestClient(t, srv.URL, nil)
	var got collector
	if err := c.List(context.Background(), Query{Scope: subScope, Top: 1000}, &got); err != nil {
		t.Fatalf("List: %v", err)
	}
	wantURIs := []string{subPath + "?$expand=properties%2FmeterDetails,properties%2FadditionalInfo&$top=1000&api-version=2024-08-01", subPath + "?" + query2, path3 + "?" + query3}
	if srv.count() != len(wantURIs) {
		t.Fatalf("server got %d requests, want %d", srv.count(), len(wantURIs))
	}
	for i, want := range wantURIs {
		if got := srv.request(i).RequestURI; got != want {
			t.Errorf("request %d: server saw %q, want %q", i, got, want)
		}
	}
	if got, want := ids(&got), "r0,r1,r2,r3,r4,r5"; got != want {
		t.Errorf("records = %s, want %s", got, want)
	}
	wantPages := []struct {
		records int
		next    string
	}{{2, srv.URL + subPath + "?" + query2}, {3, srv.URL + path3 + "?" + query3}, {1, ""}}
	if len(got.pages) != len(wantPages) {
		t.Fatalf("got %d pages, want %d", len(got.pages), len(wantPages))
	}
	for i, w := range wantPages {
		p := got.pages[i]
		if p.Index != i || p.Records != w.records || p.NextLink != w.next || p.StatusCode != 200 || p.Bytes == 0 {
			t.Errorf("page %d = %+v, want index %d, %d records, nextLink %q, status 200, bytes > 0", i, p, i, w.records, w.next)
		}
	}
}

func TestListResumesFromNextLink(t *testing.T) {
	const query = "api-version=2024-08-01&$skiptoken=X%2BY+Z&skiptokenver=v1"
	srv := newScript(t, reply(`{"value":[`+records(7, 1)+`]}`))
	c := newTestClient(t, srv.URL, nil)
	var got collector
	if err := c.List(context.Background(), Query{NextLink: srv.URL + subPath + "?" + query}, &got); err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := srv.request(0).RequestURI, subPath+"?"+query; got != want {
		t.Errorf("server saw %q, want %q", got, want)
	}
	if got, want := ids(&got), "r7"; got != want {
		t.Errorf("records = %s, want %s", got, want)
	}
}

func TestListRefusesForeignNextLink(t *testing.T) {
	foreign := &countingHandler{h: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"value":[]}`) }}
	other := httptest.NewServer(foreign)
	defer other.Close()
	home := newScript(t) // the steps are set per case below
	homeURL := home.URL
	otherPort := strings.TrimPrefix(other.URL, "http://127.0.0.1:")
	homePort := strings.TrimPrefix(homeURL, "http://127.0.0.1:")

	tests := []struct {
		name string
		link string
	}{
		{"other port", other.URL + subPath + "?$skiptoken=SECRET"},
		{"other host name", "http://localhost:" + otherPort + subPath + "?$skiptoken=SECRET"},
		{"same host, other scheme", "https://127.0.0.1:" + homePort + subPath + "?$skiptoken=SECRET"},
		{"user info", "http://user:SECRET@127.0.0.1:" + homePort + subPath},
		{"relative", subPath + "?$skiptoken=SECRET"},
		{"not a URL", "http://127.0.0.1:" + homePort + "/%zz?$skiptoken=SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/nextLink", func(t *testing.T) {
			before := home.count()
			home.add(reply(`{"value":[` + records(0, 1) + `],"nextLink":"` + tt.link + `"}`))
			c := newTestClient(t, homeURL, nil)
			var got collector
			err := c.List(context.Background(), Query{Scope: subScope}, &got)
			checkForeign(t, err)
			if n := home.count() - before; n != 1 {
				t.Errorf("home server got %d requests, want 1", n)
			}
			if len(got.pages) != 0 {
				t.Errorf("PageDone called %d times, want 0 (the link is refused first)", len(got.pages))
			}
		})
		t.Run(tt.name+"/resume", func(t *testing.T) {
			before := home.count()
			c := newTestClient(t, homeURL, nil)
			err := c.List(context.Background(), Query{NextLink: tt.link}, &collector{})
			checkForeign(t, err)
			if n := home.count() - before; n != 0 {
				t.Errorf("home server got %d requests, want 0", n)
			}
		})
	}
	if n := foreign.n.Load(); n != 0 {
		t.Errorf("foreign server got %d requests, want 0", n)
	}
}

func checkForeign(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, mgmt.ErrForeignHost) {
		t.Fatalf("err = %v, want mgmt.ErrForeignHost", err)
	}
	if !IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = false, want true", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error leaks a secret: %v", err)
	}
}

func TestListDetectsNextLinkLoop(t *testing.T) {
	var srv *script
	link := func(q string) string { return srv.URL + subPath + "?" + q }
	srv = newScript(t,
		func(w http.ResponseWriter, r *http.Request) {
			reply(`{"value":[`+records(0, 1)+`],"nextLink":"`+link("$skiptoken=A")+`"}`)(w, r)
		},
		func(w http.ResponseWriter, r *http.Request) {
			reply(`{"value":[`+records(1, 1)+`],"nextLink":"`+link("$skiptoken=B")+`"}`)(w, r)
		},
		func(w http.ResponseWriter, r *http.Request) {
			reply(`{"value":[`+records(2, 1)+`],"nextLink":"`+link("$skiptoken=A")+`"}`)(w, r)
		},
	)
	c := newTestClient(t, srv.URL, nil)
	var got collector
	err := c.List(context.Background(), Query{Scope: subScope}, &got)
	if !errors.Is(err, ErrNextLinkLoop) {
		t.Fatalf("err = %v, want ErrNextLinkLoop", err)
	}
	if !IsPermanent(err) {
		t.Errorf("IsPermanent = false, want true")
	}
	if srv.count() != 3 || len(got.pages) != 2 {
		t.Errorf("requests = %d, pages done = %d; want 3 and 2", srv.count(), len(got.pages))
	}
}

func TestListNextLinkBackToFirstPage(t *testing.T) {
	var srv *script
	srv = newScript(t, func(w http.ResponseWriter, r *http.Request) {
		reply(`{"value":[],"nextLink":"`+srv.URL+subPath+`?api-version=2024-08-01"}`)(w, r)
	})
	c := newTestClient(t, srv.URL, nil)
	if err := c.List(context.Background(), Query{Scope: subScope, Expand: ExpandNone}, &collector{}); !errors.Is(err, ErrNextLinkLoop) {
		t.Fatalf("err = %v, want ErrNextLinkLoop", err)
	}
}

func TestListEndOfData(t *testing.T) {
	tests := []struct {
		name       string
		step       step
		wantStatus int
		wantN      int
	}{
		{"204", status(http.StatusNoContent, ""), 204, 0},
		{"empty value", reply(`{"value":[]}`), 200, 0},
		{"null value, null nextLink", reply(`{"value":null,"nextLink":null}`), 200, 0},
		{"empty nextLink", reply(`{"nextLink":"","value":[` + records(0, 2) + `]}`), 200, 2},
		{"no value member", reply(`{}`), 200, 0},
		{"whitespace around", reply(" \n{ \"value\" : [ " + records(0, 1) + " ] }\n "), 200, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScript(t, tt.step)
			c := newTestClient(t, srv.URL, nil)
			var got collector
			if err := c.List(context.Background(), Query{Scope: subScope}, &got); err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(got.records) != tt.wantN {
				t.Errorf("got %d records, want %d", len(got.records), tt.wantN)
			}
			if len(got.pages) != 1 || got.pages[0].StatusCode != tt.wantStatus || got.pages[0].NextLink != "" || got.pages[0].Records != tt.wantN {
				t.Errorf("pages = %+v, want one page with status %d, %d records, no nextLink", got.pages, tt.wantStatus, tt.wantN)
			}
		})
	}
}

func TestListRetries(t *testing.T) {
	ok := reply(`{"value":[` + records(0, 1) + `]}`)
	tests := []struct {
		name  string
		first step
	}{
		{"429 consumption retry-after", status(429, `{"error":{"code":"429","message":"Too many requests"}}`, retryhint.HeaderConsumptionRetryAfter, "1")},
		{"429 Retry-After", status(429, "", "Retry-After", "1")},
		{"429 costmanagement qpu retry-after", status(429, "", "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after", "1")},
		{"503 Retry-After", status(503, "", "Retry-After", "1")},
		{"500", status(500, `{"error":{"code":"500","message":"boom"}}`)},
		{"502", status(502, "bad gateway")},
		{"504", status(504, "")},
		{"408", status(408, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newScript(t, tt.first, ok)
			c := newTestClient(t, srv.URL, nil)
			var got collector
			if err := c.List(context.Background(), Query{Scope: subScope}, &got); err != nil {
				t.Fatalf("List: %v", err)
			}
			if srv.count() != 2 || len(got.records) != 1 {
				t.Errorf("requests = %d, records = %d; want 2 and 1", srv.count(), len(got.records))
			}
		})
	}
}

// TestListHonoursThrottlingHints proves the API's hint reaches azcore's retry policy without
// measuring time: a hint above MaxRetryDelay makes azcore give up after the first try.
func TestListHonoursThrottlingHints(t *testing.T) {
	// Each hint (2 s) is longer than MaxRetryDelay (500 ms), which azcore alone would turn into a
	// failure: the request must be retried after the hinted 2 s instead.
	for _, header := range []string{
		retryhint.HeaderConsumptionRetryAfter,
		"x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
		"x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
		"x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after",
		"Retry-After",
		"", // no header: the wait named by the message
	} {
		t.Run(header, func(t *testing.T) {
			t.Parallel()
			first := status(429, `{"error":{"code":"429","message":"Please retry after 2 seconds."}}`, mgmt.HeaderRequestID, "rid-429")
			if header != "" {
				first = status(429, `{"error":{"code":"429","message":"Too many requests."}}`, header, "2", mgmt.HeaderRequestID, "rid-429")
			}
			srv := newScript(t, first, reply(`{"value":[`+records(0, 1)+`]}`))
			c := newTestClient(t, srv.URL, func(o *Options) { o.ClientOptions.Retry.MaxRetryDelay = 500 * time.Millisecond })
			start := time.Now()
			col := &collector{}
			if err := c.List(context.Background(), Query{Scope: subScope}, col); err != nil {
				t.Fatalf("List: %v (a hint above MaxRetryDelay must be waited for, not turned into a failure)", err)
			}
			if took := time.Since(start); took < 1900*time.Millisecond {
				t.Errorf("retried after %s, want the hinted 2 s", took)
			}
			if srv.count() != 2 || len(col.records) != 1 {
				t.Errorf("requests = %d, records = %d; want 2 and 1", srv.count(), len(col.records))
			}
		})
	}
}

func TestListGivesUpAfterMaxRetries(t *testing.T) {
	srv := newScript(t, status(503, ""), status(503, ""), status(503, ""))
	c := newTestClient(t, srv.URL, func(o *Options) { o.ClientOptions.Retry.MaxRetries = 2 })
	err := c.List(context.Background(), Query{Scope: subScope}, &collector{})
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 503 {
		t.Fatalf("err = %v, want a ResponseError with status 503", err)
	}
	if srv.count() != 3 {
		t.Errorf("requests = %d, want 3", srv.count())
	}
}

func TestListErrorResponses(t *testing.T) {
	long := strings.Repeat("<html>oops</html>", 600) + "SECRET-AT-THE-END"
	tests := []struct {
		name        string
		step        step
		wantStatus  int
		wantCode    string
		wantMessage string
		wantExcerpt string
		wantInError []string
	}{
		{
			name:        "400 JSON",
			step:        status(400, `{"error":{"code":"400","message":"id query parameter is not a valid Guid"}}`, mgmt.HeaderRequestID, "rid-400", "Content-Type", "application/json"),
			wantStatus:  400,
			wantCode:    "400",
			wantMessage: "id query parameter is not a valid Guid",
			wantInError: []string{"400 Bad Request", `code "400"`, "id query parameter is not a valid Guid", "request id rid-400", "$skiptoken=REDACTED"},
		},
		{
			name:        "400 not JSON",
			step:        status(400, "The request is badly formed.", mgmt.HeaderRequestID, "rid-bad"),
			wantStatus:  400,
			wantExcerpt: "The request is badly formed.",
			wantInError: []string{"400 Bad Request", `body "The request is badly formed."`, "request id rid-bad"},
		},
		{
			name:        "403 long HTML",
			step:        status(403, long),
			wantStatus:  403,
			wantExcerpt: long[:512-len("…")] + "…",
			wantInError: []string{"403 Forbidden", "<html>oops</html>"},
		},
		{
			name:        "401 top-level code",
			step:        status(401, `{"code":"InvalidAuthenticationToken","message":"The access token is invalid."}`, "WWW-Authenticate", `Bearer authorization_uri="x"`),
			wantStatus:  401,
			wantCode:    "InvalidAuthenticationToken",
			wantMessage: "The access token is invalid.",
		},
		{
			name:       "404 error code header",
			step:       status(404, "", "x-ms-error-code", "ResourceNotFound"),
			wantStatus: 404,
			wantCode:   "ResourceNotFound",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScript(t, tt.step)
			c := newTestClient(t, srv.URL, nil)
			err := c.List(context.Background(), Query{NextLink: srv.URL + subPath + "?api-version=2024-08-01&$skiptoken=SECRET&sessiontoken=SECRET2"}, &collector{})
			var ae *mgmt.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *mgmt.APIError", err)
			}
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != tt.wantStatus {
				t.Fatalf("err = %v, want *azcore.ResponseError with status %d", err, tt.wantStatus)
			}
			if ae.StatusCode != tt.wantStatus || ae.Code != tt.wantCode || ae.Message != tt.wantMessage || ae.Excerpt != tt.wantExcerpt {
				t.Errorf("got status %d code %q message %q excerpt %q\nwant status %d code %q message %q excerpt %q",
					ae.StatusCode, ae.Code, ae.Message, ae.Excerpt, tt.wantStatus, tt.wantCode, tt.wantMessage, tt.wantExcerpt)
			}
			if len(ae.Excerpt) > mgmt.MaxErrorExcerpt {
				t.Errorf("excerpt is %d bytes, want at most %d", len(ae.Excerpt), mgmt.MaxErrorExcerpt)
			}
			if !IsPermanent(err) {
				t.Errorf("IsPermanent = false, want true")
			}
			if srv.count() != 1 {
				t.Errorf("requests = %d, want 1 (not retried)", srv.count())
			}
			msg := err.Error()
			for _, want := range tt.wantInError {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			for _, secret := range []string{"SECRET", testToken} {
				if strings.Contains(msg, secret) || strings.Contains(re.Error(), secret) {
					t.Errorf("error leaks %q: %s\n%s", secret, msg, re.Error())
				}
			}
			if h := re.RawResponse.Request.Header.Get("Authorization"); h != "" {
				t.Errorf("ResponseError keeps the Authorization header %q", h)
			}
		})
	}
}

func TestListRefusesRedirects(t *testing.T) {
	target := &countingHandler{h: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"value":[]}`) }}
	other := httptest.NewServer(target)
	defer other.Close()
	transports := map[string]policy.Transporter{
		"default transport":       nil,
		"caller's http.Client":    &http.Client{},
		"caller's client, follow": &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }},
	}
	for name, tr := range transports {
		for _, code := range []int{301, 302, 307, 308} {
			t.Run(fmt.Sprintf("%s/%d", name, code), func(t *testing.T) {
				srv := newScript(t, status(code, "", "Location", other.URL+subPath+"?api-version=2024-08-01"))
				c := newTestClient(t, srv.URL, func(o *Options) { o.ClientOptions.Transport = tr })
				err := c.List(context.Background(), Query{Scope: subScope}, &collector{})
				if !errors.Is(err, mgmt.ErrRedirect) {
					t.Fatalf("err = %v, want mgmt.ErrRedirect", err)
				}
				if !strings.Contains(err.Error(), other.URL) {
					t.Errorf("error %q does not name the Location host %s", err, other.URL)
				}
				if !IsPermanent(err) {
					t.Errorf("IsPermanent = false, want true")
				}
				if srv.count() != 1 {
					t.Errorf("requests = %d, want 1", srv.count())
				}
			})
		}
	}
	if n := target.n.Load(); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

func TestListBrokenBodies(t *testing.T) {
	page := `{"value":[` + records(0, 2) + `,` + records(2, 1)
	good := reply(`{"value":[` + records(10, 3) + `]}`)
	tests := []struct {
		name   string
		step   func() step
		wantIs error
	}{
		{name: "truncated JSON", step: func() step { return reply(page[:len(page)-10]) }, wantIs: io.ErrUnexpectedEOF},
		{name: "cut after a whole record", step: func() step { return reply(`{"value":[` + records(0, 2)) }, wantIs: io.ErrUnexpectedEOF},
		{name: "garbage after a record", step: func() step { return reply(`{"value":[` + records(0, 1) + `,<html>`) }},
		{name: "record is not an object", step: func() step { return reply(`{"value":[` + records(0, 1) + `,"x"]}`) }},
		{name: "data after the page", step: func() step { return reply(`{"value":[` + records(0, 1) + `]}{"value":[]}`) }},
		{name: "connection reset", step: func() step {
			return func(w http.ResponseWriter, _ *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n%s", page[:len(page)-5])
				_ = buf.Flush()
				_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
				_ = conn.Close()
			}
		}, wantIs: mgmt.ErrBrokenBody},
	}
	for _, tt := range tests {
		// Broken once: azcore requests the same link again, and only the good page's records
		// reach the handler, each once.
		t.Run(tt.name+"/retried", func(t *testing.T) {
			srv := newScript(t, tt.step(), good)
			c := newTestClient(t, srv.URL, nil)
			var got collector
			if err := c.List(context.Background(), Query{Scope: subScope}, &got); err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(got.records) != 3 || !strings.Contains(string(got.records[0]), `"r10"`) || len(got.pages) != 1 || srv.count() != 2 {
				t.Errorf("records %d (first %.40s), pages %d, requests %d; want the 3 records of the second answer, 1 page, 2 requests",
					len(got.records), got.records, len(got.pages), srv.count())
			}
			if srv.request(1).RequestURI != srv.request(0).RequestURI {
				t.Errorf("retry went to %q, want the same link %q", srv.request(1).RequestURI, srv.request(0).RequestURI)
			}
		})
		// Broken on every try: a *PageError, and nothing of the page was delivered.
		t.Run(tt.name+"/every try", func(t *testing.T) {
			srv := newScript(t, tt.step(), tt.step())
			c := newTestClient(t, srv.URL, func(o *Options) { o.ClientOptions.Retry.MaxRetries = 1 })
			var got collector
			err := c.List(context.Background(), Query{Scope: subScope}, &got)
			var pe *paging.PageError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *paging.PageError", err)
			}
			if pe.Index != 0 || pe.RecordsDelivered != 0 || len(got.records) != 0 || len(got.pages) != 0 {
				t.Errorf("PageError %+v with %d records and %d pages handled, want index 0 and nothing delivered", pe, len(got.records), len(got.pages))
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantIs)
			}
			if IsPermanent(err) {
				t.Errorf("IsPermanent = true, want false")
			}
			if srv.count() != 2 {
				t.Errorf("requests = %d, want 2 (retried once)", srv.count())
			}
		})
	}
}

// stall writes head, then holds the response open until the client goes away or the test ends.
func stall(t *testing.T, head string, headers bool) step {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(w http.ResponseWriter, r *http.Request) {
		if headers {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, head)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
}

// guard returns a context that ends the test's List well after any idle timeout would have, so
// a broken idle timeout fails the test instead of hanging it.
func guard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestListStalledBody(t *testing.T) {
	// Stalled on every try: a *PageError wrapping mgmt.ErrIdleTimeout, nothing delivered.
	srv := newScript(t, stall(t, `{"value":[`+records(0, 1)+`,`, true), stall(t, `{"value":[`+records(0, 1)+`,`, true))
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.BodyIdleTimeout = 50 * time.Millisecond
		o.ClientOptions.Retry.MaxRetries = 1
	})
	var got collector
	err := c.List(guard(t), Query{Scope: subScope}, &got)
	var pe *paging.PageError
	if !errors.As(err, &pe) || !errors.Is(err, mgmt.ErrIdleTimeout) {
		t.Fatalf("err = %v, want a *paging.PageError wrapping mgmt.ErrIdleTimeout", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("err = %v wraps context.Canceled; an idle timeout must not look like the caller's cancellation", err)
	}
	if pe.RecordsDelivered != 0 || len(got.records) != 0 || srv.count() != 2 {
		t.Errorf("delivered %d/%d after %d requests, want 0 and 2", pe.RecordsDelivered, len(got.records), srv.count())
	}

	// Stalled once: retried from the same link, the second answer's records delivered once.
	srv = newScript(t, stall(t, `{"value":[`+records(0, 1)+`,`, true), reply(`{"value":[`+records(0, 2)+`]}`))
	c = newTestClient(t, srv.URL, func(o *Options) { o.BodyIdleTimeout = 50 * time.Millisecond })
	got = collector{}
	if err := c.List(guard(t), Query{Scope: subScope}, &got); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got.records) != 2 || srv.count() != 2 {
		t.Errorf("records %d after %d requests, want 2 and 2", len(got.records), srv.count())
	}
}

func TestListStalledHeadersAreRetried(t *testing.T) {
	srv := newScript(t, stall(t, "", false), stall(t, "", false))
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.BodyIdleTimeout = 50 * time.Millisecond
		o.ClientOptions.Retry.MaxRetries = 1
	})
	err := c.List(guard(t), Query{Scope: subScope}, &collector{})
	if !errors.Is(err, mgmt.ErrIdleTimeout) {
		t.Fatalf("err = %v, want mgmt.ErrIdleTimeout", err)
	}
	var pe *paging.PageError
	if errors.As(err, &pe) {
		t.Errorf("err = %v is a paging.PageError; nothing was delivered", err)
	}
	if srv.count() != 2 {
		t.Errorf("requests = %d, want 2 (retried once)", srv.count())
	}
}

// slowHandler takes longer per record than the idle timeout.
type slowHandler struct {
	collector
	delay time.Duration
}

func (s *slowHandler) Record(ctx context.Context, raw []byte) error {
	time.Sleep(s.delay)
	return s.collector.Record(ctx, raw)
}

func TestListSlowHandlerIsNotAStall(t *testing.T) {
	srv := newScript(t, reply(`{"value":[`+records(0, 3)+`]}`))
	c := newTestClient(t, srv.URL, func(o *Options) { o.BodyIdleTimeout = 20 * time.Millisecond })
	h := &slowHandler{delay: 60 * time.Millisecond}
	if err := c.List(context.Background(), Query{Scope: subScope}, h); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(h.records) != 3 {
		t.Errorf("got %d records, want 3", len(h.records))
	}
}

func TestListHandlerErrors(t *testing.T) {
	var srv *script
	srv = newScript(t, func(w http.ResponseWriter, r *http.Request) {
		reply(`{"value":[`+records(0, 3)+`],"nextLink":"`+srv.URL+subPath+`?$skiptoken=2"}`)(w, r)
	}, func(w http.ResponseWriter, r *http.Request) {
		reply(`{"value":[`+records(0, 3)+`],"nextLink":"`+srv.URL+subPath+`?$skiptoken=3"}`)(w, r)
	})
	c := newTestClient(t, srv.URL, nil)

	h := &collector{failAfter: 2, recordErr: errStop}
	err := c.List(context.Background(), Query{Scope: subScope}, h)
	var pe *paging.PageError
	if !errors.Is(err, errStop) || errors.As(err, &pe) {
		t.Errorf("Record error: err = %v, want errStop and no paging.PageError", err)
	}

	h = &collector{pageErr: errStop}
	err = c.List(context.Background(), Query{Scope: subScope}, h)
	if !errors.Is(err, errStop) {
		t.Errorf("PageDone error: err = %v, want errStop", err)
	}
	if srv.count() != 2 {
		t.Errorf("requests = %d, want 2 (one per List; the second page is never requested)", srv.count())
	}
}

func TestListContextCancelled(t *testing.T) {
	srv := newScript(t)
	c := newTestClient(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.List(ctx, Query{Scope: subScope}, &collector{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if IsPermanent(err) {
		t.Errorf("IsPermanent = true, want false")
	}
}

func TestTokenGoesOnlyToEndpoint(t *testing.T) {
	var gotAuth []string
	var mu sync.Mutex
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, `{"value":[]}`)
	}))
	defer home.Close()
	foreign := &countingHandler{h: func(http.ResponseWriter, *http.Request) {}}
	other := httptest.NewServer(foreign)
	defer other.Close()

	cred := &recordingCredential{}
	o := testOptions(home.URL)
	c, err := NewClient(cred, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List(context.Background(), Query{Scope: subScope}, &collector{}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(gotAuth) != 1 || gotAuth[0] != "Bearer "+testToken {
		t.Errorf("home server saw Authorization %q, want one %q", gotAuth, "Bearer "+testToken)
	}
	if len(cred.scopes) != 1 || len(cred.scopes[0]) != 1 || cred.scopes[0][0] != home.URL+"/.default" {
		t.Errorf("token scopes = %q, want [[%s/.default]]", cred.scopes, home.URL)
	}

	// The pipeline itself refuses another host, whatever builds the request.
	req, err := runtime.NewRequest(context.Background(), http.MethodGet, other.URL+subPath)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.pipeline.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, mgmt.ErrForeignHost) {
		t.Errorf("pipeline.Do to %s: err = %v, want mgmt.ErrForeignHost", other.URL, err)
	}
	var nr interface{ NonRetriable() }
	if !errors.As(err, &nr) {
		t.Errorf("pipeline.Do to %s: err = %v is not NonRetriable", other.URL, err)
	}
	if n := foreign.n.Load(); n != 0 {
		t.Errorf("foreign server got %d requests, want 0", n)
	}
}

// countPolicy counts the requests passing through it.
type countPolicy struct {
	mu sync.Mutex
	n  int
}

func (p *countPolicy) Do(req *policy.Request) (*http.Response, error) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	return req.Next()
}

func TestCallerPoliciesAndUserAgent(t *testing.T) {
	srv := newScript(t, status(500, ""), reply(`{"value":[]}`))
	perCall, perRetry := &countPolicy{}, &countPolicy{}
	c := newTestClient(t, srv.URL, func(o *Options) {
		o.UserAgent = "usage-export/1.2.3"
		o.ClientOptions.PerCallPolicies = []policy.Policy{perCall}
		o.ClientOptions.PerRetryPolicies = []policy.Policy{perRetry}
	})
	if err := c.List(context.Background(), Query{Scope: subScope}, &collector{}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if perCall.n != 1 || perRetry.n != 2 {
		t.Errorf("per-call policy saw %d requests, per-retry %d; want 1 and 2", perCall.n, perRetry.n)
	}
	if ua := srv.request(0).Header.Get("User-Agent"); !strings.HasPrefix(ua, "usage-export/1.2.3 azsdk-go-consumption/") {
		t.Errorf("User-Agent = %q, want it to start with the configured agent and the module", ua)
	}
}

func TestAzcoreLogsAreRedacted(t *testing.T) {
	var mu sync.Mutex
	var logged strings.Builder
	azlog.SetListener(func(_ azlog.Event, msg string) {
		mu.Lock()
		defer mu.Unlock()
		logged.WriteString(msg + "\n")
	})
	defer azlog.SetListener(nil)
	srv := newScript(t, status(500, ""), reply(`{"value":[]}`))
	c := newTestClient(t, srv.URL, nil)
	link := srv.URL + subPath + "?api-version=2024-08-01&sessiontoken=21:SECRET1&$skiptoken=SECRET2&skiptokenver=v1"
	if err := c.List(context.Background(), Query{NextLink: link}, &collector{}); err != nil {
		t.Fatalf("List: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	out := logged.String()
	if strings.Contains(out, "SECRET") || strings.Contains(out, testToken) {
		t.Errorf("azcore log leaks a secret:\n%s", out)
	}
	if !strings.Contains(out, "api-version=2024-08-01") || !strings.Contains(out, "skiptokenver=v1") {
		t.Errorf("azcore log lacks the allowed query parameters:\n%s", out)
	}
}

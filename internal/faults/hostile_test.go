package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/hostqueue"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/testutil"
	"github.com/usage-export/usage-export/internal/workqueue"
)

// Scopes of the hostile table: the handler is configured with the first two (the allow-list);
// the others exist in the sandbox but were not configured.
const (
	allowedDept     = "/providers/Microsoft.Billing/departments/301001"
	allowedSub      = "/subscriptions/04b1c4fd-919a-4ea4-a10b-9022ba9f1b3b"
	otherDept       = "/providers/Microsoft.Billing/departments/301002"
	parentAccount   = "/providers/Microsoft.Billing/billingAccounts/8608480"
	otherMCAProfile = "/providers/Microsoft.Billing/billingAccounts/1234:56789_2019-05-31/billingProfiles/PR01-0001"
)

// hostileCase is one request to the HTTP function. The caller's request travels inside the
// host's invocation payload; the invocation-level cases break the payload itself.
type hostileCase struct {
	name    string
	method  string              // default POST
	id      string              // route parameter {id}
	body    string              // the caller's body, sent as the host does (a JSON string)
	rawBody string              // instead of body: Data.req.Body as this JSON value (older hosts)
	headers map[string][]string // Data.req.Headers to add; Content-Type defaults to application/json
	// invocation replaces the whole host payload (the handler answers the host directly).
	invocation []byte
	want       int    // the caller's status (Outputs.res.statusCode), or the host's for invocation cases
	code       string // error.code
	hint       string // a part of error.message that says what to fix
}

// hostileCases returns the table: malformed and huge JSON, wrong types, unknown fields, scope
// injection, path traversal, periods out of range, absurd ranges, header tricks, missing keys
// and broken host payloads. Every case must get a 4xx with a useful message, never a 5xx, and
// cause no call to the API.
func hostileCases(now time.Time) []hostileCase {
	cur := period.Of(now)
	prev := cur.Add(-1).String()
	next := cur.Add(1).String()
	ok := `"periods":["` + prev + `"]`
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	many := make([]string, 40)
	for i := range many {
		many[i] = `"` + cur.Add(-i-1).String() + `"`
	}
	return []hostileCase{
		// Malformed JSON.
		{name: "truncated object", body: `{` + ok, want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "trailing garbage", body: `{` + ok + `}}`, want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "single quotes", body: `{'periods':['` + prev + `']}`, want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "bare word", body: `periods`, want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "JSON with comments", body: `{/* x */` + ok + `}`, want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "NUL byte in body", body: "{\x00" + ok + "}", want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "invalid UTF-8 escape", body: `{"periods":["\udc00` + prev + `"]}`, want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "nesting 20000 deep", body: `{"scopes":` + deep + `,` + ok + `}`, want: 400, code: "invalid_json", hint: "not valid JSON"},
		{name: "empty body", body: "", want: 400, code: "invalid_json", hint: "empty"},
		{name: "whitespace body", body: " \n\t ", want: 400, code: "invalid_json", hint: "empty"},
		{name: "duplicate field", body: `{` + ok + `,` + ok + `}`, want: 400, code: "invalid_json", hint: "duplicate"},
		{name: "huge body (200 KiB)", body: `{"scopes":["` + strings.Repeat("a", 200<<10) + `"],` + ok + `}`, want: 413, code: "body_too_large", hint: "at most"},
		{name: "huge invocation (2 MiB)", body: `{"x":"` + strings.Repeat("a", 2<<20) + `",` + ok + `}`, want: 413, code: "body_too_large", hint: "larger than"},
		{name: "number too large", body: `{"periods":[1e999999]}`, want: 400, code: "invalid_request", hint: "/periods/0"},
		// Wrong types.
		{name: "body is an array", body: `["` + prev + `"]`, want: 400, code: "invalid_request", hint: "JSON object"},
		{name: "body is a string", body: `"` + prev + `"`, want: 400, code: "invalid_request", hint: "JSON object"},
		{name: "body is null", body: `null`, want: 400, code: "missing_periods", hint: "periods"},
		{name: "scopes a string", body: `{"scopes":"` + allowedDept + `",` + ok + `}`, want: 400, code: "invalid_request", hint: "/scopes"},
		{name: "scopes numbers", body: `{"scopes":[301001],` + ok + `}`, want: 400, code: "invalid_request", hint: "/scopes/0"},
		{name: "scopes an object", body: `{"scopes":{"path":"` + allowedDept + `"},` + ok + `}`, want: 400, code: "invalid_request", hint: "/scopes"},
		{name: "periods a number", body: `{"periods":` + prev + `}`, want: 400, code: "invalid_request", hint: "/periods"},
		{name: "periods of objects", body: `{"periods":[{"from":"` + prev + `"}]}`, want: 400, code: "invalid_request", hint: "/periods/0"},
		{name: "force a string", body: `{` + ok + `,"force":"yes"}`, want: 400, code: "invalid_request", hint: "true or false"},
		{name: "metric an object", body: `{` + ok + `,"metric":{"name":"actualcost"}}`, want: 400, code: "invalid_request", hint: "/metric"},
		{name: "source a number", body: `{` + ok + `,"source":1}`, want: 400, code: "invalid_request", hint: "/source"},
		{name: "from a number", body: `{"from":` + prev + `}`, want: 400, code: "invalid_request", hint: "/from"},
		// Unknown fields.
		{name: "unknown field", body: `{` + ok + `,"container":"other"}`, want: 400, code: "unknown_field", hint: `"container"`},
		{name: "field in another case", body: `{"Periods":["` + prev + `"]}`, want: 400, code: "unknown_field", hint: "case-sensitive"},
		{name: "prototype pollution key", body: `{` + ok + `,"__proto__":{"scopes":["` + otherDept + `"]}}`, want: 400, code: "unknown_field", hint: "__proto__"},
		{name: "output prefix override", body: `{` + ok + `,"prefix":"../../elsewhere"}`, want: 400, code: "unknown_field", hint: `"prefix"`},
		// Scope injection: valid scopes outside the allow-list, and paths that are not scopes.
		{name: "scope not configured", body: `{"scopes":["` + otherDept + `"],` + ok + `}`, want: 403, code: "scope_not_allowed", hint: "configured scopes"},
		{name: "parent of a configured scope", body: `{"scopes":["` + parentAccount + `"],` + ok + `}`, want: 403, code: "scope_not_allowed", hint: "configured scopes"},
		{name: "MCA scope not configured", body: `{"scopes":["` + otherMCAProfile + `"],` + ok + `}`, want: 403, code: "scope_not_allowed", hint: "configured scopes"},
		{name: "allowed plus one not allowed", body: `{"scopes":["` + allowedDept + `","` + otherDept + `"],` + ok + `}`, want: 403, code: "scope_not_allowed", hint: otherDept},
		{name: "configured scope in another case, sibling id", body: `{"scopes":["/PROVIDERS/microsoft.billing/DEPARTMENTS/301002"],` + ok + `}`, want: 403, code: "scope_not_allowed", hint: "configured scopes"},
		{name: "dot-dot out of a configured scope", body: `{"scopes":["` + allowedDept + `/../301002"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "invalid scope"},
		{name: "dot-dot id", body: `{"scopes":["/providers/Microsoft.Billing/departments/.."],` + ok + `}`, want: 400, code: "invalid_scope", hint: "characters outside"},
		{name: "encoded traversal", body: `{"scopes":["/providers/Microsoft.Billing/departments/%2e%2e%2f301002"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "characters outside"},
		{name: "query in scope", body: `{"scopes":["` + allowedDept + `?api-version=2019-01-01&$filter=x"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "characters outside"},
		{name: "fragment in scope", body: `{"scopes":["` + allowedDept + `#x"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "characters outside"},
		{name: "absolute URL as scope", body: `{"scopes":["https://attacker.invalid` + allowedDept + `"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "invalid scope"},
		{name: "CRLF header injection in scope", body: `{"scopes":["` + allowedDept + `\r\nAuthorization: Bearer x"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "characters outside"},
		{name: "NUL in scope", body: `{"scopes":["` + allowedDept + `\u0000"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "characters outside"},
		{name: "scope of 600 characters", body: `{"scopes":["/subscriptions/` + strings.Repeat("a", 600) + `"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "longer than"},
		{name: "empty scope", body: `{"scopes":[""],` + ok + `}`, want: 400, code: "invalid_scope", hint: "empty"},
		{name: "resource group scope", body: `{"scopes":["` + allowedSub + `/resourceGroups/rg"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "not a usage-details scope"},
		{name: "billing period sub-scope traversal", body: `{"scopes":["` + allowedDept + `/providers/Microsoft.Billing/billingPeriods/.."],` + ok + `}`, want: 400, code: "invalid_scope", hint: "billing period"},
		{name: "fullwidth solidus lookalike", body: `{"scopes":["/providers/Microsoft.Billing/departments／301001"],` + ok + `}`, want: 400, code: "invalid_scope", hint: "invalid scope"},
		// Path traversal through the other fields that could reach blob names.
		{name: "period traversal", body: `{"periods":["../../` + prev + `"]}`, want: 400, code: "invalid_period", hint: "YYYYMM"},
		{name: "metric traversal", body: `{` + ok + `,"metric":"../actualcost"}`, want: 400, code: "invalid_metric", hint: "actualcost"},
		{name: "source traversal", body: `{` + ok + `,"source":"../../_control"}`, want: 400, code: "invalid_source", hint: "usageDetails"},
		{name: "job id traversal (GET)", method: "GET", id: "../../_control/checkpoints", want: 404, code: "not_found", hint: "no export job"},
		// Periods out of range and absurd ranges.
		{name: "month 13", body: `{"periods":["` + strconv.Itoa(cur.Year) + `13"]}`, want: 400, code: "invalid_period", hint: "YYYYMM"},
		{name: "month 00", body: `{"periods":["` + strconv.Itoa(cur.Year) + `00"]}`, want: 400, code: "invalid_period", hint: "YYYYMM"},
		{name: "year 0000", body: `{"periods":["000001"]}`, want: 400, code: "invalid_period", hint: "starts in"},
		{name: "slashed period", body: `{"periods":["` + cur.Start().Format("2006/01") + `"]}`, want: 400, code: "invalid_period", hint: "YYYYMM"},
		{name: "period with a time", body: `{"periods":["` + cur.Start().Format(time.RFC3339) + `"]}`, want: 400, code: "invalid_period", hint: "YYYYMM"},
		{name: "period with sign", body: `{"periods":["+` + prev + `"]}`, want: 400, code: "invalid_period", hint: "YYYYMM"},
		{name: "future period", body: `{"periods":["` + next + `"]}`, want: 400, code: "period_in_future", hint: "future"},
		{name: "far future period", body: `{"periods":["999912"]}`, want: 400, code: "period_in_future", hint: "future"},
		{name: "before the API's data", body: `{"periods":["199001"]}`, want: 400, code: "invalid_period", hint: "starts in"},
		{name: "range of a century", body: `{"from":"192601","to":"` + prev + `"}`, want: 400, code: "invalid_period", hint: "starts in"},
		{name: "range too long", body: `{"from":"` + cur.Add(-40).String() + `","to":"` + prev + `"}`, want: 400, code: "range_too_long", hint: "at most 36"},
		{name: "range backwards", body: `{"from":"` + prev + `","to":"` + cur.Add(-3).String() + `"}`, want: 400, code: "invalid_period", hint: "after"},
		{name: "40 distinct periods", body: `{"periods":[` + strings.Join(many, ",") + `]}`, want: 400, code: "range_too_long", hint: "40 billing periods"},
		{name: "to without from", body: `{"to":"` + prev + `"}`, want: 400, code: "invalid_period", hint: `"to" needs "from"`},
		{name: "periods and range", body: `{` + ok + `,"from":"` + prev + `"}`, want: 400, code: "conflicting_periods", hint: "not both"},
		// Missing keys.
		{name: "no periods", body: `{"scopes":["` + allowedDept + `"]}`, want: 400, code: "missing_periods", hint: "periods"},
		{name: "empty object", body: `{}`, want: 400, code: "missing_periods", hint: "periods"},
		{name: "empty periods list", body: `{"periods":[]}`, want: 400, code: "missing_periods", hint: "periods"},
		// Header and method tricks.
		{name: "text/plain content type", body: `{` + ok + `}`, headers: map[string][]string{"Content-Type": {"text/plain"}}, want: 415, code: "unsupported_media_type", hint: "application/json"},
		{name: "form content type", body: `periods=` + prev, headers: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}, want: 415, code: "unsupported_media_type", hint: "application/json"},
		{name: "malformed content type", body: `{` + ok + `}`, headers: map[string][]string{"Content-Type": {"application/json; ;;="}}, want: 415, code: "unsupported_media_type", hint: "not JSON"},
		{name: "two content types, first not JSON", body: `{` + ok + `}`, headers: map[string][]string{"Content-Type": {"text/html", "application/json"}}, want: 415, code: "unsupported_media_type", hint: "text/html"},
		{name: "forwarding headers and a foreign scope", body: `{"scopes":["` + otherDept + `"],` + ok + `}`,
			headers: map[string][]string{"X-Forwarded-Host": {"management.azure.com"}, "X-Original-URL": {"/api/admin"}, "X-Ms-Client-Principal-Name": {"admin"}},
			want:    403, code: "scope_not_allowed", hint: "configured scopes"},
		{name: "PUT", method: "PUT", body: `{` + ok + `}`, want: 405, code: "method_not_allowed", hint: "POST /api/exports"},
		{name: "DELETE (cancel) an unknown job", method: "DELETE", id: "20260101-000000-000000000000", want: 404, code: "not_found", hint: "no export job"},
		{name: "TRACE", method: "TRACE", want: 405, code: "method_not_allowed", hint: "not supported"},
		{name: "POST to a job id", id: "20260101-000000-000000000000", body: `{` + ok + `}`, want: 405, code: "method_not_allowed", hint: "POST /api/exports creates"},
		{name: "old host: body as a JSON value, foreign scope", rawBody: `{"scopes":["` + otherDept + `"],` + ok + `}`, want: 403, code: "scope_not_allowed", hint: "configured scopes"},
		// Broken host payloads (only the host can send these; the handler must still answer 4xx).
		{name: "invocation not JSON", invocation: []byte(`<xml/>`), want: 400, code: "invalid_invocation", hint: "decoding invocation"},
		{name: "invocation without Data", invocation: []byte(`{"Metadata":{}}`), want: 400, code: "invalid_invocation", hint: "no Data"},
		{name: "invocation without Data.req", invocation: []byte(`{"Data":{"request":{}},"Metadata":{}}`), want: 400, code: "invalid_invocation", hint: "Data.req"},
		{name: "Data.req a string", invocation: []byte(`{"Data":{"req":"POST /api/exports"},"Metadata":{}}`), want: 400, code: "invalid_invocation", hint: "Data.req"},
	}
}

// hostileHandler is the real handler binary serving the Functions host protocol.
type hostileHandler struct {
	base  string
	proc  *proc
	out   string // output directory
	queue *workqueue.Queue
}

// startServe starts `handler serve` with FUNCTIONS_CUSTOMHANDLER_PORT, configured with the
// allow-list against sb and a work queue of its own on Azurite's Queue service (as the Functions
// host's storage), and waits for its readiness answer.
func startServe(t *testing.T, sb *sandbox.Server) *hostileHandler {
	t.Helper()
	port := testutil.FreePort(t)
	out := t.TempDir()
	az := azuritetest.Start(t)
	qname := "hostile-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	q, err := workqueue.New(workqueue.Settings{ConnectionString: az.ConnectionString(), Queue: qname}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	env := []string{
		workqueue.EnvConnection + "=" + az.ConnectionString(),
		workqueue.EnvQueue + "=" + qname,
		"FUNCTIONS_CUSTOMHANDLER_PORT=" + strconv.Itoa(port),
		"USAGE_EXPORT_SCOPES=" + allowedDept + "," + allowedSub,
		"USAGE_EXPORT_MANAGEMENT_ENDPOINT=" + sb.URL(),
		"USAGE_EXPORT_TOKEN=" + sb.Token(),
		"USAGE_EXPORT_OUTPUT_DIR=" + out,
		"USAGE_EXPORT_EXPAND=none",
		"USAGE_EXPORT_RATE_PER_SCOPE=100000",
		"USAGE_EXPORT_RATE_PER_TENANT=100000",
		"WEBSITE_INSTANCE_ID=faults-hostile",
	}
	h := &hostileHandler{base: fmt.Sprintf("http://127.0.0.1:%d", port), proc: startHandler(t, testutil.HandlerBinary(t), env, []string{"serve"}), out: out, queue: q}
	for deadline := time.Now().Add(time.Minute); ; {
		if resp, err := http.Get(h.base + "/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(`"ready"`)) {
				return h
			}
		}
		if h.proc.exited() || time.Now().After(deadline) {
			t.Fatalf("handler serve did not get ready (exit %d): %s", h.proc.code, h.proc.tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// invocation builds the host's payload for one caller request from the captured one.
func invocation(t *testing.T, c hostileCase) []byte {
	t.Helper()
	if c.invocation != nil {
		return c.invocation
	}
	tmpl, err := os.ReadFile(filepath.Join("testdata", "http-invocation-request.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(tmpl, &p); err != nil {
		t.Fatal(err)
	}
	req := p["Data"].(map[string]any)["req"].(map[string]any)
	method := c.method
	if method == "" {
		method = "POST"
	}
	url, params := "http://localhost:7071/api/exports", map[string]any{}
	if c.id != "" {
		url += "/" + c.id
		params["id"] = c.id
	}
	req["Url"], req["Method"], req["Params"] = url, method, params
	headers := req["Headers"].(map[string]any)
	if c.body != "" || c.rawBody != "" {
		headers["Content-Type"] = []string{"application/json"}
	}
	for k, v := range c.headers {
		headers[k] = v
	}
	switch {
	case c.rawBody != "":
		req["Body"] = json.RawMessage(c.rawBody)
	case c.body != "":
		req["Body"] = c.body
	}
	p["Metadata"].(map[string]any)["sys"].(map[string]any)["MethodName"] = "UsageExportHttp"
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// callerReply is what the caller of the HTTP function gets: the status and the error body.
type callerReply struct {
	status  int
	code    string
	message string
	raw     string
}

// invoke posts an invocation and returns the caller's reply (or the host-level reply of a
// broken invocation) and the status the host got.
func (h *hostileHandler) invoke(t *testing.T, payload []byte) (callerReply, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.base+"/UsageExportHttp", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", "00000000-0000-0000-0000-000000000001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("invoking the handler: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the handler's answer: %v", err)
	}
	var errBody struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.Unmarshal(b, &errBody)
		return callerReply{status: resp.StatusCode, code: errBody.Error.Code, message: errBody.Error.Message, raw: string(b)}, resp.StatusCode
	}
	res, err := testutil.ParseHTTPOutput(b)
	if err != nil {
		return callerReply{status: -1, raw: string(b)}, resp.StatusCode
	}
	_ = json.Unmarshal([]byte(res.Body), &errBody)
	return callerReply{status: res.StatusCode, code: errBody.Error.Code, message: errBody.Error.Message, raw: res.Body}, resp.StatusCode
}

// TestHostileInputs sends the hostile table to the real handler (`handler serve`, spoken to as
// the Functions host does) configured against the sandbox, and checks that every request gets a
// 4xx with a useful message and no call reaches the API; then a valid request proves the
// wiring would have shown such a call.
func TestHostileInputs(t *testing.T) {
	gate(t)
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{RecordsPerDay: 1, Now: time.Now})
	h := startServe(t, sb)
	cases := hostileCases(time.Now())
	if len(cases) < 50 {
		t.Fatalf("the table has %d cases, want at least 50", len(cases))
	}
	for i, c := range cases {
		got, hostStatus := h.invoke(t, invocation(t, c))
		var why []string
		if got.status < 400 || got.status > 499 {
			why = append(why, fmt.Sprintf("status %d, want a 4xx", got.status))
		}
		if got.status != c.want {
			why = append(why, fmt.Sprintf("status %d, want %d", got.status, c.want))
		}
		if c.invocation == nil && hostStatus != http.StatusOK {
			why = append(why, fmt.Sprintf("the host got %d (it must get 200 with the caller's status inside)", hostStatus))
		}
		if got.code != c.code {
			why = append(why, fmt.Sprintf("code %q, want %q", got.code, c.code))
		}
		if !strings.Contains(got.message, c.hint) {
			why = append(why, fmt.Sprintf("message %q does not say %q", got.message, c.hint))
		}
		if n := sb.Stats().Requests; n != 0 {
			why = append(why, fmt.Sprintf("%d requests reached the API", n))
		}
		if h.proc.exited() {
			why = append(why, "the handler died: "+h.proc.tail(1000))
		}
		msg := got.message
		if len(msg) > 110 {
			msg = msg[:110] + "…"
		}
		if len(why) > 0 {
			report(t, kindHostile, false, "%02d %s: %d %s: %s (%s)", i+1, c.name, got.status, got.code, strings.Join(why, "; "), got.raw)
			if h.proc.exited() {
				return
			}
			continue
		}
		report(t, kindHostile, true, "%02d %s: %d %s: %s", i+1, c.name, got.status, got.code, msg)
	}

	// Nothing was accepted: no job document, no partition.
	var written []string
	_ = filepath.WalkDir(h.out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			written = append(written, p)
		}
		return nil
	})
	if len(written) > 0 {
		t.Errorf("refused requests left files in the output: %v", written)
	}
	for _, s := range []string{h.proc.stdout.String(), h.proc.stderr.String()} {
		if strings.Contains(s, "panic") || strings.Contains(s, "fatal error") {
			t.Errorf("the handler logged a panic: %s", s)
		}
	}
	defer func() {
		for _, problem := range leaks(h.proc.stdout.String()+h.proc.stderr.String(), sb.Token()) {
			t.Error(problem)
		}
	}()

	// The control: a valid request for a configured scope is accepted and its job calls the
	// API for that scope only, so the zero above could not have been a blind counter.
	prev := period.Of(time.Now()).Add(-1).String()
	got, _ := h.invoke(t, invocation(t, hostileCase{body: `{"scopes":["` + allowedDept + `"],"periods":["` + prev + `"]}`}))
	if got.status != http.StatusAccepted {
		t.Fatalf("valid request: status %d: %s", got.status, got.raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The job's partitions go through the work queue: a host delivers them to the worker
	// function of the same handler, as the Functions host does.
	host := hostqueue.New(hostqueue.Options{Work: h.queue.Work(), Poison: h.queue.Poison(), Function: "UsageExportWorker", Binding: "item", Logf: t.Logf})
	go host.Listen(ctx, "faults-hostile", h.base)
	for sb.Stats().Requests == 0 {
		if ctx.Err() != nil || h.proc.exited() {
			t.Fatalf("the accepted job never called the API: %s", h.proc.tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for sc, n := range sb.Stats().ByScope {
		if !strings.HasPrefix(sc, strings.ToLower(allowedDept)) {
			t.Errorf("%d calls reached %s, which is not the requested scope", n, sc)
		}
	}
}

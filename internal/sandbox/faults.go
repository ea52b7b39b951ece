package sandbox

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Fault is a failure the sandbox can inject into a response.
type Fault string

// Faults of the usageDetails API, the Cost Details API and the report blobs. Response faults
// replace the whole response; body faults damage a 200 response on its way out.
const (
	// Throttle429Consumption answers 429 with x-ms-ratelimit-microsoft.consumption-retry-after
	// (and no Retry-After), as the usageDetails API throttles.
	Throttle429Consumption Fault = "429-consumption-retry-after"
	// Throttle429RetryAfter answers 429 with a plain Retry-After header.
	Throttle429RetryAfter Fault = "429-retry-after"
	// Unavailable503 answers 503 with Retry-After.
	Unavailable503 Fault = "503-retry-after"
	// Internal500 answers 500 with an ARM error body.
	Internal500 Fault = "500"
	// Gateway504 answers 504 GatewayTimeout with an ARM error body.
	Gateway504 Fault = "504"
	// ResetMidBody sends the headers and part of the body, then resets the TCP connection.
	ResetMidBody Fault = "reset-mid-body"
	// TruncatedJSON sends a complete HTTP response whose body is cut in the middle (the
	// Content-Length matches the cut body, so only the JSON/CSV is broken).
	TruncatedJSON Fault = "truncated-json"
	// StalledBody sends the headers and part of the body, then stalls until the client gives up,
	// the server closes, or Options.StallMax passes (then the connection is closed).
	StalledBody Fault = "stalled-body"
	// BodyMix is a body fault of each kind in turn: ResetMidBody, TruncatedJSON, StalledBody,
	// ResetMidBody, … (counted under the kind that fired).
	BodyMix Fault = "body-mix"
	// NextLinkLoop returns a page whose nextLink is the URL of the request that returned it.
	NextLinkLoop Fault = "nextlink-loop"
	// NextLinkForeign returns a page whose nextLink points at another host (127.0.0.2, same port
	// and path): a client must refuse to send its token there.
	NextLinkForeign Fault = "nextlink-foreign-host"
	// TokenExpired401 answers 401 ExpiredAuthenticationToken with a WWW-Authenticate header.
	TokenExpired401 Fault = "401-token-expired"
	// NewRecordShape appends to the page one record with kind "future" and an extra unknown
	// property "futureProperty" (a copy of the page's last record with its cost fields zeroed).
	// It is not part of the ground truth: a faithful exporter passes it through, so the
	// exported rows are the ground truth plus one per injected record, sums unchanged.
	NewRecordShape Fault = "new-record-shape"
	// NonJSONError answers 400 with an HTML body ("The request is badly formed.").
	NonJSONError Fault = "non-json-400"

	// ReportFailed makes the next Cost Details operation end with status Failed.
	ReportFailed Fault = "report-failed"
	// ReportNoData makes the next Cost Details operation end with status NoDataFound.
	ReportNoData Fault = "report-no-data"
	// ReportExpired makes the next Cost Details operation complete with validTill in the past,
	// so its blob links answer 403.
	ReportExpired Fault = "report-expired"
)

// bodyKinds are the body faults BodyMix takes in turn.
var bodyKinds = []Fault{ResetMidBody, TruncatedJSON, StalledBody}

// Target selects which requests a fault rule applies to.
type Target string

// Targets.
const (
	TargetUsage       Target = "usage"       // usageDetails pages (the default)
	TargetCostDetails Target = "costdetails" // generateCostDetailsReport POST and operation polls
	TargetBlob        Target = "blob"        // report blob downloads
)

// Rule is one fault injection rule. A request matches when its target matches, and Page (when
// set) equals its page index; a matching request fires the rule on every Every-th matching
// request when Every is set (deterministic), else with Probability (0 means always), and at
// most Count times (0 means no limit).
type Rule struct {
	Fault       Fault   `json:"fault"`
	Target      Target  `json:"target,omitempty"`
	Count       int     `json:"count,omitempty"`
	Probability float64 `json:"probability,omitempty"`
	Every       int     `json:"every,omitempty"`
	// Page is the 0-based page index of a usageDetails request (0 = the request without
	// $skiptoken, n = the n-th nextLink) or the blob index of a report download; nil = any.
	Page *int `json:"page,omitempty"`

	fired int
	seen  int // matching requests, for Every
}

// Faults holds fault rules. The zero value has no rules; it is safe for concurrent use. The
// first matching rule wins, in the order rules were added.
type Faults struct {
	mu    sync.Mutex
	rules []*Rule
	rnd   *rand.Rand
	fired map[Fault]int
}

// NewFaults returns an empty rule set whose probabilities draw from a generator seeded with
// seed, so a run with the same requests injects the same faults.
func NewFaults(seed int64) *Faults {
	return &Faults{rnd: rand.New(rand.NewPCG(uint64(seed), 0x5eed))}
}

// Add appends a rule.
func (f *Faults) Add(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Target == "" {
		r.Target = defaultTarget(r.Fault)
	}
	r.fired, r.seen = 0, 0
	f.rules = append(f.rules, &r)
}

func defaultTarget(ft Fault) Target {
	switch ft {
	case ReportFailed, ReportNoData, ReportExpired:
		return TargetCostDetails
	}
	return TargetUsage
}

// Inject makes the next n matching usageDetails requests (or Cost Details operations, for the
// report faults) fail with fault.
func (f *Faults) Inject(fault Fault, n int) { f.Add(Rule{Fault: fault, Count: n}) }

// Rate makes each usageDetails request fail with fault with probability p, drawn from the
// seeded generator.
func (f *Faults) Rate(fault Fault, p float64) { f.Add(Rule{Fault: fault, Probability: p}) }

// Every makes every n-th matching request of target fail with fault: the n-th, the 2n-th, …
// (BodyMix: a body fault of each kind in turn).
func (f *Faults) Every(fault Fault, target Target, n int) {
	f.Add(Rule{Fault: fault, Target: target, Every: n})
}

// OnPage makes the next request for usageDetails page pageIndex fail with fault (once).
func (f *Faults) OnPage(fault Fault, pageIndex int) {
	f.Add(Rule{Fault: fault, Count: 1, Page: &pageIndex})
}

// Clear removes every rule (fired counts are kept).
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Fired returns how many times each fault has fired.
func (f *Faults) Fired() map[Fault]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[Fault]int, len(f.fired))
	for k, v := range f.fired {
		out[k] = v
	}
	return out
}

// Rules returns a copy of the active rules.
func (f *Faults) Rules() []Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Rule, len(f.rules))
	for i, r := range f.rules {
		out[i] = *r
	}
	return out
}

// take returns the fault to inject into a request of target t with page index page, or "".
// accept limits the faults considered (nil = any).
func (f *Faults) take(t Target, page int, accept func(Fault) bool) Fault {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if r.Target != t || (r.Page != nil && *r.Page != page) || (accept != nil && !accept(r.Fault)) {
			continue
		}
		if r.Every > 0 {
			r.seen++
			if r.seen%r.Every != 0 {
				continue
			}
		} else if r.Probability > 0 {
			if f.rnd == nil {
				f.rnd = rand.New(rand.NewPCG(1, 0x5eed))
			}
			if f.rnd.Float64() >= r.Probability {
				continue
			}
		}
		fault := r.Fault
		if fault == BodyMix {
			fault = bodyKinds[r.fired%len(bodyKinds)]
		}
		r.fired++
		if f.fired == nil {
			f.fired = map[Fault]int{}
		}
		f.fired[fault]++
		if r.Count > 0 && r.fired >= r.Count {
			f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
		}
		return fault
	}
	return ""
}

// faultControl is the body of POST /sandbox/faults.
type faultControl struct {
	Clear bool   `json:"clear"`
	Rules []Rule `json:"rules"`
}

type faultState struct {
	Rules []Rule        `json:"rules"`
	Fired map[Fault]int `json:"fired"`
}

var knownFaults = map[Fault]bool{
	Throttle429Consumption: true, Throttle429RetryAfter: true, Unavailable503: true, Internal500: true,
	Gateway504: true, ResetMidBody: true, TruncatedJSON: true, StalledBody: true, NextLinkLoop: true,
	NextLinkForeign: true, TokenExpired401: true, NewRecordShape: true, NonJSONError: true,
	ReportFailed: true, ReportNoData: true, ReportExpired: true, BodyMix: true,
}

// serveFaults handles GET (state) and POST (clear and/or add rules) on /sandbox/faults.
func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var c faultControl
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("decoding fault control: %v", err))
			return
		}
		for _, rule := range c.Rules {
			if !knownFaults[rule.Fault] {
				writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("unknown fault %q", rule.Fault))
				return
			}
			switch rule.Target {
			case "", TargetUsage, TargetCostDetails, TargetBlob:
			default:
				writeError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("unknown target %q", rule.Target))
				return
			}
		}
		if c.Clear {
			s.faults.Clear()
		}
		for _, rule := range c.Rules {
			s.faults.Add(rule)
		}
	default:
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET or POST")
		return
	}
	writeJSON(w, http.StatusOK, faultState{Rules: s.faults.Rules(), Fired: s.faults.Fired()})
}

// isBodyFault reports whether a fault damages a 200 body rather than replacing the response.
func isBodyFault(f Fault) bool {
	switch f {
	case ResetMidBody, TruncatedJSON, StalledBody, NextLinkLoop, NextLinkForeign, NewRecordShape:
		return true
	}
	return false
}

// badlyFormed is the HTML body of the non-JSON 400 clients have reported
// (Azure/azure-sdk-for-go#2399).
const badlyFormed = `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">
<HTML><HEAD><TITLE>Bad Request</TITLE>
<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>
<BODY><h2>Bad Request</h2>
<hr><p>HTTP Error 400. The request is badly formed.</p>
</BODY></HTML>
`

// respondFault writes a response-level fault and reports true; for body faults (and report
// faults, handled by the caller) it writes nothing and reports false.
func (s *Server) respondFault(w http.ResponseWriter, f Fault) bool {
	h := w.Header()
	ra := s.o.FaultRetryAfter
	switch f {
	case Throttle429Consumption:
		setRetryHeaders(h, hdrConsumptionRetryAfter, ra)
		writeError(w, http.StatusTooManyRequests, "429", "Too many requests. Please retry after "+h.Get(hdrConsumptionRetryAfter)+" seconds.")
	case Throttle429RetryAfter:
		setRetryHeaders(h, "Retry-After", ra)
		writeError(w, http.StatusTooManyRequests, "429", "Too many requests. Please retry.")
	case Unavailable503:
		setRetryHeaders(h, "Retry-After", ra)
		writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable. Please retry.")
	case Internal500:
		writeError(w, http.StatusInternalServerError, "InternalServerError", "An internal error occurred. Please retry.")
	case Gateway504:
		writeError(w, http.StatusGatewayTimeout, "GatewayTimeout", "The gateway did not receive a response within the specified time period.")
	case TokenExpired401:
		now := s.o.Clock().UTC()
		unauthorized(w, "ExpiredAuthenticationToken",
			fmt.Sprintf("The access token expiry UTC time '%s' is earlier than current UTC time '%s'.",
				now.Add(-time.Minute).Format("1/2/2006 3:04:05 PM"), now.Format("1/2/2006 3:04:05 PM")),
			"The access token has expired.")
	case NonJSONError:
		h.Set("Content-Type", "text/html; charset=us-ascii")
		h.Set("Content-Length", strconv.Itoa(len(badlyFormed)))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, badlyFormed)
	default:
		return false
	}
	return true
}

// writeBody writes a 200 body, damaged as a body fault says.
func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, body []byte, f Fault) {
	h := w.Header()
	switch f {
	case TruncatedJSON:
		body = body[:len(body)/2]
	case ResetMidBody, StalledBody:
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if f == StalledBody && !s.sleep(r.Context(), s.o.StallMax) {
			return // the client gave up or the server closed; net/http drops the short response
		}
		resetConn(rc)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// resetConn hijacks the connection and closes it with a TCP reset (linger 0).
func resetConn(rc *http.ResponseController) {
	conn, _, err := rc.Hijack()
	if err != nil {
		return // HTTP/2 or already gone: returning early still cuts the body short
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

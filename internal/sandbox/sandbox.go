// Package sandbox is a faithful local stand-in for the Azure Consumption usageDetails API and the
// Cost Details report API, serving a deterministic synthetic billing world on loopback.
package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// Defaults.
const (
	defaultSeed          = 1
	defaultRecordsPerDay = 20
	maxPageSize          = 1000 // $top maximum of the API
	defaultRateWindow    = time.Minute
	defaultFirstMonths   = 13 // months of history before Now's month
	defaultPollInterval  = time.Second
	defaultPollsBefore   = 2
	defaultRowsPerBlob   = 100_000
	defaultValidity      = time.Hour
	defaultStallMax      = 2 * time.Minute
	defaultFaultRetry    = time.Second
	maxRequestMonths     = 12 // a usageDetails request spans at most 12 months
)

// Options configures a Server. The zero value (or nil) gives the documented defaults.
type Options struct {
	Seed          int64  // deterministic data; default 1
	RecordsPerDay int    // records per subscription per usage day (before reservation rows); default 20
	Token         string // bearer token required on every API request; default: random (see Server.Token)
	PageSize      int    // page size when no $top; default 1000, at most 1000
	TLS           bool   // serve https with a self-signed certificate for 127.0.0.1 and localhost
	// Addr is the listen address for Start; it must be a loopback address. Default 127.0.0.1:0.
	Addr string
	// Now is "today" for the data: no usage after Now's day. Default time.Now.
	Now func() time.Time
	// Clock is the wall clock for rate windows, report expiry and SAS checks. Default time.Now.
	Clock      func() time.Time
	FirstMonth period.Period // earliest month with data; default 13 months before Now's month

	// RatePerScope and RatePerTenant limit calls (usageDetails GETs and Cost Details POSTs) per
	// sliding RateWindow, per scope path (without billing period) and overall; 0 = unlimited.
	// An excess usageDetails call gets 429 with x-ms-ratelimit-microsoft.consumption-retry-after
	// (integer seconds, rounded up) and no Retry-After, as the API documents; a Cost Details POST
	// gets Retry-After. A wait under one second (scaled-down windows) adds retry-after-ms, the
	// header azcore reads first. Every ARM response carries
	// x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests when RatePerTenant is set.
	RatePerScope  int
	RatePerTenant int
	// RatePerKind limits calls per RateWindow per scope by the scope's kind, over RatePerScope
	// (ObservedRates holds the real service's). With a shortened RateWindow the same numbers
	// run faster: a window of 2 s is the real service 30 times faster.
	RatePerKind map[scope.Kind]int
	RateWindow  time.Duration // default 1 minute
	// ThrottleWithoutHeaders makes rate-limit 429s carry no retry header at all, only the
	// message "Please retry after N seconds." (seen in the field, Azure/azure-sdk-for-python#22823).
	ThrottleWithoutHeaders bool
	PageLatency            time.Duration // added before each usageDetails page's first byte

	// IgnoreDateFilter reproduces the field reports where the service ignores date ranges and
	// returns whole months: the billing period when one is given, else every month the
	// requested range touches — except CSP scopes (customers and their subscriptions), whose
	// date range returns the current period to date, another period altogether
	// (Azure/azure-sdk-for-python#41864).
	IgnoreDateFilter bool

	Faults *Faults // fault injection; nil = an empty rule set (still controllable over HTTP)
	// FaultRetryAfter is the retry hint of injected 429/503 faults; default 1s.
	FaultRetryAfter time.Duration
	// StallMax bounds a stalled-body fault; default 2 minutes.
	StallMax time.Duration

	// Cost Details.
	PollInterval    time.Duration // Retry-After of 202 responses; default 1s (the real service says 60)
	PollsBeforeDone int           // 202 polls before the 200; default 2 (negative: 0)
	RowsPerBlob     int           // CSV rows per blob; default 100000
	CompressCSV     bool          // gzip the CSV blobs (compressData true); default false as in the API
	ReportValidity  time.Duration // validTill = completion + ReportValidity; default 1 hour
	// CostDetailsSchemaEA and CostDetailsSchemaMCA are the CSV schema versions of EA and MCA
	// reports (CSVSchema* names; default the newest published: ea-2024-08-01 and
	// mca-2023-12-01-preview). A request may choose another with the CSVSchemaHeader header.
	CostDetailsSchemaEA  string
	CostDetailsSchemaMCA string

	Logf func(format string, args ...any) // optional request log (never logs tokens or SAS)
}

// Server is the sandbox. Create it with New; serve it with Start or through Handler.
type Server struct {
	o          Options
	w          *world
	firstMonth period.Period
	tokenKey   []byte // skiptoken HMAC key
	sasKey     []byte // blob SAS HMAC key
	faults     *Faults
	lim        *limiter
	stats      stats

	opsMu sync.Mutex
	ops   map[string]*operation

	cert  *tls.Certificate
	caPEM []byte

	mu      sync.Mutex
	srv     *http.Server
	ln      net.Listener
	url     string
	closed  chan struct{}
	closing sync.Once
	bgCtx   context.Context
	bgStop  context.CancelFunc
	bg      sync.WaitGroup
}

// New returns a Server for o (nil = defaults). It generates the TLS certificate when o.TLS is
// set; it does not listen (see Start).
func New(o *Options) (*Server, error) {
	var opt Options
	if o != nil {
		opt = *o
	}
	opt.setDefaults()
	if err := opt.validate(); err != nil {
		return nil, fmt.Errorf("sandbox options: %w", err)
	}
	s := &Server{
		o:      opt,
		w:      newWorld(opt.Seed, opt.RecordsPerDay),
		faults: opt.Faults,
		lim:    newLimiter(opt.RatePerScope, opt.RatePerKind, opt.RatePerTenant, opt.RateWindow),
		ops:    map[string]*operation{},
		closed: make(chan struct{}),
	}
	s.firstMonth = opt.FirstMonth
	if s.firstMonth.IsZero() {
		s.firstMonth = period.Of(opt.Now()).Add(-defaultFirstMonths)
	}
	if s.faults == nil {
		s.faults = NewFaults(opt.Seed)
	}
	k := sha256.Sum256([]byte("skiptoken\x00" + strconv.FormatInt(opt.Seed, 10)))
	s.tokenKey = k[:]
	s.sasKey = []byte(randomHex(32))
	s.bgCtx, s.bgStop = context.WithCancel(context.Background())
	s.stats.init()
	if opt.TLS {
		cert, caPEM, err := selfSignedCert()
		if err != nil {
			return nil, fmt.Errorf("sandbox tls: %w", err)
		}
		s.cert, s.caPEM = cert, caPEM
	}
	return s, nil
}

// setDefaults fills in the zero fields that have a default.
func (opt *Options) setDefaults() {
	if opt.Seed == 0 {
		opt.Seed = defaultSeed
	}
	if opt.RecordsPerDay == 0 {
		opt.RecordsPerDay = defaultRecordsPerDay
	}
	if opt.PageSize == 0 {
		opt.PageSize = maxPageSize
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Clock == nil {
		opt.Clock = time.Now
	}
	if opt.RateWindow <= 0 {
		opt.RateWindow = defaultRateWindow
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = defaultPollInterval
	}
	if opt.PollsBeforeDone == 0 {
		opt.PollsBeforeDone = defaultPollsBefore
	}
	opt.PollsBeforeDone = max(opt.PollsBeforeDone, 0)
	if opt.RowsPerBlob <= 0 {
		opt.RowsPerBlob = defaultRowsPerBlob
	}
	if opt.ReportValidity <= 0 {
		opt.ReportValidity = defaultValidity
	}
	if opt.StallMax <= 0 {
		opt.StallMax = defaultStallMax
	}
	if opt.CostDetailsSchemaEA == "" {
		opt.CostDetailsSchemaEA = CSVSchemaEA20240801
	}
	if opt.CostDetailsSchemaMCA == "" {
		opt.CostDetailsSchemaMCA = CSVSchemaMCA20231201
	}
	if opt.FaultRetryAfter <= 0 {
		opt.FaultRetryAfter = defaultFaultRetry
	}
	if opt.Token == "" {
		opt.Token = randomHex(24)
	}
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:0"
	}
}

// validate checks options with their defaults filled in.
func (opt *Options) validate() error {
	if opt.RecordsPerDay < 0 {
		return fmt.Errorf("RecordsPerDay %d < 0", opt.RecordsPerDay)
	}
	if opt.PageSize < 1 || opt.PageSize > maxPageSize {
		return fmt.Errorf("PageSize %d outside 1..%d", opt.PageSize, maxPageSize)
	}
	if cs := lookupCSVSchema(opt.CostDetailsSchemaEA); cs == nil || cs.modern {
		return fmt.Errorf("CostDetailsSchemaEA %q is not an EA schema (%s)", opt.CostDetailsSchemaEA, strings.Join(CSVSchemas(), ", "))
	}
	if cs := lookupCSVSchema(opt.CostDetailsSchemaMCA); cs == nil || !cs.modern {
		return fmt.Errorf("CostDetailsSchemaMCA %q is not an MCA schema (%s)", opt.CostDetailsSchemaMCA, strings.Join(CSVSchemas(), ", "))
	}
	if opt.RatePerScope < 0 || opt.RatePerTenant < 0 {
		return errors.New("negative rate")
	}
	for k, n := range opt.RatePerKind {
		if n < 0 {
			return fmt.Errorf("negative rate for %s", k)
		}
	}
	return checkLoopback(opt.Addr)
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("addr %q: not a loopback address", addr)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// Server timeouts: no write timeout, because pages and blobs may be large or deliberately slow.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	idleTimeout       = 2 * time.Minute
)

// Start listens on Options.Addr (127.0.0.1:0 by default) and serves in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("sandbox start: already started")
	}
	ln, err := net.Listen("tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("sandbox start: %w", err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		// No HTTP/2: faults hijack the connection, which HTTP/2 cannot.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	scheme := "http"
	if s.cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	s.srv, s.ln = srv, ln
	s.url = scheme + "://" + ln.Addr().String()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logf("sandbox serve: %v", err)
		}
	}()
	return nil
}

// URL returns the management endpoint, e.g. http://127.0.0.1:PORT ("" before Start).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Token returns the bearer token every API request must carry.
func (s *Server) Token() string { return s.o.Token }

// CAPEM returns the PEM of the self-signed certificate (its own CA), or nil without TLS.
func (s *Server) CAPEM() []byte { return s.caPEM }

// Handler returns the sandbox as an http.Handler (for httptest servers). nextLinks, Location
// headers and blob links use the request's Host and scheme.
func (s *Server) Handler() http.Handler { return s }

// Faults returns the server's fault rules (Options.Faults, or the one New created).
func (s *Server) Faults() *Faults { return s.faults }

// Scopes returns every scope of the synthetic world: EA billing accounts, departments,
// enrollment accounts, the management group, subscriptions, the MCA billing account, its billing
// profiles, invoice sections (with their profile) and customers.
func (s *Server) Scopes() []scope.Scope { return s.w.scopes() }

// Close stops the server, ends stalled responses and background report builds. It is safe to
// call more than once.
func (s *Server) Close() error {
	var err error
	s.closing.Do(func() {
		close(s.closed)
		s.bgStop()
		s.mu.Lock()
		srv := s.srv
		s.mu.Unlock()
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if e := srv.Shutdown(ctx); e != nil {
				err = fmt.Errorf("sandbox close: %w", e)
				_ = srv.Close()
			}
		}
		s.bg.Wait()
	})
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.o.Logf != nil {
		s.o.Logf(format, args...)
	}
}

// Stats is a snapshot of what the server has answered.
type Stats struct {
	Requests  int64            `json:"requests"`
	ByStatus  map[int]int64    `json:"byStatus"`
	Throttled int64            `json:"throttled"`         // 429s from the rate limits (not injected)
	ByScope   map[string]int64 `json:"byScope"`           // usageDetails and Cost Details calls per lower-case scope path
	Faults    map[Fault]int    `json:"faults"`            // injected faults by kind
	Pages     int64            `json:"pages"`             // usageDetails 200 pages
	Records   int64            `json:"records"`           // records in those pages
	Blobs     int64            `json:"blobs"`             // report blob downloads started
	Reports   int64            `json:"reports,omitempty"` // Cost Details operations accepted
}

type stats struct {
	mu        sync.Mutex
	requests  int64
	byStatus  map[int]int64
	byScope   map[string]int64
	throttled atomic.Int64
	pages     atomic.Int64
	records   atomic.Int64
	blobs     atomic.Int64
	reports   atomic.Int64
}

func (st *stats) init() {
	st.byStatus = map[int]int64{}
	st.byScope = map[string]int64{}
}

func (st *stats) request(status int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.requests++
	st.byStatus[status]++
}

func (st *stats) scope(key string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byScope[key]++
}

// Stats returns a snapshot of the request counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	st.mu.Lock()
	out := Stats{Requests: st.requests, ByStatus: map[int]int64{}, ByScope: map[string]int64{}}
	for k, v := range st.byStatus {
		out.ByStatus[k] = v
	}
	for k, v := range st.byScope {
		out.ByScope[k] = v
	}
	st.mu.Unlock()
	out.Throttled = st.throttled.Load()
	out.Pages = st.pages.Load()
	out.Records = st.records.Load()
	out.Blobs = st.blobs.Load()
	out.Reports = st.reports.Load()
	out.Faults = s.faults.Fired()
	return out
}

// recorder captures the status for stats and logs; it counts the response when the status is
// written, before the client can see it. Unwrap lets http.ResponseController reach the
// connection (Flush, Hijack).
type recorder struct {
	http.ResponseWriter
	st     *stats
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		r.st.request(code)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ServeHTTP routes a request: control endpoints, report blobs, then the ARM API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.o.Clock()
	rec := &recorder{ResponseWriter: w, st: &s.stats}
	h := w.Header()
	h.Set("x-ms-request-id", uuid.NewString())
	corr := r.Header.Get("x-ms-correlation-request-id")
	if corr == "" {
		corr = uuid.NewString()
	}
	h.Set("x-ms-correlation-request-id", corr)
	path := r.URL.Path
	switch {
	case path == "/sandbox/groundtruth":
		s.serveGroundTruth(rec, r)
	case path == "/sandbox/faults":
		s.serveFaults(rec, r)
	case path == "/sandbox/stats":
		writeJSON(rec, http.StatusOK, s.Stats())
	case strings.HasPrefix(path, blobPrefix):
		s.serveBlob(rec, r)
	default:
		s.serveARM(rec, r)
	}
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	// The path only: queries may hold SAS signatures.
	s.logf("sandbox %s %s %d %s", r.Method, path, rec.status, s.o.Clock().Sub(start).Round(time.Microsecond))
}

// ARM route suffixes (lower case).
const (
	usageSuffix    = "/providers/microsoft.consumption/usagedetails"
	generateSuffix = "/providers/microsoft.costmanagement/generatecostdetailsreport"
	opResultsInfix = "/providers/microsoft.costmanagement/costdetailsoperationresults/"
	periodInfix    = "/providers/microsoft.billing/billingperiods/"
)

func (s *Server) serveARM(w http.ResponseWriter, r *http.Request) {
	// Every ARM response reports the tenant budget when there is one; a counted call updates it.
	if a, ok := armAPI(r.URL.Path); ok {
		setRemaining(w.Header(), a, s.lim.tenantRemaining(s.o.Clock()), -1)
	}
	if !s.authenticate(w, r) {
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, usageSuffix):
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
			return
		}
		s.serveUsage(w, r, path[:len(path)-len(usageSuffix)])
	case strings.HasSuffix(lower, billingPeriodsSuffix):
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
			return
		}
		s.serveBillingPeriods(w, r, path[:len(path)-len(billingPeriodsSuffix)])
	case strings.HasSuffix(lower, generateSuffix):
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
			return
		}
		s.serveGenerate(w, r, path[:len(path)-len(generateSuffix)])
	case strings.Contains(lower, opResultsInfix):
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
			return
		}
		i := strings.Index(lower, opResultsInfix)
		s.servePoll(w, r, path[:i], path[i+len(opResultsInfix):])
	default:
		writeError(w, http.StatusNotFound, "NotFound", "No HTTP resource was found that matches the request URI '"+r.URL.Path+"'.")
	}
}

// armAPI tells which API an ARM path belongs to, for its remaining-quota headers.
func armAPI(p string) (api, bool) {
	l := strings.ToLower(p)
	switch {
	case strings.Contains(l, "/providers/microsoft.consumption/"):
		return apiConsumption, true
	case strings.Contains(l, "/providers/microsoft.costmanagement/"):
		return apiCostManagement, true
	}
	return 0, false
}

// authenticate checks the bearer token and answers 401 like ARM when it is missing or wrong.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	switch {
	case auth == "":
		unauthorized(w, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
			"The authentication failed because of missing 'Authorization' header.")
		return false
	case !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) != s.o.Token:
		unauthorized(w, "InvalidAuthenticationToken", "The access token is invalid.", "The access token is invalid.")
		return false
	}
	return true
}

func unauthorized(w http.ResponseWriter, code, msg, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="`+desc+`"`)
	writeError(w, http.StatusUnauthorized, code, msg)
}

// armError is the ARM error body.
type armError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e armError
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// setRetryHeaders writes a retry hint: integer seconds (rounded up, at least 1) in header name,
// and, when d is below one second, retry-after-ms as well, since a seconds header cannot say
// "200 ms" (azcore reads retry-after-ms first).
func setRetryHeaders(h http.Header, name string, d time.Duration) {
	secs := int(math.Ceil(d.Seconds()))
	if secs < 1 {
		secs = 1
	}
	h.Set(name, strconv.Itoa(secs))
	if d < time.Second {
		ms := int(math.Ceil(float64(d) / float64(time.Millisecond)))
		if ms < 1 {
			ms = 1
		}
		h.Set("retry-after-ms", strconv.Itoa(ms))
	}
}

// sleep waits d, or until the request ends or the server closes; it reports whether d passed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closed:
	}
	return false
}

// baseURL is scheme://host of the request, for links on the same host.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

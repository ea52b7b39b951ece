// Package consumption is a streaming client for the Azure Consumption usageDetails API, built on
// the azcore pipeline (retry, logging, telemetry), that hands each record's raw JSON to a
// handler one at a time.
//
// The client follows nextLink verbatim and only to the configured endpoint, maps the API's
// throttling headers onto Retry-After so azcore's single retry layer honours them, never
// follows redirects, and bounds every stalled read with an idle timeout. A Client is safe for
// concurrent use.
package consumption

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// DefaultEndpoint is the Azure Resource Manager endpoint of the public cloud.
const DefaultEndpoint = "https://management.azure.com"

// DefaultAPIVersion is the usageDetails api-version used when Options.APIVersion is empty.
const DefaultAPIVersion = "2024-08-01"

// APIVersions lists the api-versions this client supports, oldest first. 2018-06-30 is the
// per-scope operation family without a metric parameter or a kind discriminator.
var APIVersions = []string{"2018-06-30", "2019-10-01", "2021-10-01", "2023-05-01", "2023-11-01", "2024-08-01"}

// apiVersionNoMetric is the one version without the metric parameter and without MCA scopes.
const apiVersionNoMetric = "2018-06-30"

// Retry defaults tuned for usageDetails: the API asks for 60 s waits when throttling, so the
// largest accepted hint must exceed that, and a list of pages is worth several patient retries.
const (
	defaultMaxRetries    = 6                 // tries after the first
	defaultRetryDelay    = 4 * time.Second   // base of the exponential backoff without a hint
	defaultMaxRetryDelay = 120 * time.Second // largest backoff and largest Retry-After hint honoured
)

// defaultRetryStatusCodes are the statuses azcore retries: timeouts, throttling and transient
// server errors. 4xx other than 408/429 are permanent.
var defaultRetryStatusCodes = []int{
	http.StatusRequestTimeout,      // 408
	http.StatusTooManyRequests,     // 429
	http.StatusInternalServerError, // 500
	http.StatusBadGateway,          // 502
	http.StatusServiceUnavailable,  // 503
	http.StatusGatewayTimeout,      // 504
}

// DefaultBodyIdleTimeout bounds how long one read may wait for data: for response headers, and
// for each read of the body. The API must answer within about 30 s, so two minutes of silence
// means a stalled connection.
const DefaultBodyIdleTimeout = 2 * time.Minute

// maxUserAgent is azcore's limit for the application id it puts in front of the User-Agent.
const maxUserAgent = 24

// moduleName and moduleVersion identify this client in the telemetry User-Agent.
const (
	moduleName    = "usage-export/consumption"
	moduleVersion = "v0.1.0"
)

// logQueryParams are the query parameters azcore's logging policy may show; all others (the
// continuation and session tokens of nextLinks among them) are logged as REDACTED.
var logQueryParams = []string{paramAPIVersion, paramExpand, paramFilter, paramTop, paramMetric, paramStartDate, paramEndDate, "skiptokenver"}

// logHeaders are response headers worth seeing in azcore's logs: throttling hints and budgets.
var logHeaders = []string{
	HeaderConsumptionRetryAfter,
	"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
	"x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests",
	"x-ms-ratelimit-remaining-tenant-reads",
	"x-ms-ratelimit-remaining-subscription-reads",
}

// Options configures a Client. The zero value (or a nil *Options) means the documented defaults.
type Options struct {
	// Endpoint is the ARM endpoint, scheme and host only (default DefaultEndpoint). Sovereign
	// clouds use their own (https://management.usgovcloudapi.net,
	// https://management.chinacloudapi.cn). Plain http is accepted only on a loopback address
	// (127.0.0.0/8, ::1, localhost), for a local sandbox.
	Endpoint string

	// APIVersion is the usageDetails api-version (default DefaultAPIVersion); one of APIVersions.
	APIVersion string

	// ClientOptions configures the azcore pipeline: Transport, Retry, Logging, Telemetry,
	// PerCallPolicies and PerRetryPolicies (a rate budget plugs in here). Zero Retry fields get
	// this package's defaults: MaxRetries 6, RetryDelay 4 s, MaxRetryDelay 120 s, StatusCodes
	// 408/429/500/502/503/504. APIVersion and Cloud are not used (see APIVersion and Endpoint).
	// An *http.Client Transport is copied with redirects disabled; any other Transporter must
	// not follow redirects itself.
	ClientOptions policy.ClientOptions

	// UserAgent is put in front of the azcore User-Agent (at most 24 characters). It is ignored
	// when ClientOptions.Telemetry.ApplicationID is set.
	UserAgent string

	// BodyIdleTimeout bounds each wait for data from the server: response headers and every read
	// of the body (default DefaultBodyIdleTimeout). Time spent in the Handler does not count.
	BodyIdleTimeout time.Duration
}

// Client lists usage details. Create it with NewClient; it is safe for concurrent use.
type Client struct {
	pipeline   runtime.Pipeline
	origin     origin // scheme and host of the endpoint; the only place tokens and requests go
	endpoint   string // scheme://host, no trailing slash
	apiVersion string
}

// origin is the scheme and host:port a URL is sent to, normalised for comparison.
type origin struct {
	scheme string // lower case
	host   string // lower case, with the port, default port removed
}

func (o origin) String() string { return o.scheme + "://" + o.host }

// NewClient returns a Client that authenticates with cred (for example an azidentity
// credential, StaticToken or TokenFile). The token scope is the endpoint followed by
// "/.default". It returns an error naming every invalid option.
func NewClient(cred azcore.TokenCredential, o *Options) (*Client, error) {
	if o == nil {
		o = &Options{}
	}
	var problems []error
	if cred == nil {
		problems = append(problems, errors.New("credential is nil"))
	}
	endpoint, org, err := parseEndpoint(o.Endpoint)
	if err != nil {
		problems = append(problems, err)
	}
	version := o.APIVersion
	if version == "" {
		version = DefaultAPIVersion
	}
	if !slices.Contains(APIVersions, version) {
		problems = append(problems, fmt.Errorf("api version %q is not supported; use one of %s",
			version, strings.Join(APIVersions, ", ")))
	}
	if o.ClientOptions.APIVersion != "" {
		problems = append(problems, errors.New("ClientOptions.APIVersion is not used; set Options.APIVersion"))
	}
	if len(o.UserAgent) > maxUserAgent || strings.ContainsFunc(o.UserAgent, func(r rune) bool { return r < ' ' || r > '~' }) {
		problems = append(problems, fmt.Errorf("user agent %q: want at most %d printable ASCII characters", o.UserAgent, maxUserAgent))
	}
	idle := o.BodyIdleTimeout
	if idle < 0 {
		problems = append(problems, fmt.Errorf("body idle timeout %s is negative", idle))
	}
	if idle == 0 {
		idle = DefaultBodyIdleTimeout
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("consumption client: %w", errors.Join(problems...))
	}

	co := o.ClientOptions // a copy: the caller's slices are cloned before appending below
	co.Retry = retryDefaults(co.Retry)
	if co.Telemetry.ApplicationID == "" {
		co.Telemetry.ApplicationID = o.UserAgent
	}
	co.Transport = noRedirects(co.Transport)
	co.PerCallPolicies = slices.Clone(co.PerCallPolicies)
	// Order matters. The pipeline runs per-call, retry, then the per-retry policies in order:
	// RetryAfterPolicy first so it rewrites the hint last, just before the retry policy reads it;
	// the caller's policies (a rate budget); then the host guard and the bearer token, so the
	// token is attached at the last moment and only after the host check; the idle timeout last,
	// so time waiting in the caller's policies is not counted as a stall.
	perRetry := []policy.Policy{RetryAfterPolicy{}}
	perRetry = append(perRetry, o.ClientOptions.PerRetryPolicies...)
	perRetry = append(perRetry,
		hostGuardPolicy{allowed: org},
		runtime.NewBearerTokenPolicy(cred, []string{tokenScope(endpoint)}, &policy.BearerTokenOptions{
			InsecureAllowCredentialWithHTTP: org.scheme == "http", // loopback only, see parseEndpoint
		}),
		idleTimeoutPolicy{timeout: idle},
	)
	co.PerRetryPolicies = perRetry
	co.APIVersion = ""

	return &Client{
		pipeline: runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{
			AllowedHeaders:         logHeaders,
			AllowedQueryParameters: logQueryParams,
		}, &co),
		origin:     org,
		endpoint:   endpoint,
		apiVersion: version,
	}, nil
}

// APIVersion returns the api-version the client sends.
func (c *Client) APIVersion() string { return c.apiVersion }

// Endpoint returns the normalised endpoint (scheme://host[:port]).
func (c *Client) Endpoint() string { return c.endpoint }

// retryDefaults fills the zero fields of r with this package's defaults.
func retryDefaults(r policy.RetryOptions) policy.RetryOptions {
	if r.MaxRetries == 0 {
		r.MaxRetries = defaultMaxRetries
	}
	if r.RetryDelay == 0 {
		r.RetryDelay = defaultRetryDelay
	}
	if r.MaxRetryDelay == 0 {
		r.MaxRetryDelay = defaultMaxRetryDelay
	}
	if r.StatusCodes == nil {
		r.StatusCodes = slices.Clone(defaultRetryStatusCodes)
	}
	return r
}

// Timeouts of the default transport: connection setup, TLS handshake and pooled idle connections.
const (
	dialTimeout         = 30 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
)

// refuseRedirect makes an http.Client return the 3xx response itself instead of following it.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// noRedirects returns the transport to use: a default client that never follows redirects when
// t is nil, a copy of t with redirects disabled when t is an *http.Client, or t itself.
func noRedirects(t policy.Transporter) policy.Transporter {
	switch c := t.(type) {
	case nil:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = tlsHandshakeTimeout
		tr.IdleConnTimeout = idleConnTimeout
		tr.ForceAttemptHTTP2 = true
		return &http.Client{Transport: tr, CheckRedirect: refuseRedirect}
	case *http.Client:
		cp := *c
		cp.CheckRedirect = refuseRedirect
		return &cp
	default:
		return t
	}
}

// tokenScope is the OAuth scope for an ARM endpoint: the endpoint followed by "/.default"
// (https://management.azure.com/.default, and likewise for sovereign clouds and a sandbox).
func tokenScope(endpoint string) string { return endpoint + "/.default" }

// parseEndpoint validates an endpoint and returns it normalised (scheme://host[:port], lower
// case, no trailing slash) with its origin.
func parseEndpoint(s string) (string, origin, error) {
	if s == "" {
		s = DefaultEndpoint
	}
	fail := func(why string) (string, origin, error) {
		return "", origin{}, fmt.Errorf("endpoint %q: %s (want https://host[:port], or http://127.0.0.1:port for a local sandbox)", s, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fail("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fail("scheme must be https")
	case u.Opaque != "" || u.Host == "":
		return fail("no host")
	case u.User != nil:
		return fail("must not contain user information")
	case u.Path != "" && u.Path != "/":
		return fail("must not contain a path")
	case u.RawQuery != "" || u.ForceQuery:
		return fail("must not contain a query")
	case u.Fragment != "":
		return fail("must not contain a fragment")
	case u.Hostname() == "":
		return fail("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fail("invalid port")
		}
	}
	org := originOf(u)
	if org.scheme == "http" && !isLoopback(u.Hostname()) {
		return fail("plain http is allowed only on a loopback address")
	}
	return org.String(), org, nil
}

// originOf returns the normalised origin of u.
func originOf(u *url.URL) origin {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return origin{scheme: scheme, host: host}
}

// isLoopback reports whether host is localhost or a loopback IP literal (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

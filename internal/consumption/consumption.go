// Package consumption is a streaming client for the Azure Consumption usageDetails API that hands
// each record's raw JSON to a handler one at a time.
package consumption

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/retryhint"
)

// DefaultAPIVersion is the usageDetails api-version used when Options.APIVersion is empty.
const DefaultAPIVersion = "2024-08-01"

// APIVersions lists the api-versions this client supports, oldest first. 2018-06-30 is the
// per-scope operation family without a metric parameter or a kind discriminator.
var APIVersions = []string{"2018-06-30", "2019-10-01", "2021-10-01", "2023-05-01", "2023-11-01", "2024-08-01"}

// apiVersionNoMetric is the one version without the metric parameter and without MCA scopes.
const apiVersionNoMetric = "2018-06-30"

// MaxPageBytes bounds the body of one page, which the client reads whole before handing on any
// of its records: the API answers with at most 8 MB (Azure/azure-cli#14079), so four times that
// is room to spare while bounding memory (a page per chunk in flight).
const MaxPageBytes = 32 << 20

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
	retryhint.HeaderConsumptionRetryAfter,
	"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
	"x-ms-ratelimit-remaining-microsoft.consumption-tenant-requests",
	"x-ms-ratelimit-remaining-tenant-reads",
	"x-ms-ratelimit-remaining-subscription-reads",
}

// Options configures a Client. The zero value (or a nil *Options) means the documented defaults.
type Options struct {
	// Endpoint is the ARM endpoint, scheme and host only (default mgmt.DefaultEndpoint). Sovereign
	// clouds use their own (https://management.usgovcloudapi.net,
	// https://management.chinacloudapi.cn). Plain http is accepted only on a loopback address
	// (127.0.0.0/8, ::1, localhost), for a local sandbox.
	Endpoint string

	// APIVersion is the usageDetails api-version (default DefaultAPIVersion); one of APIVersions.
	APIVersion string

	// ClientOptions configures the azcore pipeline: Transport, Retry, Logging, Telemetry,
	// PerCallPolicies and PerRetryPolicies (a rate budget plugs in here). Zero Retry fields get
	// the shared defaults: MaxRetries 6, RetryDelay 4 s, MaxRetryDelay 120 s, StatusCodes
	// 408/429/500/502/503/504. APIVersion and Cloud are not used (see APIVersion and Endpoint).
	// An *http.Client Transport is copied with redirects disabled; any other Transporter must
	// not follow redirects itself.
	ClientOptions policy.ClientOptions

	// UserAgent is put in front of the azcore User-Agent (at most 24 characters). It is ignored
	// when ClientOptions.Telemetry.ApplicationID is set.
	UserAgent string

	// BodyIdleTimeout bounds each wait for data from the server: response headers and every read
	// of the body (default mgmt.DefaultBodyIdleTimeout). Time spent in the Handler does not count.
	BodyIdleTimeout time.Duration
}

// Client lists usage details. Create it with NewClient; it is safe for concurrent use.
type Client struct {
	pipeline   runtime.Pipeline
	origin     mgmt.Origin // scheme and host of the endpoint; the only place tokens and requests go
	endpoint   string      // scheme://host, no trailing slash
	apiVersion string
}

// NewClient returns a Client that authenticates with cred (for example an azidentity
// credential, mgmt.StaticToken or mgmt.TokenFile). The token scope is the endpoint followed by
// "/.default". It returns an error naming every invalid option.
func NewClient(cred azcore.TokenCredential, o *Options) (*Client, error) {
	if o == nil {
		o = &Options{}
	}
	var problems []error
	if cred == nil {
		problems = append(problems, errors.New("credential is nil"))
	}
	org, err := mgmt.ParseEndpoint(o.Endpoint)
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
		idle = mgmt.DefaultBodyIdleTimeout
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("consumption client: %w", errors.Join(problems...))
	}

	co := o.ClientOptions // a copy: the caller's slices are cloned before appending below
	co.Retry = mgmt.RetryDefaults(co.Retry)
	if co.Telemetry.ApplicationID == "" {
		co.Telemetry.ApplicationID = o.UserAgent
	}
	co.Transport = mgmt.GuardTransport(mgmt.NoRedirects(co.Transport), idle, MaxPageBytes)
	co.PerCallPolicies = slices.Clone(co.PerCallPolicies)
	// Order matters. The pipeline runs per-call, retry, then the per-retry policies in order:
	// the retry hint policy first so it rewrites the hint last, just before the retry policy
	// reads it (and waits out a hint longer than MaxRetryDelay);
	// the caller's policies (a rate budget), so every try of a page, a retry of a broken body
	// included, spends the budget; then mgmt.GuardPolicies: the host guard and the bearer token,
	// so the token is attached at the last moment and only after the host check; then
	// pagePolicy, which checks the page azcore read whole below it. The idle watchdog and the
	// page size limit wrap the transport, under azcore's body download, so that time waiting
	// in the caller's policies is not counted as a stall.
	perRetry := []policy.Policy{retryhint.NewPolicy(co.Retry)}
	perRetry = append(perRetry, o.ClientOptions.PerRetryPolicies...)
	perRetry = append(perRetry, mgmt.GuardPolicies(cred, org)...)
	perRetry = append(perRetry, pagePolicy{})
	co.PerRetryPolicies = perRetry
	co.APIVersion = ""

	return &Client{
		pipeline: runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{
			AllowedHeaders:         logHeaders,
			AllowedQueryParameters: logQueryParams,
		}, &co),
		origin:     org,
		endpoint:   org.String(),
		apiVersion: version,
	}, nil
}

// APIVersion returns the api-version the client sends.
func (c *Client) APIVersion() string { return c.apiVersion }

// Endpoint returns the normalised endpoint (scheme://host[:port]).
func (c *Client) Endpoint() string { return c.endpoint }

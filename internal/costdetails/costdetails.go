// Package costdetails is a client for the Azure Cost Details API that turns a scope's monthly
// report into one JSON object per CSV row.
package costdetails

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/retryhint"
)

// APIVersion is the Cost Details api-version this client speaks.
const APIVersion = "2022-05-01"

// Polling defaults.
const (
	// DefaultPollInterval is the wait between two polls when the API gives no Retry-After and
	// Options.PollInterval is zero. A Retry-After (60 s in the published examples) wins.
	DefaultPollInterval = 10 * time.Second
	// DefaultMaxPolls bounds the polls of one report: 30 polls at the documented 60 s
	// Retry-After are the 30 minutes of the Functions host's functionTimeout.
	DefaultMaxPolls = 30
	// maxPollWait caps a Retry-After so a nonsense hint cannot park a run; polling early only
	// costs another 202.
	maxPollWait = 10 * time.Minute
)

// maxResumes is how many times one blob download is resumed (with a Range request from the
// byte where it broke off) before the blob fails.
const maxResumes = 3

// moduleName and moduleVersion identify this client in the telemetry User-Agent.
const (
	moduleName    = "usage-export/costdetails"
	moduleVersion = "v0.1.0"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalidRequest is wrapped by every error found before any call: an unsupported scope
	// (management group), metric (usage) or period (older than the API serves, longer than one
	// month).
	ErrInvalidRequest = errors.New("invalid cost details request")
	// ErrReportFailed means the report operation ended with status Failed.
	ErrReportFailed = errors.New("cost details report failed")
	// ErrReportExpired means the report's blob links expired (validTill) before a blob was
	// downloaded.
	ErrReportExpired = errors.New("report expired before download; will be regenerated next run")
	// ErrPollLimit means the report was not ready after Options.MaxPolls polls.
	ErrPollLimit = errors.New("cost details report not ready")
)

// Options configures a Client. The zero value (or a nil *Options) means the documented defaults.
type Options struct {
	// Endpoint is the ARM endpoint, scheme and host only (default mgmt.DefaultEndpoint). Plain http is
	// accepted only on a loopback address, for a local sandbox.
	Endpoint string

	// ClientOptions configures the management pipeline: Transport, Retry, Logging, Telemetry,
	// PerCallPolicies and PerRetryPolicies (a rate budget plugs in here). Zero Retry fields get
	// the shared defaults of mgmt.RetryDefaults (6 retries, 4 s, 120 s, 408/429/500/502/503/504).
	// The blob downloads use the same Transport, Retry, Logging and Telemetry but none of the
	// caller's policies and no credential. An *http.Client Transport is copied with redirects
	// disabled; any other Transporter must not follow redirects itself. APIVersion and Cloud
	// are not used.
	ClientOptions policy.ClientOptions

	// PollInterval is the wait between two polls of a report when the API gives no Retry-After
	// (default DefaultPollInterval); a Retry-After is honoured as given (at most 10 minutes).
	PollInterval time.Duration

	// MaxPolls bounds the polls of one report (default DefaultMaxPolls).
	MaxPolls int

	// BodyIdleTimeout bounds each wait for data from a server (default mgmt.DefaultBodyIdleTimeout).
	BodyIdleTimeout time.Duration

	// Now returns the current time (default time.Now); it decides which periods the API still
	// serves and whether a report's links have expired.
	Now func() time.Time
}

// Client generates and downloads Cost Details reports. Create it with NewClient; it is safe for
// concurrent use.
type Client struct {
	pipeline     runtime.Pipeline // management endpoint: bearer token, host guard, rate budget
	blobs        runtime.Pipeline // SAS blob links: no credential
	origin       mgmt.Origin
	endpoint     string
	pollInterval time.Duration
	maxPolls     int
	now          func() time.Time
	// sleep waits between polls; tests replace it to observe the waits without waiting.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewClient returns a Client that authenticates to the management endpoint with cred. The
// token scope is the endpoint followed by "/.default"; the token is sent to the endpoint only,
// never to the blob host. It returns an error naming every invalid option.
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
	if o.ClientOptions.APIVersion != "" {
		problems = append(problems, fmt.Errorf("ClientOptions.APIVersion is not used; the client speaks %s", APIVersion))
	}
	if o.PollInterval < 0 {
		problems = append(problems, fmt.Errorf("poll interval %s is negative", o.PollInterval))
	}
	if o.MaxPolls < 0 {
		problems = append(problems, fmt.Errorf("max polls %d is negative", o.MaxPolls))
	}
	if o.BodyIdleTimeout < 0 {
		problems = append(problems, fmt.Errorf("body idle timeout %s is negative", o.BodyIdleTimeout))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("cost details client: %w", errors.Join(problems...))
	}
	idle := cmp.Or(o.BodyIdleTimeout, mgmt.DefaultBodyIdleTimeout)

	transport := mgmt.NoRedirects(o.ClientOptions.Transport)
	retry := mgmt.RetryDefaults(o.ClientOptions.Retry)

	co := o.ClientOptions
	co.APIVersion = ""
	co.Transport = transport
	co.Retry = retry
	co.PerCallPolicies = slices.Clone(co.PerCallPolicies)
	// The same order as internal/consumption: the retry hint policy first so it rewrites the hint
	// last, just before the retry policy reads it; the caller's policies (a rate budget); then
	// mgmt.TokenPolicies: the host guard, then the token, so the token is attached only after the
	// host check, and the idle watchdog last, so waiting in the caller's policies is not counted
	// as a stall.
	perRetry := []policy.Policy{retryhint.NewPolicy(retry)}
	perRetry = append(perRetry, o.ClientOptions.PerRetryPolicies...)
	perRetry = append(perRetry, mgmt.TokenPolicies(cred, org, idle)...)
	co.PerRetryPolicies = perRetry

	// The blob pipeline: no credential, none of the caller's policies (they budget ARM calls),
	// and no query parameter allowed into azcore's logs, so a SAS signature is always redacted.
	bo := policy.ClientOptions{
		Transport:        transport,
		Retry:            retry,
		Telemetry:        o.ClientOptions.Telemetry,
		Logging:          policy.LogOptions{AllowedHeaders: o.ClientOptions.Logging.AllowedHeaders},
		PerRetryPolicies: []policy.Policy{mgmt.NewIdleTimeoutPolicy(idle)},
	}

	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		pipeline:     runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{}, &co),
		blobs:        runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{}, &bo),
		origin:       org,
		endpoint:     org.String(),
		pollInterval: cmp.Or(o.PollInterval, DefaultPollInterval),
		maxPolls:     cmp.Or(o.MaxPolls, DefaultMaxPolls),
		now:          now,
		sleep:        sleep,
	}, nil
}

// APIVersion returns the api-version the client sends, "2022-05-01".
func (c *Client) APIVersion() string { return APIVersion }

// Endpoint returns the normalised endpoint (scheme://host[:port]).
func (c *Client) Endpoint() string { return c.endpoint }

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

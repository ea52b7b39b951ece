package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/costdetails"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/focus"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/sharedbudget"
	"github.com/usage-export/usage-export/internal/source"
	"github.com/usage-export/usage-export/internal/store"
)

// app is everything a run needs, built once from the settings.
type app struct {
	cfg    *config.Config
	store  export.Store
	usage  *export.UsageDetails
	cost   *export.CostDetails
	budget *ratelimit.Budget
	// shared is the budget shared by every instance (serve only; nil for the CLI).
	shared *sharedbudget.Budget
	// forceSource, when set, overrides the per-scope source choice (CLI --source).
	forceSource manifest.Source
}

// newApp builds the credential, clients and store from cfg. Managed identity comes first: on
// Azure (IDENTITY_ENDPOINT set) the user-assigned identity named by AZURE_CLIENT_ID is used
// directly; elsewhere DefaultAzureCredential (environment, workload identity, managed identity,
// Azure CLI…). A static bearer token (USAGE_EXPORT_TOKEN / _TOKEN_FILE) is used for the billing
// API only, never for storage.
func newApp(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*app, error) {
	return buildApp(ctx, cfg, log, false)
}

// buildApp is newApp; with shared, the billing clients also take every call from the
// per-scope and per-tenant budgets that all instances share through the output store
// (internal/sharedbudget), as the Functions app does when it runs on several instances.
func buildApp(ctx context.Context, cfg *config.Config, log zerolog.Logger, shared bool) (*app, error) {
	bridgeAzureLog(log)
	azureCred, credErr := azureCredential(cfg)
	var billingCred azcore.TokenCredential
	switch {
	case cfg.Token != "":
		billingCred = mgmt.StaticToken(cfg.Token)
	case cfg.TokenFile != "":
		billingCred = mgmt.TokenFile(cfg.TokenFile)
	case credErr != nil:
		return nil, fmt.Errorf("credential: %w", credErr)
	default:
		billingCred = azureCred
	}
	transport, err := httpTransport(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, azureCred, credErr)
	if err != nil {
		return nil, err
	}
	rates := ratelimit.Options{
		PerScope: cfg.RatePerScope, PerKind: cfg.RatePerKind, PerTenant: cfg.RatePerTenant, Window: cfg.RateWindow,
	}
	budget := ratelimit.New(&rates)
	// A one-shot run (the CLI) stops its other calls after a failure that holds for the whole
	// endpoint (refused, unknown host, untrusted certificate, 401): they could only fail the same
	// way, after waiting for the budget. The Functions app keeps calling: the endpoint or the
	// credential may be fixed while it runs.
	diag := mgmt.NewDiagnoser(&mgmt.DiagnoseOptions{StopAfterPermanent: !shared})
	perRetry := []policy.Policy{diag.Guard(), budget.Policy()}
	var sb *sharedbudget.Budget
	if shared {
		// After the process's own spacing, right before the request leaves.
		sb = sharedbudget.New(st, &sharedbudget.Options{Rates: rates,
			Prefix: strings.TrimPrefix(strings.Trim(cfg.Prefix, "/")+"/_control/budget", "/")})
		perRetry = append(perRetry, sb.Policy())
	}
	copts := policy.ClientOptions{
		Transport:        transport,
		PerRetryPolicies: append(perRetry, diag.Policy()),
		Logging:          policy.LogOptions{IncludeBody: false},
		Telemetry:        policy.TelemetryOptions{ApplicationID: "usage-export"},
	}
	client, err := consumption.NewClient(billingCred, &consumption.Options{
		Endpoint: cfg.ManagementEndpoint, APIVersion: cfg.APIVersion, ClientOptions: copts,
	})
	if err != nil {
		return nil, fmt.Errorf("usage details client: %w", err)
	}
	cost, err := costdetails.NewClient(billingCred, &costdetails.Options{
		Endpoint: cfg.ManagementEndpoint, ClientOptions: copts,
	})
	if err != nil {
		return nil, fmt.Errorf("cost details client: %w", err)
	}
	return &app{
		cfg: cfg, store: st, budget: budget, shared: sb, cost: &export.CostDetails{Client: cost},
		usage: &export.UsageDetails{Client: client, Version: cfg.APIVersion, Expand: cfg.Expand},
	}, nil
}

func azureCredential(cfg *config.Config) (azcore.TokenCredential, error) {
	if os.Getenv("IDENTITY_ENDPOINT") != "" || os.Getenv("MSI_ENDPOINT") != "" {
		o := &azidentity.ManagedIdentityCredentialOptions{}
		if cfg.ClientID != "" {
			o.ID = azidentity.ClientID(cfg.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(o)
	}
	return azidentity.NewDefaultAzureCredential(nil)
}

// httpTransport returns the HTTP client for the billing APIs: no redirects (the client refuses
// them anyway), and the sandbox's CA when one is given.
func httpTransport(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.ReadBufferSize = mgmt.ReadBufferSize
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, nil
}

// Upload buffers per part in flight: blobBlockSize × blobConcurrency. Parts are one usage day of
// gzip lines (a few MB even for large enrollments), so small blocks cost a few more requests and
// keep memory flat however large a part grows (measured in docs/performance.md).
const (
	blobBlockSize   = 512 << 10
	blobConcurrency = 2
)

// openReadStore opens the configured output for reading only: a missing directory or container
// is an error, never created.
func openReadStore(ctx context.Context, cfg *config.Config) (export.Store, error) {
	if cfg.OutputDir != "" {
		if fi, err := os.Stat(cfg.OutputDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("output directory %s does not exist or is not a directory: %w", cfg.OutputDir, store.ErrNotFound)
		}
	}
	cred, credErr := azureCredential(cfg)
	return openStoreOpts(ctx, cfg, cred, credErr, true)
}

func openStore(ctx context.Context, cfg *config.Config, cred azcore.TokenCredential, credErr error) (export.Store, error) {
	return openStoreOpts(ctx, cfg, cred, credErr, false)
}

func openStoreOpts(ctx context.Context, cfg *config.Config, cred azcore.TokenCredential, credErr error, noCreate bool) (export.Store, error) {
	switch {
	case cfg.OutputDir != "":
		st, err := store.NewLocal(cfg.OutputDir)
		if err != nil {
			return nil, fmt.Errorf("output directory: %w", err)
		}
		return st, nil
	case cfg.StorageConnection != "":
		st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: cfg.StorageConnection, Container: cfg.Container, NoCreate: noCreate,
			BlockSize: blobBlockSize, Concurrency: blobConcurrency})
		if err != nil {
			return nil, fmt.Errorf("blob storage: %w", err)
		}
		return st, nil
	case cfg.StorageAccountURL != "":
		if credErr != nil {
			return nil, fmt.Errorf("storage credential: %w", credErr)
		}
		st, err := store.NewBlob(ctx, &store.BlobOptions{AccountURL: cfg.StorageAccountURL, Credential: cred, Container: cfg.Container, NoCreate: noCreate,
			BlockSize: blobBlockSize, Concurrency: blobConcurrency})
		if err != nil {
			return nil, fmt.Errorf("blob storage: %w", err)
		}
		return st, nil
	}
	return nil, errors.New("no output configured")
}

// sourceSetting is the source setting of a scope: the run's override (CLI --source, the HTTP
// request's "source"), else costDetails for a scope listed in USAGE_EXPORT_COSTDETAILS_SCOPES,
// else USAGE_EXPORT_SOURCE (default auto).
func sourceSetting(cfg *config.Config, forced manifest.Source, sc scope.Scope) manifest.Source {
	switch {
	case forced != "":
		return forced
	case cfg.UsesCostDetails(sc):
		return source.CostDetails
	}
	return cmp.Or(cfg.Source, source.Auto)
}

// decideSource is the one source decision of a run: the export's Pick hook and handler plan
// both ask it (internal/source.Choose for the auto setting).
func decideSource(cfg *config.Config, forced manifest.Source, p export.Partition, live *manifest.Manifest, now time.Time) source.Decision {
	d := source.Choose(source.Input{
		Setting: sourceSetting(cfg, forced, p.Scope), Scope: p.Scope, Period: p.Period, Metric: p.Metric, Now: now,
		Previous: live, Rate: planBudget(cfg).PerScope(p.Scope), // the rate budget's per-kind rule
	})
	switch {
	case forced != "" && forced != source.Auto:
		d.Reason = "forced by the request (--source or the request's source)"
	case forced == "" && cfg.UsesCostDetails(p.Scope):
		d.Reason = config.EnvCostDetailsScopes + " lists the scope"
	}
	return d
}

// pick is the export's Pick hook.
func (a *app) pick(p export.Partition, live *manifest.Manifest) (export.Source, string, error) {
	d := decideSource(a.cfg, a.forceSource, p, live, time.Now())
	switch {
	case d.Source == source.CostDetails && d.InvoiceID != "":
		return a.cost.ForInvoice(d.InvoiceID), d.Reason, nil
	case d.Source == source.CostDetails:
		return a.cost, d.Reason, nil
	}
	return a.usage, d.Reason, nil
}

// exporter returns an exporter for one run.
func (a *app) exporter(executionType manifest.ExecutionType, progress func(export.Progress), noDropGuard bool) *export.Exporter {
	partDays := a.cfg.PartDays
	o := &export.Options{
		Pick:   a.pick,
		Prefix: a.cfg.Prefix, NoGzip: !a.cfg.Gzip, PartDays: partDays, Concurrency: a.cfg.Concurrency,
		RestatementDays: a.cfg.RestatementDays, DropGuard: a.cfg.DropGuard, NoDropGuard: noDropGuard,
		RowKey: a.cfg.RowKey, ExecutionType: executionType, Progress: progress,
		LeaseTTL: time.Duration(a.cfg.LeaseSeconds) * time.Second,
		// Listings are sized from the scope's rate budget (export.Options.CallsPerMinute).
		CallsPerMinute: func(sc scope.Scope) float64 {
			o := ratelimit.Options{PerScope: a.cfg.RatePerScope, PerKind: a.cfg.RatePerKind}
			return float64(o.Rate(sc.Kind)) * float64(time.Minute) / float64(a.cfg.RateWindow)
		},
	}
	if a.cfg.Focus {
		o.AfterRun = focus.New(a.store, &focus.Options{Prefix: a.cfg.Prefix, NoGzip: !a.cfg.Gzip,
			LeaseTTL: o.LeaseTTL, ExecutionType: executionType}).AfterRun
	}
	return export.New(a.store, nil, o)
}

// bridgeAzureLog routes azcore's log events into zerolog at debug level. azcore logs request
// lines without Authorization headers or bodies; the URLs of a nextLink carry session and skip
// tokens, which the logger's redact.Writer removes like every other secret.
func bridgeAzureLog(log zerolog.Logger) {
	if log.GetLevel() > zerolog.DebugLevel {
		return
	}
	azlog.SetEvents(azlog.EventRequest, azlog.EventResponse, azlog.EventRetryPolicy)
	azlog.SetListener(func(ev azlog.Event, msg string) {
		log.Debug().Str("azure_event", string(ev)).Msg(msg)
	})
}

// durationSince is for summaries.
func durationSince(t time.Time) float64 { return time.Since(t).Seconds() }

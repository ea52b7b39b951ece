package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
)

// cmdSandbox runs the API sandbox until interrupted and prints how to point the exporter at it.
func cmdSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	usageFunc(fs, "sandbox [flags]\n\nRun the API sandbox on loopback until Ctrl-C and print its endpoint, token and scopes.")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback only)")
	seed := fs.Int64("seed", 1, "seed of the synthetic enrollments")
	perDay := fs.Int("records-per-day", 20, "records per subscription per usage day")
	useTLS := fs.Bool("tls", false, "serve https with a self-signed certificate")
	caOut := fs.String("ca-out", "", "with --tls: write the certificate (PEM) here for --ca-file")
	token := fs.String("token", "", "bearer token to require (default: random)")
	ratePerScope := fs.Int("rate-per-scope", 0, "calls per window per scope before 429 (0 = unlimited)")
	ratePerTenant := fs.Int("rate-per-tenant", 0, "calls per window overall before 429 (0 = unlimited)")
	rateLimits := fs.String("rate-limits", "", `per-scope-kind limits per window: "observed" for the real service's (subscription 10, billing account/profile/customer 6, department/enrollment account/management group 2), or kind=n,… (over -rate-per-scope)`)
	window := fs.Duration("rate-window", time.Minute, "the rate window (shorten it to run the real limits faster: 2s is 30 times faster)")
	noHeaders := fs.Bool("throttle-without-headers", false, `rate-limit 429s carry no retry header, only "Please retry after N seconds."`)
	latency := fs.Duration("page-latency", 0, "delay before each page")
	ignoreDates := fs.Bool("ignore-date-filter", false, "return whole months whatever the date range (a known service behaviour)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	perKind := map[scope.Kind]int(nil)
	switch *rateLimits {
	case "":
	case "observed":
		perKind = sandbox.ObservedRates
		if *ratePerTenant == 0 {
			*ratePerTenant = sandbox.DocumentedTenantRate
		}
	default:
		n, kinds, err := ratelimit.ParseRates(*rateLimits)
		if err != nil || n != 0 {
			return exitError{code: exitUsage, msg: fmt.Sprintf("-rate-limits %q: want observed or kind=n,…: %v", *rateLimits, err)}
		}
		perKind = kinds
	}
	sb, err := sandbox.New(&sandbox.Options{
		Addr: *addr, Seed: *seed, RecordsPerDay: *perDay, TLS: *useTLS, Token: *token,
		RatePerScope: *ratePerScope, RatePerKind: perKind, RatePerTenant: *ratePerTenant, RateWindow: *window,
		ThrottleWithoutHeaders: *noHeaders, PageLatency: *latency, IgnoreDateFilter: *ignoreDates,
	})
	if err != nil {
		return exitError{code: exitUsage, msg: err.Error()}
	}
	if err := sb.Start(); err != nil {
		return err
	}
	defer sb.Close()
	if *useTLS && *caOut != "" {
		if err := os.WriteFile(*caOut, sb.CAPEM(), 0o644); err != nil {
			return fmt.Errorf("writing CA: %w", err)
		}
	}
	var scopes []string
	for _, s := range sb.Scopes() {
		scopes = append(scopes, s.String())
	}
	fmt.Fprintf(stdout, "API sandbox listening on %s\n\n", sb.URL())
	fmt.Fprintf(stdout, "export USAGE_EXPORT_MANAGEMENT_ENDPOINT=%s\n", sb.URL())
	fmt.Fprintf(stdout, "export USAGE_EXPORT_TOKEN=%s\n", sb.Token())
	if *useTLS && *caOut != "" {
		fmt.Fprintf(stdout, "export USAGE_EXPORT_CA_FILE=%s\n", *caOut)
	}
	fmt.Fprintf(stdout, "\nscopes of the synthetic enrollments:\n  %s\n", strings.Join(scopes, "\n  "))
	fmt.Fprintf(stdout, "\nground truth: %s/sandbox/groundtruth?scope=<scope>&period=YYYYMM&metric=actualcost\n", sb.URL())
	fmt.Fprintln(stdout, "\nCtrl-C to stop.")
	<-ctx.Done()
	return nil
}

package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
)

// Child modes of the harness binary: the baselines run as children of the harness so that their
// rusage is theirs alone.
const (
	ModeSDK  = "sdk-baseline" // SDKBaseline against a sandbox, gzip to a file; prints SDKResult
	ModeGzip = "gzip-only"    // GzipOnly over standard input; prints GzipResult
	// EnvToken carries the sandbox token to the SDK baseline child (not on its command line).
	EnvToken = "USAGE_EXPORT_BENCH_TOKEN"
	// EnvStorage carries a storage connection string to the profiling child.
	EnvStorage = "USAGE_EXPORT_BENCH_STORAGE"
)

// listingFlags are the flags of the children that list a billing period (sdk-baseline,
// fetch-gzip): the sandbox, the scope, the period and the query.
type listingFlags struct {
	endpoint, scope, period, expand, version *string
}

func newListingFlags(fs *flag.FlagSet, versionHelp string) listingFlags {
	return listingFlags{
		endpoint: fs.String("endpoint", "", "management endpoint (the sandbox)"),
		scope:    fs.String("scope", "", "billing scope"),
		period:   fs.String("period", "", "billing period YYYYMM (its whole date range is listed)"),
		expand:   fs.String("expand", Expand, "$expand"),
		version:  fs.String("api-version", APIVersion, versionHelp),
	}
}

// dates returns the first and the last day of the period.
func (l listingFlags) dates() (from, to time.Time, err error) {
	p, err := period.Parse(*l.period)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return p.Start(), p.End().Add(-24 * time.Hour), nil
}

// listingArgs are the arguments of a listing child for scope and period of sb.
func listingArgs(mode string, sb *sandbox.Server, sc scope.Scope, p period.Period) []string {
	return []string{mode, "-endpoint", sb.URL(), "-scope", sc.String(), "-period", p.String(),
		"-expand", Expand, "-api-version", APIVersion}
}

// RunSDKMode is the sdk-baseline child: flags in args, the token given by the caller (from
// EnvToken), the result as JSON on stdout.
func RunSDKMode(ctx context.Context, args []string, token string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(ModeSDK, flag.ContinueOnError)
	fs.SetOutput(stderr)
	l := newListingFlags(fs, "api-version to request instead of the SDK's own (empty: the SDK's)")
	out := fs.String("out", "", "output file (gzip JSON lines)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	from, to, err := l.dates()
	if err != nil {
		return fmt.Errorf("%s: %w", ModeSDK, err)
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("%s: %w", ModeSDK, err)
	}
	res, err := SDKBaseline(ctx, SDKOptions{
		Endpoint: *l.endpoint, Token: token, Scope: *l.scope, From: from, To: to,
		Expand: *l.expand, APIVersion: *l.version,
	}, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: %w", ModeSDK, cerr)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// RunGzipMode is the gzip-only child: standard input compressed and discarded, the result as
// JSON on stdout.
func RunGzipMode(stdin io.Reader, stdout io.Writer) error {
	res, err := GzipOnly(stdin, 0)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

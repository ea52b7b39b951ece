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

// RunSDKMode is the sdk-baseline child: flags in args, the token given by the caller (from
// EnvToken), the result as JSON on stdout.
func RunSDKMode(ctx context.Context, args []string, token string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(ModeSDK, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "management endpoint (the sandbox)")
	sc := fs.String("scope", "", "billing scope")
	per := fs.String("period", "", "billing period YYYYMM (its whole date range is listed)")
	expand := fs.String("expand", Expand, "$expand")
	version := fs.String("api-version", APIVersion, "api-version to request instead of the SDK's own (empty: the SDK's)")
	out := fs.String("out", "", "output file (gzip JSON lines)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := period.Parse(*per)
	if err != nil {
		return fmt.Errorf("%s: %w", ModeSDK, err)
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("%s: %w", ModeSDK, err)
	}
	res, err := SDKBaseline(ctx, SDKOptions{
		Endpoint: *endpoint, Token: token, Scope: *sc, From: p.Start(), To: p.End().Add(-24 * time.Hour),
		Expand: *expand, APIVersion: *version,
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

package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/consumption"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

// ModeProfile is the profiling child: the exporter's data path built as `handler export` builds
// it (consumption client behind the rate budget, usageDetails source, local store, exporter
// defaults), run in-process under the CPU profiler.
const ModeProfile = "export-profile"

// RunProfileMode is the export-profile child: flags in args, the token and the optional storage
// connection string from the caller (EnvToken, EnvStorage), the summary as JSON on stdout and
// the CPU profile in -cpuprofile.
func RunProfileMode(ctx context.Context, args []string, token, storageConn string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(ModeProfile, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "management endpoint (the sandbox)")
	sc := fs.String("scope", EAScope.String(), "billing scope")
	per := fs.String("period", "", "billing period YYYYMM")
	out := fs.String("out", "", "output directory")
	container := fs.String("container", "", "with the connection string in "+EnvStorage+": export to this blob container instead of -out")
	prof := fs.String("cpuprofile", "", "CPU profile file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := period.Parse(*per)
	if err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	s, err := scope.Parse(*sc)
	if err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	budget := ratelimit.New(&ratelimit.Options{PerScope: unlimitedRate, PerTenant: unlimitedRate})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	client, err := consumption.NewClient(mgmt.StaticToken(token), &consumption.Options{
		Endpoint: *endpoint, APIVersion: APIVersion,
		ClientOptions: policy.ClientOptions{
			Transport: &http.Client{Transport: tr}, PerRetryPolicies: []policy.Policy{budget.Policy()},
			Telemetry: policy.TelemetryOptions{ApplicationID: "usage-export"},
		},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	var st export.Store
	if *container != "" {
		st, err = store.NewBlob(ctx, &store.BlobOptions{ConnectionString: storageConn, Container: *container})
	} else {
		st, err = store.NewLocal(*out)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	src := &export.UsageDetails{Client: client, Version: APIVersion, Expand: Expand}
	e := export.New(st, func(scope.Scope) (export.Source, error) { return src, nil }, &export.Options{Prefix: "usage"})
	f, err := os.Create(*prof)
	if err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	defer f.Close()
	log := zerolog.New(stderr).Level(zerolog.WarnLevel)
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	sum, err := e.Run(log.WithContext(ctx), []export.Partition{{Scope: s, Period: p, Metric: "actualcost"}})
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	if err := sum.Err(); err != nil {
		return fmt.Errorf("%s: %w", ModeProfile, err)
	}
	return json.NewEncoder(stdout).Encode(sum)
}

// Profile exports about records records of the EA billing account from a sandbox to a local
// directory (or, with a root holding node_modules, to an Azurite it starts) in the
// export-profile child, writes its CPU profile to profile, and returns the child's usage.
func Profile(ctx context.Context, self string, records int, profile string, toAzurite bool, root string, env []string, logf func(string, ...any)) (Usage, error) {
	p := period.Of(time.Now().UTC()).Add(-1)
	perDay, rows, err := recordsPerDay(EAScope, p, records)
	if err != nil {
		return Usage{}, err
	}
	sb, err := sandbox.New(&sandbox.Options{RecordsPerDay: perDay})
	if err != nil {
		return Usage{}, fmt.Errorf("bench: sandbox: %w", err)
	}
	if err := sb.Start(); err != nil {
		return Usage{}, fmt.Errorf("bench: sandbox: %w", err)
	}
	defer sb.Close()
	dir, err := os.MkdirTemp("", "usage-export-profile-")
	if err != nil {
		return Usage{}, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	abs, err := filepath.Abs(profile)
	if err != nil {
		return Usage{}, fmt.Errorf("bench: %w", err)
	}
	args := []string{ModeProfile, "-endpoint", sb.URL(), "-period", p.String(), "-out", dir, "-cpuprofile", abs}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = childEnv(env, EnvToken+"="+sb.Token())
	if toAzurite {
		az, err := azurite.Start(ctx, &azurite.Options{Root: root})
		if err != nil {
			return Usage{}, fmt.Errorf("bench: starting azurite: %w", err)
		}
		defer az.Stop()
		cmd.Args = append(cmd.Args, "-container", "profile")
		cmd.Env = append(cmd.Env, EnvStorage+"="+az.ConnectionString())
	}
	if logf != nil {
		logf("profiling %d records: %s %s", rows, self, strings.Join(args, " "))
	}
	res, err := runChild(ctx, cmd)
	if err != nil {
		return Usage{}, fmt.Errorf("bench: profile: %w", err)
	}
	var sum export.Summary
	if err := json.Unmarshal(res.Stdout, &sum); err != nil {
		return res.Usage, fmt.Errorf("bench: profile: reading the summary: %w", err)
	}
	if sum.Rows != int64(rows) {
		return res.Usage, fmt.Errorf("bench: profile: exported %d rows, the sandbox has %d", sum.Rows, rows)
	}
	return res.Usage, nil
}

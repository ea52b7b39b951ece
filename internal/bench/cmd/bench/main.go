// Command bench is the performance harness of `make bench`.
//
// Usage:
//
//	bench -handler .build/handler [-large 1000000] [-small 100000] [-repeat 3] [-out table.md]
//	bench -cpuprofile cpu.prof [-large N]   (profile the data path instead)
//	bench sdk-baseline …   (child mode, run by the harness)
//	bench gzip-only        (child mode, run by the harness)
//	bench fetch-gzip …     (child mode, run by the harness)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/usage-export/usage-export/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// childEnv is what the measured children inherit: the search path, home and temporary
// directory, and none of the caller's USAGE_EXPORT_* settings.
func childEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case bench.ModeSDK:
			return bench.RunSDKMode(ctx, args[1:], os.Getenv(bench.EnvToken), os.Stdout, os.Stderr)
		case bench.ModeGzip:
			return bench.RunGzipMode(os.Stdin, os.Stdout)
		case bench.ModeFetchGzip:
			return bench.RunFetchGzipMode(ctx, args[1:], os.Getenv(bench.EnvToken), os.Stdout, os.Stderr)
		case bench.ModeProfile:
			return bench.RunProfileMode(ctx, args[1:], os.Getenv(bench.EnvToken), os.Getenv(bench.EnvStorage), os.Stdout, os.Stderr)
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	handler := fs.String("handler", ".build/handler", "the built handler binary")
	large := fs.Int("large", bench.DefaultLarge, "records of the large export")
	small := fs.Int("small", bench.DefaultSmall, "records of the small export (and of the SDK baseline)")
	noAzurite := fs.Bool("no-azurite", false, "skip the Azurite exports")
	noSDK := fs.Bool("no-sdk", false, "skip the SDK baseline")
	out := fs.String("out", "", "also write the report as Markdown to this file")
	only := fs.String("only", "", "run only these parts, comma-separated: volumes, plan, rate, startup")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	repeat := fs.Int("repeat", bench.DefaultRepeat, "runs of each export, gzip-only and fetch + gzip scenario (median CPU and wall, highest RSS)")
	profile := fs.String("cpuprofile", "", "instead of the table: export -large records in-process (as handler export builds it) to Azurite (local with -no-azurite) under the CPU profiler, writing the profile here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	if *quiet {
		logf = nil
	}
	if *profile != "" {
		u, err := bench.Profile(ctx, self, *large, *profile, !*noAzurite, "", childEnv(), logf)
		if err != nil {
			return err
		}
		fmt.Printf("profile %s: wall %.2f s, CPU %.2f s, peak RSS %.1f MiB\n", *profile, u.Wall.Seconds(), u.CPUSeconds(), u.MaxRSSMiB())
		return nil
	}
	o := bench.Options{
		Handler: *handler, Self: self, Large: *large, Small: *small,
		NoAzurite: *noAzurite, NoSDK: *noSDK, Repeat: *repeat, Logf: logf, Env: childEnv(),
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at the end: %s", load)
	}
	if err := rep.WriteText(os.Stdout); err != nil {
		return err
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := rep.WriteMarkdown(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

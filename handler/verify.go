package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/usage-export/usage-export/internal/config"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

// cmdVerify re-reads partitions and checks them against their manifests. Arguments are
// partition folders or manifest names relative to the container (or output directory); with
// none, every committed partition under the prefix is checked.
func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	usageFunc(fs, "verify [flags] [PARTITION...]\n\nRe-read partitions (folders or manifests relative to the container or output directory;\nnone: every committed partition under the prefix) and check them against their manifests.\nReads only: a missing container or directory is an error.")
	sf := addSettingFlags(fs, config.UseStore)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	ctx, cfg, st, err := openOutput(ctx, sf, stderr)
	if err != nil {
		return err
	}
	var names []string
	for _, a := range fs.Args() {
		a = strings.Trim(a, "/")
		if path.Base(a) != manifest.FileName {
			a = path.Join(a, manifest.FileName)
		}
		names = append(names, a)
	}
	if len(names) == 0 {
		prefix := ""
		if cfg.Prefix != "" {
			prefix = cfg.Prefix + "/"
		}
		err := st.List(ctx, prefix, func(it store.Item) error {
			if path.Base(it.Name) == manifest.FileName && !strings.Contains(it.Name, "/_control/") && !strings.HasPrefix(it.Name, "_control/") {
				names = append(names, it.Name)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing manifests: %w", err)
		}
	}
	if len(names) == 0 {
		return exitError{code: exitFailed, msg: "verify: no manifest found"}
	}
	bad := 0
	var reports []*verify.Report
	for _, n := range names {
		rep, err := verifyPartition(ctx, st, n)
		if err != nil {
			rep = &verify.Report{Manifest: n, Problems: []string{err.Error()}}
		}
		if !rep.OK() {
			bad++
		}
		reports = append(reports, rep)
	}
	_ = writeJSON(stdout, map[string]any{"partitions": reports, "ok": bad == 0, "checked": len(reports), "failed": bad})
	if bad > 0 {
		return exitError{code: exitFailed, msg: fmt.Sprintf("verify: %d of %d partitions do not match their manifest", bad, len(reports))}
	}
	return nil
}

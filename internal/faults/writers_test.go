package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/store"
)

// TestSecondWriter starts a second `handler export` of a partition while a first one holds it
// (its first page request is held at the sandbox, so the first writer is certainly mid-export).
// The second must report the partition busy ("already running", exit 3) without a single call
// to the API; released, the first must commit exactly the ground truth. On the local directory
// store and on Azurite.
func TestSecondWriter(t *testing.T) {
	gate(t)
	w := getWorld(t)
	for _, where := range []string{"local", "azurite"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			runSecondWriter(t, w, where)
		})
	}
}

func runSecondWriter(t *testing.T, w *crashWorld, where string) {
	ctx := context.Background()
	name := "second-writer-" + where
	const metric = "actualcost"
	gw := newGateway(t, sandbox.Options{RecordsPerDay: crashRecordsNew, PageSize: crashPageSize, Token: w.token})
	// The second writer authenticates with its own token, so its calls are counted apart.
	gw.altToken = w.token + "-second"
	var st storeView
	var target []string
	if where == "azurite" {
		az := azuritetest.Start(t)
		container := fmt.Sprintf("faults-writers-%d", time.Now().UnixNano()%1_000_000)
		blob, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: az.ConnectionString(), Container: container})
		if err != nil {
			t.Fatal(err)
		}
		st, target = blob, w.blobEnv(az.BlobEndpoint(), container)
	} else {
		dir := t.TempDir()
		local, err := store.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		st, target = local, w.localEnv(dir)
	}
	// One partition (the later setting wins in the process environment).
	env := append(w.env(gw.url, target), "USAGE_EXPORT_METRIC="+metric)

	h := newHold(1, false)
	gw.setHold(h)
	first := startHandler(t, w.bin, env, w.args())
	select {
	case <-h.fired:
	case <-first.done:
		t.Fatalf("the first writer ended before its first page request (exit %d): %s", first.code, first.tail(1000))
	case <-time.After(runLimit):
		t.Fatal("the first writer never asked for a page")
	}
	second := startHandler(t, w.bin, append(env, "USAGE_EXPORT_TOKEN="+gw.altToken), w.args())
	if !second.wait(runLimit) {
		t.Fatal("the second writer did not end")
	}
	secondReqs := gw.altRequests.Load()
	close(h.release)
	if !first.wait(runLimit) {
		t.Fatal("the first writer did not end")
	}

	var problems []string
	s, err := second.summary()
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("second writer: exit %d, %v: %s", second.code, err, second.tail(500)))
	case second.code != 3 || len(s.Partitions) != 1 || s.Partitions[0].Status != string(export.StatusBusy) ||
		!strings.Contains(s.Partitions[0].Error, "already running"):
		problems = append(problems, fmt.Sprintf("second writer: exit %d, summary %+v, want exit 3 and busy, already running", second.code, s.Partitions))
	}
	if secondReqs != 0 {
		problems = append(problems, fmt.Sprintf("the second writer made %d API calls", secondReqs))
	}
	if first.code != 0 {
		problems = append(problems, fmt.Sprintf("first writer: exit %d: %s", first.code, first.tail(500)))
	}
	rows, err := checkExact(ctx, st, w.dirs[metric]+"/"+manifest.FileName, w.truth[metric])
	if err != nil {
		problems = append(problems, "first writer's partition: "+err.Error())
	}
	for _, p := range []*proc{first, second} {
		problems = append(problems, leaks(p.stdout.String()+p.stderr.String(), w.token, gw.altToken, azurite.AccountKey)...)
	}
	if len(problems) > 0 {
		report(t, kindFault, false, "%s: %s", name, strings.Join(problems, "; "))
		return
	}
	report(t, kindFault, true, "%s: survived (the second writer reported %q with 0 API calls, exit 3; the first committed exactly %d rows)",
		name, s.Partitions[0].Error, rows)
}

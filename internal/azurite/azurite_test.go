package azurite_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/store"
)

func TestStartStop(t *testing.T) {
	azuritetest.SkipShort(t)
	t.Parallel()
	srv, err := azurite.Start(context.Background(), &azurite.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	dir := srv.Dir()
	if want := "http://127.0.0.1:" + strconv.Itoa(srv.Port()) + "/devstoreaccount1"; srv.BlobEndpoint() != want {
		t.Errorf("BlobEndpoint() = %q, want %q", srv.BlobEndpoint(), want)
	}
	if cs := srv.ConnectionString(); !strings.Contains(cs, "BlobEndpoint="+srv.BlobEndpoint()+";") || !strings.Contains(cs, "AccountName=devstoreaccount1;") {
		t.Errorf("ConnectionString() = %q, want the dev account and the endpoint", cs)
	}
	// The service answers HTTP (an unauthenticated request is refused with a status).
	resp, err := http.Get(srv.BlobEndpoint() + "?comp=list")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unauthenticated GET: status %d, want 403", resp.StatusCode)
	}
	// The Queue service runs beside it and is named in the connection string.
	if srv.QueuePort() == 0 || !strings.Contains(srv.ConnectionString(), "QueueEndpoint="+srv.QueueEndpoint()+";") {
		t.Errorf("ConnectionString() = %q, want QueueEndpoint %q", srv.ConnectionString(), srv.QueueEndpoint())
	}
	qresp, err := http.Get(srv.QueueEndpoint() + "?comp=list")
	if err != nil {
		t.Fatalf("GET queue service: %v", err)
	}
	io.Copy(io.Discard, qresp.Body)
	qresp.Body.Close()
	if qresp.StatusCode != http.StatusForbidden {
		t.Errorf("unauthenticated queue GET: status %d, want 403", qresp.StatusCode)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Port()))); err == nil {
		c.Close()
		t.Errorf("port still answers after Stop")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary data dir after Stop: stat err = %v, want not exist", err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStartWithoutNodeModules(t *testing.T) {
	_, err := azurite.Start(context.Background(), &azurite.Options{Root: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "npm ci") {
		t.Errorf("Start without node_modules: err = %v, want one that says to run npm ci", err)
	}
}

func TestAttach(t *testing.T) {
	for _, c := range []struct {
		cs       string
		wantPort int
	}{
		{"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;", 10000},
		{"AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://localhost:12345/devstoreaccount1", 12345},
		{"AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://192.0.2.1:10000/devstoreaccount1", 0},
		{"AccountName=devstoreaccount1;AccountKey=k", 0},
		{"UseDevelopmentStorage=true", 0},
		{"AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://192.0.2.1:10001/devstoreaccount1;", 0},
	} {
		srv, err := azurite.Attach(c.cs)
		switch {
		case c.wantPort == 0 && err == nil:
			t.Errorf("Attach(%q): err = nil, want an error", c.cs)
		case c.wantPort != 0 && err != nil:
			t.Errorf("Attach(%q): %v", c.cs, err)
		case c.wantPort != 0 && srv.QueuePort() != 0:
			t.Errorf("Attach(%q).QueuePort() = %d, want 0 (no QueueEndpoint)", c.cs, srv.QueuePort())
		case c.wantPort != 0 && srv.Port() != c.wantPort:
			t.Errorf("Attach(%q).Port() = %d, want %d", c.cs, srv.Port(), c.wantPort)
		case c.wantPort != 0:
			for _, op := range []error{srv.Stop(), srv.Kill(), srv.Restart(context.Background())} {
				if !errors.Is(op, azurite.ErrNotOwned) {
					t.Errorf("lifecycle call on an attached server: err = %v, want ErrNotOwned", op)
				}
			}
		}
	}
}

// TestKillRestart stops storage abruptly: what Azurite had saved survives, a Put during the
// outage fails within its ctx instead of hanging, and a Put after Restart works.
func TestKillRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir := t.TempDir()
	srv := azuritetest.Fresh(t, &azurite.Options{Dir: dataDir})
	st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: srv.ConnectionString(), Container: "killed"})
	if err != nil {
		t.Fatalf("NewBlob: %v", err)
	}
	if _, err := st.Put(ctx, "before/kill", strings.NewReader("survives"), &store.PutOptions{Metadata: map[string]string{"runid": "r1"}}); err != nil {
		t.Fatalf("Put before kill: %v", err)
	}
	// Azurite saves its two metadata databases (blobs, and the extents that hold their
	// content) every 5 s; wait until both have the blob, as a power cut after that point
	// would find it.
	waitFor(t, 30*time.Second, func() bool { return persisted(t, dataDir, "before/kill") })
	port := srv.Port()
	if err := srv.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}

	outage, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err = st.Put(outage, "during/outage", strings.NewReader("lost"), nil)
	if err == nil {
		t.Fatalf("Put while storage is down: err = nil, want an error")
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("Put while storage is down took %v, want it bounded by its 3 s ctx", waited)
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if srv.Port() != port {
		t.Errorf("port after Restart = %d, want %d", srv.Port(), port)
	}
	rc, p, err := st.Get(ctx, "before/kill")
	if err != nil {
		t.Fatalf("Get after Restart: %v", err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "survives" || p.Metadata["runid"] != "r1" {
		t.Errorf("after Restart: %q %v, metadata %v; want %q, runid r1", b, err, p.Metadata, "survives")
	}
	if _, err := st.Props(ctx, "during/outage"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the Put that failed during the outage: err = %v, want ErrNotFound", err)
	}
	if _, err := st.Put(ctx, "after/restart", strings.NewReader("works"), nil); err != nil {
		t.Errorf("Put after Restart: %v", err)
	}

	// A graceful restart keeps everything acknowledged, without waiting for a save.
	if _, err := st.Put(ctx, "before/stop", strings.NewReader("kept"), nil); err != nil {
		t.Fatalf("Put before restart: %v", err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("second Restart: %v", err)
	}
	for _, name := range []string{"after/restart", "before/stop"} {
		if _, err := st.Props(ctx, name); err != nil {
			t.Errorf("Props(%s) after a graceful restart: %v", name, err)
		}
	}
}

// persisted reports whether Azurite's saved databases in dir hold blob name and its extent.
func persisted(t *testing.T, dir, name string) bool {
	t.Helper()
	type lokiDB struct {
		Collections []struct {
			Name string `json:"name"`
			Data []struct {
				Name        string `json:"name"`
				ID          string `json:"id"`
				Persistency struct {
					ID string `json:"id"`
				} `json:"persistency"`
			} `json:"data"`
		} `json:"collections"`
	}
	read := func(file string) (lokiDB, bool) {
		var db lokiDB
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || json.Unmarshal(b, &db) != nil {
			return db, false // not written yet, or caught mid-write
		}
		return db, true
	}
	blobs, ok := read("__azurite_db_blob__.json")
	if !ok {
		return false
	}
	extent := ""
	for _, c := range blobs.Collections {
		for _, d := range c.Data {
			if d.Name == name && d.Persistency.ID != "" {
				extent = d.Persistency.ID
			}
		}
	}
	if extent == "" {
		return false
	}
	extents, ok := read("__azurite_db_blob_extent__.json")
	if !ok {
		return false
	}
	for _, c := range extents.Collections {
		for _, d := range c.Data {
			if d.ID == extent {
				return true
			}
		}
	}
	return false
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

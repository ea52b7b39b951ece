package store_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/store"
)

func TestLocalAcceptance(t *testing.T) {
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	acceptanceTest(t, st)
}

// TestLocalLayout checks what a lake reader sees in the directory: objects as plain files
// under their names, and nothing else that is not hidden.
func TestLocalLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"p/part-1.jsonl.gz", "p/part-2.jsonl.gz", "p/_manifest.json"} {
		if _, err := st.Put(ctx, n, strings.NewReader(n), &store.PutOptions{Metadata: map[string]string{"runid": "r"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Move(ctx, "p/part-2.jsonl.gz", "q/part-2.jsonl.gz", nil); err != nil {
		t.Fatal(err)
	}
	got, err := filepath.Glob(filepath.Join(dir, "*", "*.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "p", "part-1.jsonl.gz"), filepath.Join(dir, "q", "part-2.jsonl.gz")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("glob *.jsonl.gz = %v, want %v", got, want)
	}
	var visible []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			visible = append(visible, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(visible)
	if w := []string{"p/_manifest.json", "p/part-1.jsonl.gz", "q/part-2.jsonl.gz"}; !reflect.DeepEqual(visible, w) {
		t.Errorf("non-hidden files = %v, want %v", visible, w)
	}
	b, err := os.ReadFile(filepath.Join(dir, "q", "part-2.jsonl.gz"))
	if err != nil || string(b) != "p/part-2.jsonl.gz" {
		t.Errorf("moved file content = %q, %v; want %q", b, err, "p/part-2.jsonl.gz")
	}
	// Deleting the last object of a folder removes the folder.
	if err := st.Delete(ctx, "q/part-2.jsonl.gz"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "q")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("folder after deleting its last object: stat err = %v, want not exist", err)
	}
}

// TestLocalNameAndPrefixShadowing covers the one naming limit of Local: a name cannot be a
// file and a folder at once. The failure is an error, never a corrupted store.
func TestLocalNameAndPrefixShadowing(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "a/b", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "a", strings.NewReader("y"), nil); err == nil {
		t.Errorf("Put of a name that is a folder: err = nil, want an error")
	}
	if _, err := st.Props(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Props of a folder: err = %v, want ErrNotFound", err)
	}
	if _, _, err := st.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a folder: err = %v, want ErrNotFound", err)
	}
	if got := listNames(t, st, ""); !reflect.DeepEqual(got, []string{"a/b"}) {
		t.Errorf("List = %v, want [a/b]", got)
	}
	if _, err := st.Props(ctx, "a/b/c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Props below an object: err = %v, want ErrNotFound", err)
	}
	if got := listNames(t, st, "a/b/"); len(got) != 0 {
		t.Errorf("List below an object = %v, want none", got)
	}
}

// TestLocalLeaseTwoStores shows that two stores over one directory in one process exclude
// each other, as two processes would.
func TestLocalLeaseTwoStores(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.AcquireLease(ctx, "lease", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcquireLease(ctx, "lease", time.Minute); !errors.Is(err, store.ErrLeased) {
		t.Errorf("AcquireLease from a second store: err = %v, want ErrLeased", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := b.AcquireLease(ctx, "lease", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease from the second store after Release: %v", err)
	}
	l2.Release(ctx)
}

// TestLocalLeaseFreedWhenHolderDies re-runs the test binary as a child that takes the lease,
// kills it with SIGKILL, and takes the lease.
func TestLocalLeaseFreedWhenHolderDies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const name = "_control/leases/p"
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envLeaseHolder+"="+dir+"|"+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "held\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v; want held", line, err)
	}
	st, err := store.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AcquireLease(ctx, name, time.Minute); !errors.Is(err, store.ErrLeased) {
		t.Errorf("AcquireLease while the child holds it: err = %v, want ErrLeased", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, err := st.AcquireLease(ctx, name, time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease after the holder was killed: %v", err)
	}
	l.Release(ctx)
}

// TestLocalPutWhilePruning puts deep names while deletes of their siblings prune the same
// directories: a Put must never fail with "mkdir …: no such file or directory" because a
// directory it created was pruned under it.
func TestLocalPutWhilePruning(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		go func() {
			var err error
			for i := 0; i < 40 && err == nil; i++ {
				name := "a/b/" + string(rune('a'+w)) + "/c/d/x"
				if _, err = st.Put(ctx, name, strings.NewReader("x"), nil); err == nil {
					err = st.Delete(ctx, name)
				}
			}
			errs <- err
		}()
	}
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

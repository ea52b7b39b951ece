package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/store"
)

// contract is the method set both stores share, as a consumer declares it.
type contract interface {
	Put(ctx context.Context, name string, r io.Reader, o *store.PutOptions) (store.Props, error)
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
	Props(ctx context.Context, name string) (store.Props, error)
	List(ctx context.Context, prefix string, fn func(store.Item) error) error
	Delete(ctx context.Context, name string) error
	Move(ctx context.Context, src, dst string, o *store.PutOptions) error
	AcquireLease(ctx context.Context, name string, ttl time.Duration) (*store.Lease, error)
	StageBlock(ctx context.Context, name string, n int, data []byte) error
	CommitBlocks(ctx context.Context, name string, n int, o *store.PutOptions) (store.Props, error)
	String() string
}

var (
	_ contract = (*store.Local)(nil)
	_ contract = (*store.Blob)(nil)
)

// acceptanceTest proves the store contract against st, which must be empty.
func acceptanceTest(t *testing.T, st contract) {
	ctx := context.Background()

	t.Run("PutGetProps", func(t *testing.T) {
		o := &store.PutOptions{Metadata: map[string]string{"runid": "r1", "rows": "42"}, ContentType: "application/x-ndjson"}
		put, err := st.Put(ctx, "basic/one.jsonl", strings.NewReader("hello\n"), o)
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if put.Size != 6 || put.ETag == "" || put.LastModified.IsZero() {
			t.Errorf("Put props = %+v, want size 6, an etag and a time", put)
		}
		got, gp := mustGet(t, st, "basic/one.jsonl")
		if got != "hello\n" {
			t.Errorf("Get content = %q, want %q", got, "hello\n")
		}
		pp, err := st.Props(ctx, "basic/one.jsonl")
		if err != nil {
			t.Fatalf("Props: %v", err)
		}
		for _, c := range []struct {
			what string
			p    store.Props
		}{{"Put", put}, {"Get", gp}, {"Props", pp}} {
			if c.p.Size != 6 || c.p.ETag != put.ETag || c.p.ContentType != o.ContentType || !reflect.DeepEqual(c.p.Metadata, o.Metadata) {
				t.Errorf("%s props = %+v, want size 6, etag %s, content type %q, metadata %v", c.what, c.p, put.ETag, o.ContentType, o.Metadata)
			}
		}
	})

	t.Run("EmptyObject", func(t *testing.T) {
		p, err := st.Put(ctx, "basic/empty", strings.NewReader(""), nil)
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, gp := mustGet(t, st, "basic/empty")
		if got != "" || p.Size != 0 || gp.Size != 0 || gp.Metadata != nil {
			t.Errorf("empty object: content %q, put %+v, get %+v; want empty, size 0, no metadata", got, p, gp)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		if _, _, err := st.Get(ctx, "missing/x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get missing: err = %v, want ErrNotFound", err)
		}
		if _, err := st.Props(ctx, "missing/x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Props missing: err = %v, want ErrNotFound", err)
		}
		if err := st.Delete(ctx, "missing/x"); err != nil {
			t.Errorf("Delete missing: err = %v, want nil", err)
		}
		if got := listNames(t, st, "missing/"); len(got) != 0 {
			t.Errorf("List missing/ = %v, want none", got)
		}
	})

	t.Run("ListOrderAndPrefix", func(t *testing.T) {
		// Put in an order that is neither lexical nor directory-walk order.
		names := []string{"list/b", "list/a/c", "listx", "list/ab", "list/a-c", "list/a/b"}
		for _, n := range names {
			if _, err := st.Put(ctx, n, strings.NewReader(n), &store.PutOptions{Metadata: map[string]string{"n": n}}); err != nil {
				t.Fatalf("Put %s: %v", n, err)
			}
		}
		cases := []struct {
			prefix string
			want   []string
		}{
			{"list/", []string{"list/a-c", "list/a/b", "list/a/c", "list/ab", "list/b"}},
			{"list/a", []string{"list/a-c", "list/a/b", "list/a/c", "list/ab"}},
			{"list/a/", []string{"list/a/b", "list/a/c"}},
			{"list", []string{"list/a-c", "list/a/b", "list/a/c", "list/ab", "list/b", "listx"}},
			{"list/a/c", []string{"list/a/c"}},
			{"list/zz", nil},
			{"nothing/", nil},
		}
		for _, c := range cases {
			if got := listNames(t, st, c.prefix); !reflect.DeepEqual(got, c.want) {
				t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
			}
		}
		// Items carry their props.
		err := st.List(ctx, "list/a/", func(it store.Item) error {
			if it.Metadata["n"] != it.Name || it.Size != int64(len(it.Name)) || it.ETag == "" {
				t.Errorf("List item %s = %+v, want metadata n=%s, size %d and an etag", it.Name, it.Props, it.Name, len(it.Name))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		// An error from fn stops the listing and comes back.
		stop := errors.New("stop")
		calls := 0
		err = st.List(ctx, "list/", func(store.Item) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("List with failing fn: err %v after %d calls, want stop after 1", err, calls)
		}
	})

	t.Run("OverwriteAndDelete", func(t *testing.T) {
		p1, err := st.Put(ctx, "ow/x", strings.NewReader("first"), &store.PutOptions{Metadata: map[string]string{"v": "1"}})
		if err != nil {
			t.Fatalf("Put 1: %v", err)
		}
		p2, err := st.Put(ctx, "ow/x", strings.NewReader("second!"), nil)
		if err != nil {
			t.Fatalf("Put 2: %v", err)
		}
		if p1.ETag == p2.ETag {
			t.Errorf("etag unchanged by overwrite: %s", p1.ETag)
		}
		got, gp := mustGet(t, st, "ow/x")
		if got != "second!" || gp.Metadata != nil || gp.ETag != p2.ETag {
			t.Errorf("after overwrite: %q %+v, want %q, no metadata, etag %s", got, gp, "second!", p2.ETag)
		}
		if err := st.Delete(ctx, "ow/x"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := st.Props(ctx, "ow/x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Props after Delete: err = %v, want ErrNotFound", err)
		}
		if got := listNames(t, st, "ow/"); len(got) != 0 {
			t.Errorf("List after Delete = %v, want none", got)
		}
	})

	t.Run("AtomicOverwrite", func(t *testing.T) {
		const name = "atomic/obj"
		oldData := bytes.Repeat([]byte("a"), 2<<20+512<<10) // 2.5 MiB
		newData := bytes.Repeat([]byte("b"), 3<<20)
		if _, err := st.Put(ctx, name, bytes.NewReader(oldData), &store.PutOptions{Metadata: map[string]string{"v": "old"}}); err != nil {
			t.Fatalf("Put old: %v", err)
		}
		// The writer hands out one chunk per completed concurrent Get, so readers run
		// throughout the upload without any sleeps.
		polled := make(chan struct{})
		done := make(chan struct{})
		var seenOld, seenNew int
		var pollErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, p, err := getBytes(ctx, st, name)
				switch {
				case err != nil:
					pollErr = fmt.Errorf("Get during Put: %w", err)
					return
				case bytes.Equal(got, oldData) && p.Metadata["v"] == "old":
					seenOld++
				case bytes.Equal(got, newData) && p.Metadata["v"] == "new":
					seenNew++
				default:
					pollErr = fmt.Errorf("Get during Put saw %d bytes starting %q with metadata %v: neither old nor new", len(got), got[:min(len(got), 8)], p.Metadata)
					return
				}
				select {
				case polled <- struct{}{}:
				case <-done:
					return
				}
			}
		}()
		r := &trickle{data: newData, chunk: 256 << 10, gate: polled}
		_, err := st.Put(ctx, name, r, &store.PutOptions{Metadata: map[string]string{"v": "new"}})
		close(done)
		wg.Wait()
		if err != nil {
			t.Fatalf("Put new: %v", err)
		}
		if pollErr != nil {
			t.Fatal(pollErr)
		}
		if seenOld < 2 {
			t.Errorf("concurrent readers saw the old object %d times, want it seen throughout the upload", seenOld)
		}
		got, _ := mustGet(t, st, name)
		if got != string(newData) {
			t.Errorf("after Put: %d bytes, want the new %d", len(got), len(newData))
		}

		// A Put whose reader fails, or whose ctx is cancelled, changes nothing.
		boom := errors.New("source broke")
		if _, err := st.Put(ctx, name, io.MultiReader(bytes.NewReader(oldData), &failing{boom}), nil); !errors.Is(err, boom) {
			t.Errorf("Put from failing reader: err = %v, want %v", err, boom)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := st.Put(cctx, name, bytes.NewReader(oldData), nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Put with cancelled ctx: err = %v, want context.Canceled", err)
		}
		got, gp := mustGet(t, st, name)
		if got != string(newData) || gp.Metadata["v"] != "new" {
			t.Errorf("after failed Puts: %d bytes, metadata %v; want the new %d bytes, v=new", len(got), gp.Metadata, len(newData))
		}
		if names := listNames(t, st, "atomic/"); !reflect.DeepEqual(names, []string{name}) {
			t.Errorf("List after failed Puts = %v, want only %s", names, name)
		}
	})

	t.Run("ConditionalWrites", func(t *testing.T) {
		const name = "cond/x"
		p1, err := st.Put(ctx, name, strings.NewReader("1"), &store.PutOptions{IfNoneMatch: true})
		if err != nil {
			t.Fatalf("create-only Put of a new name: %v", err)
		}
		if _, err := st.Put(ctx, name, strings.NewReader("2"), &store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("create-only Put of an existing name: err = %v, want ErrPrecondition", err)
		}
		p2, err := st.Put(ctx, name, strings.NewReader("3"), &store.PutOptions{IfMatch: p1.ETag})
		if err != nil {
			t.Fatalf("If-Match Put with the current etag: %v", err)
		}
		if _, err := st.Put(ctx, name, strings.NewReader("4"), &store.PutOptions{IfMatch: p1.ETag}); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("If-Match Put with a stale etag: err = %v, want ErrPrecondition", err)
		}
		if _, err := st.Put(ctx, "cond/missing", strings.NewReader("5"), &store.PutOptions{IfMatch: p1.ETag}); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("If-Match Put of a missing name: err = %v, want ErrPrecondition", err)
		}
		if got, gp := mustGet(t, st, name); got != "3" || gp.ETag != p2.ETag {
			t.Errorf("after conditional writes: %q etag %s, want %q etag %s", got, gp.ETag, "3", p2.ETag)
		}

		// Racing create-only writers: exactly one wins.
		const writers = 6
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = st.Put(ctx, "cond/race", strings.NewReader(fmt.Sprint(i)), &store.PutOptions{IfNoneMatch: true})
			}()
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrPrecondition):
				t.Errorf("racing writer %d: err = %v, want nil or ErrPrecondition", i, err)
			}
		}
		if wins != 1 {
			t.Errorf("racing create-only writers: %d won, want 1", wins)
		}
	})

	t.Run("StagedBlocks", func(t *testing.T) {
		const name = "blocks/part.jsonl.gz"
		if err := st.StageBlock(ctx, name, 1, []byte("world\n")); err != nil {
			t.Fatalf("StageBlock 1: %v", err)
		}
		if err := st.StageBlock(ctx, name, 0, []byte("stale\n")); err != nil {
			t.Fatalf("StageBlock 0: %v", err)
		}
		if err := st.StageBlock(ctx, name, 0, []byte("hello\n")); err != nil { // staged again: replaced
			t.Fatalf("StageBlock 0 again: %v", err)
		}
		if err := st.StageBlock(ctx, name, 2, []byte("never committed\n")); err != nil {
			t.Fatalf("StageBlock 2: %v", err)
		}
		if _, err := st.Props(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Props before commit: %v, want ErrNotFound (staged blocks are invisible)", err)
		}
		if got := listNames(t, st, "blocks/"); len(got) != 0 {
			t.Fatalf("List before commit = %v, want nothing", got)
		}
		o := &store.PutOptions{Metadata: map[string]string{"runid": "r1"}, ContentType: "application/gzip"}
		p, err := st.CommitBlocks(ctx, name, 2, o)
		if err != nil {
			t.Fatalf("CommitBlocks: %v", err)
		}
		if p.Size != 12 || p.ETag == "" || p.Metadata["runid"] != "r1" || p.ContentType != "application/gzip" {
			t.Errorf("CommitBlocks props = %+v, want size 12, an etag, runid r1, application/gzip", p)
		}
		if got, _ := mustGet(t, st, name); got != "hello\nworld\n" {
			t.Errorf("committed content = %q, want blocks 0 and 1 in order", got)
		}
		if err := st.StageBlock(ctx, name, 0, []byte("again\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.CommitBlocks(ctx, name, 1, &store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("CommitBlocks IfNoneMatch on an existing object: %v, want ErrPrecondition", err)
		}
		if err := st.StageBlock(ctx, "../x", 0, nil); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("StageBlock ../x: %v, want ErrInvalidName", err)
		}
		if err := st.StageBlock(ctx, name, store.MaxBlocks, nil); err == nil {
			t.Errorf("StageBlock %d: no error", store.MaxBlocks)
		}
		if err := st.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Move", func(t *testing.T) {
		src, dst := "move/run/part-1", "move/live/part-1"
		if _, err := st.Put(ctx, src, strings.NewReader("part one"), &store.PutOptions{
			Metadata: map[string]string{"sha256": "abc"}, ContentType: "application/gzip",
		}); err != nil {
			t.Fatalf("Put src: %v", err)
		}
		if _, err := st.Put(ctx, dst, strings.NewReader("old live part"), &store.PutOptions{Metadata: map[string]string{"runid": "r0"}}); err != nil {
			t.Fatalf("Put dst: %v", err)
		}
		o := &store.PutOptions{Metadata: map[string]string{"runid": "r1"}}
		if err := st.Move(ctx, src, dst, o); err != nil {
			t.Fatalf("Move: %v", err)
		}
		got, gp := mustGet(t, st, dst)
		wantMeta := map[string]string{"sha256": "abc", "runid": "r1"}
		if got != "part one" || !reflect.DeepEqual(gp.Metadata, wantMeta) || gp.ContentType != "application/gzip" {
			t.Errorf("dst after Move: %q %+v, want %q, metadata %v, content type application/gzip", got, gp, "part one", wantMeta)
		}
		if _, err := st.Props(ctx, src); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("src after Move: err = %v, want ErrNotFound", err)
		}
		// Repeating the move of the same run is a no-op; another run's move of a missing
		// source is not.
		if err := st.Move(ctx, src, dst, o); err != nil {
			t.Errorf("repeated Move: err = %v, want nil", err)
		}
		if err := st.Move(ctx, src, dst, &store.PutOptions{Metadata: map[string]string{"runid": "r2"}}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Move of a missing src for another run: err = %v, want ErrNotFound", err)
		}
		if err := st.Move(ctx, "move/none", "move/none2", o); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Move with src and dst missing: err = %v, want ErrNotFound", err)
		}
		// Conditions apply to dst; a failed move keeps src.
		if _, err := st.Put(ctx, src, strings.NewReader("part again"), nil); err != nil {
			t.Fatalf("Put src: %v", err)
		}
		if err := st.Move(ctx, src, dst, &store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("create-only Move onto an existing dst: err = %v, want ErrPrecondition", err)
		}
		if got, _ := mustGet(t, st, src); got != "part again" {
			t.Errorf("src after failed Move = %q, want it kept", got)
		}
		if err := st.Move(ctx, src, "move/new/part", &store.PutOptions{IfNoneMatch: true, ContentType: "text/plain"}); err != nil {
			t.Fatalf("create-only Move to a new dst: %v", err)
		}
		if got, gp := mustGet(t, st, "move/new/part"); got != "part again" || gp.ContentType != "text/plain" || gp.Metadata != nil {
			t.Errorf("new dst = %q %+v, want %q, content type text/plain, no metadata", got, gp, "part again")
		}
		if names := listNames(t, st, "move/"); !reflect.DeepEqual(names, []string{dst, "move/new/part"}) {
			t.Errorf("List after moves = %v, want [%s move/new/part]", names, dst)
		}
	})

	t.Run("Leases", func(t *testing.T) {
		const name = "_control/leases/p1"
		l1, err := st.AcquireLease(ctx, name, 30*time.Second)
		if err != nil {
			t.Fatalf("AcquireLease: %v", err)
		}
		if l1.ID() == "" || l1.Name() != name {
			t.Errorf("lease id %q name %q, want an id and %q", l1.ID(), l1.Name(), name)
		}
		if _, err := st.AcquireLease(ctx, name, 30*time.Second); !errors.Is(err, store.ErrLeased) {
			t.Errorf("second AcquireLease: err = %v, want ErrLeased", err)
		}
		if err := l1.Renew(ctx); err != nil {
			t.Errorf("Renew: %v", err)
		}
		// Another name is independent.
		other, err := st.AcquireLease(ctx, "_control/leases/p2", 30*time.Second)
		if err != nil {
			t.Fatalf("AcquireLease of another name: %v", err)
		}
		if err := other.Release(ctx); err != nil {
			t.Errorf("Release other: %v", err)
		}
		if err := l1.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := l1.Release(ctx); err != nil {
			t.Errorf("second Release: err = %v, want nil", err)
		}
		if err := l1.Renew(ctx); err == nil {
			t.Errorf("Renew after Release: err = nil, want an error")
		}
		l2, err := st.AcquireLease(ctx, name, 30*time.Second)
		if err != nil {
			t.Fatalf("AcquireLease after Release: %v", err)
		}
		if l2.ID() == l1.ID() {
			t.Errorf("new lease reuses id %s", l1.ID())
		}
		if err := l2.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}

		// Racing acquirers, in one process: exactly one holds it.
		const racers = 6
		var wg sync.WaitGroup
		leases := make([]*store.Lease, racers)
		errs := make([]error, racers)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				leases[i], errs[i] = st.AcquireLease(ctx, "_control/leases/race", 20*time.Second)
			}()
		}
		wg.Wait()
		held := 0
		for i, err := range errs {
			switch {
			case err == nil:
				held++
				defer leases[i].Release(ctx)
			case !errors.Is(err, store.ErrLeased):
				t.Errorf("racing acquirer %d: err = %v, want nil or ErrLeased", i, err)
			}
		}
		if held != 1 {
			t.Errorf("racing acquirers: %d hold the lease, want 1", held)
		}
	})

	t.Run("InvalidNames", func(t *testing.T) {
		bad := []string{
			"", "/abs", "a//b", "a/", "..", "../x", "a/../b", ".", "a/./b", "./a", ".hidden", "a/.meta",
			`a\b`, "a\x00b", "a\nb", "a\x7fb", "ends.", "bad\xffutf8",
			strings.Repeat("x", store.MaxSegmentLen+1), longName + "z",
		}
		for _, name := range bad {
			for _, c := range []struct {
				op  string
				err error
			}{
				{"Put", second(st.Put(ctx, name, strings.NewReader("x"), nil))},
				{"Get", third(st.Get(ctx, name))},
				{"Props", second(st.Props(ctx, name))},
				{"Delete", st.Delete(ctx, name)},
				{"Move src", st.Move(ctx, name, "names/ok", nil)},
				{"Move dst", st.Move(ctx, "names/ok", name, nil)},
				{"AcquireLease", second(st.AcquireLease(ctx, name, time.Minute))},
			} {
				if !errors.Is(c.err, store.ErrInvalidName) {
					t.Errorf("%s(%q): err = %v, want ErrInvalidName", c.op, name, c.err)
				}
			}
		}
		for _, prefix := range []string{"/", "/a", "a//", "../", "a/../", `a\`, ".x", "a/.m"} {
			if err := st.List(ctx, prefix, func(store.Item) error { return nil }); !errors.Is(err, store.ErrInvalidName) {
				t.Errorf("List(%q): err = %v, want ErrInvalidName", prefix, err)
			}
		}
		if _, err := st.Put(ctx, longName, strings.NewReader("x"), nil); err != nil {
			t.Errorf("Put of a %d-byte name: %v", len(longName), err)
		}
		if got, _ := mustGet(t, st, longName); got != "x" {
			t.Errorf("Get of a %d-byte name = %q, want %q", len(longName), got, "x")
		}
		if err := st.Delete(ctx, longName); err != nil {
			t.Errorf("Delete of a %d-byte name: %v", len(longName), err)
		}
	})

	t.Run("InvalidMetadata", func(t *testing.T) {
		for _, o := range []*store.PutOptions{
			{Metadata: map[string]string{"RunID": "x"}},
			{Metadata: map[string]string{"run-id": "x"}},
			{Metadata: map[string]string{"1st": "x"}},
			{Metadata: map[string]string{"k": "line\nbreak"}},
			{Metadata: map[string]string{"k": "nön-ascii"}},
			{Metadata: map[string]string{"k": " padded"}},
			{Metadata: map[string]string{"k": strings.Repeat("v", 9000)}},
			{ContentType: "text/plain\r\nX-Evil: 1"},
			{IfMatch: `"x"`, IfNoneMatch: true},
		} {
			if _, err := st.Put(ctx, "meta/x", strings.NewReader("x"), o); !errors.Is(err, store.ErrInvalidMetadata) {
				t.Errorf("Put with %+v: err = %v, want ErrInvalidMetadata", o, err)
			}
		}
		if _, err := st.Props(ctx, "meta/x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after rejected Puts: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("LargeObject", func(t *testing.T) {
		const size = 20 << 20
		rng := rand.New(rand.NewSource(1))
		want := sha256.New()
		p, err := st.Put(ctx, "large/blob.bin", io.TeeReader(io.LimitReader(rng, size), want), nil)
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		if p.Size != size {
			t.Errorf("Put size = %d, want %d", p.Size, size)
		}
		rc, gp, err := st.Get(ctx, "large/blob.bin")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		defer rc.Close()
		got := sha256.New()
		n, err := io.Copy(got, rc)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		if n != size || gp.Size != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Errorf("round trip: read %d bytes (props %d), sha256 %x; want %d bytes, sha256 %x", n, gp.Size, got.Sum(nil), size, want.Sum(nil))
		}
	})

	t.Run("StringHasNoSecrets", func(t *testing.T) {
		s := st.String()
		if s == "" || strings.Contains(s, "AccountKey") || strings.Contains(s, "Eby8vdM02x") || strings.Contains(s, "sig=") {
			t.Errorf("String() = %q, want a description without secrets", s)
		}
	})
}

// longName is a valid name of exactly MaxNameLen bytes with MaxSegmentLen-byte segments.
var longName = func() string {
	seg := strings.Repeat("y", store.MaxSegmentLen)
	n := strings.Repeat(seg+"/", store.MaxNameLen/(store.MaxSegmentLen+1))
	return n + strings.Repeat("z", store.MaxNameLen-len(n))
}()

func mustGet(t *testing.T, st contract, name string) (string, store.Props) {
	t.Helper()
	b, p, err := getBytes(context.Background(), st, name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return string(b), p
}

func getBytes(ctx context.Context, st contract, name string) ([]byte, store.Props, error) {
	rc, p, err := st.Get(ctx, name)
	if err != nil {
		return nil, p, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, p, err
}

func listNames(t *testing.T, st contract, prefix string) []string {
	t.Helper()
	var names []string
	if err := st.List(context.Background(), prefix, func(it store.Item) error {
		names = append(names, it.Name)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

func second[T any](_ T, err error) error { return err }

func third[T, U any](_ T, _ U, err error) error { return err }

// trickle returns data a chunk at a time, each chunk only after a receive from gate.
type trickle struct {
	data  []byte
	chunk int
	gate  <-chan struct{}
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	<-r.gate
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// failing fails every Read with err.
type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }

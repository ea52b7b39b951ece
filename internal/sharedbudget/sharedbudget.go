// Package sharedbudget holds the billing APIs' per-scope and per-tenant call budgets across
// instances.
package sharedbudget

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/store"
)

// Backend is what the budget needs from a store: conditional puts and reads (store.Blob,
// store.Local).
type Backend interface {
	Put(ctx context.Context, name string, r io.Reader, o *store.PutOptions) (store.Props, error)
	Get(ctx context.Context, name string) (io.ReadCloser, store.Props, error)
}

// Options set the budgets. Zero values mean the documented limits.
type Options struct {
	// Rates are the process budget's settings (internal/ratelimit): the per-scope limit by
	// scope kind, the tenant limit and the window are the same across instances.
	Rates ratelimit.Options
	// Margin is added to Window when calls are counted, to cover clock skew between instances
	// and the moment between a grant and the request reaching the API (default 2 s).
	Margin time.Duration
	// Prefix is the blob folder (default "_control/budget").
	Prefix string
	// Now is for tests.
	Now func() time.Time
}

// Budget is the shared budget. It is safe for concurrent use.
type Budget struct {
	be Backend
	o  Options

	mu    sync.Mutex
	stats Stats
}

// Stats count what this process's share of the budget did.
type Stats struct {
	Grants    int64         // calls granted
	Conflicts int64         // conditional writes lost to another instance (retried)
	Waited    time.Duration // time spent waiting for a grant
	Throttled int64         // 429 responses seen (each pauses the scope's budget for everyone)
}

// New returns a budget kept in be.
func New(be Backend, o *Options) *Budget {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Rates.PerTenant <= 0 {
		c.Rates.PerTenant = ratelimit.DefaultPerTenant
	}
	if c.Rates.Window <= 0 {
		c.Rates.Window = ratelimit.DefaultWindow
	}
	if c.Margin <= 0 {
		c.Margin = 2 * time.Second
	}
	if c.Prefix == "" {
		c.Prefix = "_control/budget"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Budget{be: be, o: c}
}

// Stats returns a snapshot of the counters.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// doc is a budget blob: the grant times (Unix ms) inside the counting window, and a pause.
type doc struct {
	Calls       []int64 `json:"calls"`
	PausedUntil int64   `json:"pausedUntil,omitempty"`
}

// blobName is the blob of a budget key.
func (b *Budget) blobName(key string) string {
	h := sha256.Sum256([]byte(key))
	return path.Join(b.o.Prefix, hex.EncodeToString(h[:12])+".json")
}

// maxBlobBytes bounds a budget blob (a few hundred timestamps).
const maxBlobBytes = 64 << 10

func (b *Budget) read(ctx context.Context, name string) (*doc, string, error) {
	rc, props, err := b.be.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return &doc{}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading call budget: %w", err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxBlobBytes))
	if err != nil {
		return nil, "", fmt.Errorf("reading call budget: %w", err)
	}
	var d doc
	if err := json.Unmarshal(raw, &d); err != nil {
		d = doc{} // a damaged blob is replaced (conditionally) by a fresh log
	}
	return &d, props.ETag, nil
}

// write stores d over the version etag ("" = create). It reports false when another instance
// wrote first.
func (b *Budget) write(ctx context.Context, name string, d *doc, etag string) (bool, error) {
	raw, _ := json.Marshal(d)
	_, err := b.be.Put(ctx, name, bytes.NewReader(raw), &store.PutOptions{ContentType: "application/json", IfMatch: etag, IfNoneMatch: etag == ""})
	if errors.Is(err, store.ErrPrecondition) {
		b.mu.Lock()
		b.stats.Conflicts++
		b.mu.Unlock()
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("writing call budget: %w", err)
	}
	return true, nil
}

// Acquire waits until key's budget (limit calls per window) has room and records one call in it.
func (b *Budget) Acquire(ctx context.Context, key string, limit int) error {
	name := b.blobName(key)
	span := (b.o.Rates.Window + b.o.Margin).Milliseconds()
	start := b.o.Now()
	for {
		d, etag, err := b.read(ctx, name)
		if err != nil {
			return err
		}
		now := b.o.Now().UnixMilli()
		kept := d.Calls[:0]
		for _, t := range d.Calls {
			if t > now-span {
				kept = append(kept, t)
			}
		}
		d.Calls = kept
		var wait time.Duration
		switch {
		case d.PausedUntil > now:
			wait = time.Duration(d.PausedUntil-now) * time.Millisecond
		case len(d.Calls) >= limit:
			wait = time.Duration(d.Calls[len(d.Calls)-limit]+span-now) * time.Millisecond
		default:
			d.Calls = append(d.Calls, now)
			ok, err := b.write(ctx, name, d, etag)
			if err != nil {
				return err
			}
			if ok {
				b.mu.Lock()
				b.stats.Grants++
				b.stats.Waited += b.o.Now().Sub(start)
				b.mu.Unlock()
				return nil
			}
			// Another instance wrote first: read again after a short random pause.
			wait = time.Duration(rand.Int64N(int64(20 * time.Millisecond)))
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Pause stops everyone's calls on key until until (a 429's retry-after).
func (b *Budget) Pause(ctx context.Context, key string, until time.Time) error {
	name := b.blobName(key)
	for try := 0; try < 10; try++ {
		d, etag, err := b.read(ctx, name)
		if err != nil {
			return err
		}
		if d.PausedUntil >= until.UnixMilli() {
			return nil
		}
		d.PausedUntil = until.UnixMilli()
		ok, err := b.write(ctx, name, d, etag)
		if err != nil || ok {
			return err
		}
	}
	return errors.New("pausing call budget: kept losing to other instances")
}

// TenantKey is the budget key of the tenant.
const TenantKey = "tenant"

// Policy returns the pipeline policy. Add it to ClientOptions.PerRetryPolicies after the
// process's ratelimit policy, so that every attempt, once the process's own spacing let it go,
// takes a grant from the scope's and the tenant's shared budget right before it is sent.
func (b *Budget) Policy() policy.Policy { return policyFunc(b.do) }

type policyFunc func(*policy.Request) (*http.Response, error)

func (f policyFunc) Do(r *policy.Request) (*http.Response, error) { return f(r) }

func (b *Budget) do(req *policy.Request) (*http.Response, error) {
	ctx := req.Raw().Context()
	sk := ratelimit.ScopeKey(req.Raw().URL.Path)
	scopeKey := "scope:" + sk
	scopeRate := b.o.Rates.Rate(ratelimit.KindOf(sk))
	// Each grant is logged at the time it is taken; the request must follow within Margin/2 for
	// the log to count it where the API does. When the second grant took longer than that, the
	// first one is too old: take that one again, until the last grant came quickly. (The
	// superseded grants are spent, so the budget is never exceeded, only underused.)
	keys := [2]string{scopeKey, TenantKey}
	limits := [2]int{scopeRate, b.o.Rates.PerTenant}
	if err := b.Acquire(ctx, keys[0], limits[0]); err != nil {
		return nil, err
	}
	for i := 1; ; i++ {
		t0 := b.o.Now()
		if err := b.Acquire(ctx, keys[i%2], limits[i%2]); err != nil {
			return nil, err
		}
		if b.o.Now().Sub(t0) <= b.o.Margin/2 {
			break
		}
	}
	resp, err := req.Next()
	if err == nil && resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		d := ratelimit.RetryAfter(resp.Header)
		if d <= 0 {
			d = b.o.Rates.Window / time.Duration(max(scopeRate, 1))
		}
		b.mu.Lock()
		b.stats.Throttled++
		b.mu.Unlock()
		key := scopeKey
		if strings.Contains(strings.ToLower(fmt.Sprint(resp.Header)), "tenant-retry-after") {
			key = TenantKey
		}
		_ = b.Pause(context.WithoutCancel(ctx), key, b.o.Now().Add(d)) // best effort: the local budget pauses too
	}
	return resp, err
}

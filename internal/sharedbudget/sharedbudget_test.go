package sharedbudget

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/ratelimit"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }

// grantsHold runs instances budgets of one backend, each with workers callers taking grants, for
// at least d and until every instance has had two grants (at most a minute, so a loaded machine
// slows the test down instead of failing it), and checks that no window holds more than limit
// grants over all instances and that no instance was starved. The margin covers the time from a
// grant's timestamp to the moment the caller sees it, as the API would see the call.
func grantsHold(t *testing.T, be Backend, instances, workers, limit int, window, margin, d time.Duration) {
	t.Helper()
	var mu sync.Mutex
	var times []time.Time
	perInstance := make([]int, instances)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	enough := func() bool { // under mu
		if time.Since(begin) < d {
			return false
		}
		for _, n := range perInstance {
			if n < 2 {
				return false
			}
		}
		return true
	}
	var wg sync.WaitGroup
	for i := 0; i < instances; i++ {
		b := New(be, &Options{Rates: ratelimit.Options{PerScope: limit, PerTenant: 1000, Window: window}, Margin: margin, Prefix: "budget-" + t.Name()})
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if err := b.Acquire(ctx, "scope:/subscriptions/x", limit); err != nil {
						return
					}
					mu.Lock()
					times = append(times, time.Now())
					perInstance[i]++
					if enough() {
						cancel()
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(begin)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	peak := 0
	for i := range times {
		n := sort.Search(len(times), func(j int) bool { return !times[j].Before(times[i].Add(window)) }) - i
		peak = max(peak, n)
	}
	t.Logf("%d instances × %d callers: %d grants in %.1f windows (per instance %v), peak %d per window (limit %d)",
		instances, workers, len(times), float64(elapsed)/float64(window), perInstance, peak, limit)
	if peak > limit {
		t.Errorf("a window held %d grants, limit %d", peak, limit)
	}
	for i, n := range perInstance {
		if n < 2 {
			t.Errorf("instance %d had %d grants in %s: starved by the others", i, n, elapsed.Round(time.Millisecond))
		}
	}
}

func TestSharedAcrossInstancesLocal(t *testing.T) {
	be, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	grantsHold(t, be, 3, 3, 10, time.Second, 300*time.Millisecond, 4*time.Second)
}

func TestSharedAcrossInstancesAzurite(t *testing.T) {
	az := azuritetest.Start(t)
	be, err := store.NewBlob(context.Background(), &store.BlobOptions{ConnectionString: az.ConnectionString(), Container: "sharedbudget"})
	if err != nil {
		t.Fatal(err)
	}
	// The margin covers a conditional write on a loaded machine (the default, 2 s, covers Azure).
	grantsHold(t, be, 3, 2, 10, time.Second, 300*time.Millisecond, 4*time.Second)
}

func TestPauseStopsEveryone(t *testing.T) {
	be, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o := &Options{Rates: ratelimit.Options{Window: time.Second}}
	a, b := New(be, o), New(be, o)
	ctx := context.Background()
	until := time.Now().Add(300 * time.Millisecond)
	if err := a.Pause(ctx, TenantKey, until); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx, TenantKey, 100); err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(until) {
		t.Error("a grant before the pause another instance set ended")
	}
}

// TestPolicyPerKindAcrossInstances: two instances' pipelines calling one subscription scope get
// the subscription rate between them, not each.
func TestPolicyPerKindAcrossInstances(t *testing.T) {
	be, err := store.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	}))
	defer srv.Close()
	const window = 500 * time.Millisecond
	rates := ratelimit.Options{PerKind: map[scope.Kind]int{scope.Subscription: 3}, PerTenant: 100, Window: window}
	url := srv.URL + "/subscriptions/11111111-1111-1111-1111-111111111111/providers/Microsoft.Consumption/usageDetails"
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		b := New(be, &Options{Rates: rates, Margin: 200 * time.Millisecond})
		pl := runtime.NewPipeline("test", "v0", runtime.PipelineOptions{}, &policy.ClientOptions{
			PerRetryPolicies: []policy.Policy{b.Policy()}, Transport: srv.Client(), Retry: policy.RetryOptions{MaxRetries: -1}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5; n++ {
				req, err := runtime.NewRequest(context.Background(), http.MethodGet, url)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := pl.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for i := range times {
		if n := sort.Search(len(times), func(j int) bool { return !times[j].Before(times[i].Add(window)) }) - i; n > 3 {
			t.Fatalf("%d calls of one subscription within %s across two instances, limit 3", n, window)
		}
	}
	if len(times) != 10 {
		t.Errorf("%d calls, want 10", len(times))
	}
}

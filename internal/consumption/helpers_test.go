package consumption

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
)

// testToken is the bearer token test clients send.
const testToken = "test-token"

// collector is a Handler that keeps copies of everything it is given.
type collector struct {
	records   [][]byte
	pages     []paging.Page
	failAfter int   // Record fails once this many records were taken (0 = never)
	recordErr error // the error it fails with
	pageErr   error // PageDone's error
}

func (c *collector) Record(_ context.Context, raw []byte) error {
	if c.failAfter > 0 && len(c.records) >= c.failAfter {
		return c.recordErr
	}
	c.records = append(c.records, append([]byte(nil), raw...))
	return nil
}

func (c *collector) PageDone(_ context.Context, p paging.Page) error {
	c.pages = append(c.pages, p)
	return c.pageErr
}

// testOptions are fast retry settings for tests against a loopback server.
func testOptions(endpoint string) *Options {
	return &Options{
		Endpoint: endpoint,
		ClientOptions: policy.ClientOptions{
			Retry: policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Second},
		},
	}
}

// newTestClient returns a client for endpoint with fast retries and the static test token;
// edit adjusts the options first.
func newTestClient(t *testing.T, endpoint string, edit func(*Options)) *Client {
	t.Helper()
	o := testOptions(endpoint)
	if edit != nil {
		edit(o)
	}
	c, err := NewClient(mgmt.StaticToken(testToken), o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// recordingCredential returns a fixed token and records the scopes it was asked for.
type recordingCredential struct {
	mu     sync.Mutex
	scopes [][]string
}

func (r *recordingCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scopes = append(r.scopes, o.Scopes)
	return azcore.AccessToken{Token: testToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// countingHandler wraps h and counts the requests it serves.
type countingHandler struct {
	n atomic.Int64
	h http.HandlerFunc
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h(w, r)
}

// must returns v and panics on err, for values fixed in the test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var errStop = errors.New("handler says stop")

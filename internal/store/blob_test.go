package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/usage-export/usage-export/internal/azurite"
	"github.com/usage-export/usage-export/internal/azurite/azuritetest"
	"github.com/usage-export/usage-export/internal/store"
)

// newBlob returns a Blob store on a new container of the test binary's Azurite, with the
// smallest block size so that uploads have many blocks.
func newBlob(t *testing.T) *store.Blob {
	t.Helper()
	srv := azuritetest.Start(t)
	st, err := store.NewBlob(context.Background(), &store.BlobOptions{
		ConnectionString: srv.ConnectionString(),
		Container:        randomContainer(t),
		BlockSize:        1 << 20,
		Concurrency:      2,
	})
	if err != nil {
		t.Fatalf("NewBlob: %v", err)
	}
	return st
}

func randomContainer(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "test-" + hex.EncodeToString(b[:])
}

func TestBlobAcceptance(t *testing.T) {
	t.Parallel()
	acceptanceTest(t, newBlob(t))
}

// TestBlobLeaseExpires waits out Azure's shortest lease (15 s): a lease that is not renewed
// can be taken by another holder, and the old holder's Renew then fails with ErrLeased. It
// runs in parallel with the rest of the package.
func TestBlobLeaseExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newBlob(t)
	l1, err := st.AcquireLease(ctx, "lease/expiring", time.Second) // clamped to 15 s
	if err != nil {
		t.Fatal(err)
	}
	if l1.TTL() != 15*time.Second {
		t.Errorf("TTL = %v, want 15s (Azure's minimum)", l1.TTL())
	}
	if _, err := st.AcquireLease(ctx, "lease/expiring", time.Second); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("second AcquireLease before expiry: err = %v, want ErrLeased", err)
	}
	deadline := time.Now().Add(l1.TTL() + 10*time.Second)
	var l2 *store.Lease
	for {
		l2, err = st.AcquireLease(ctx, "lease/expiring", time.Second)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrLeased) || time.Now().After(deadline) {
			t.Fatalf("AcquireLease after expiry: %v", err)
		}
		time.Sleep(500 * time.Millisecond) // polling Azurite's clock; there is no event to wait on
	}
	defer l2.Release(ctx)
	if err := l1.Renew(ctx); !errors.Is(err, store.ErrLeased) {
		t.Errorf("Renew of the expired, retaken lease: err = %v, want ErrLeased", err)
	}
	if err := st.Delete(ctx, "lease/expiring"); !errors.Is(err, store.ErrLeased) {
		t.Errorf("Delete of a leased blob: err = %v, want ErrLeased", err)
	}
}

// TestBlobErrors checks the classification of Azure errors: the sentinel and the azcore
// error are both in the chain.
func TestBlobErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newBlob(t)
	_, err := st.Props(ctx, "nope")
	var re *azcore.ResponseError
	if !errors.Is(err, store.ErrNotFound) || !errors.As(err, &re) || re.StatusCode != 404 {
		t.Fatalf("Props of a missing blob: err = %v, want ErrNotFound wrapping a 404 *azcore.ResponseError", err)
	}
	if !strings.HasPrefix(err.Error(), `props "nope": `) {
		t.Errorf("error text %q, want the operation and name first", err.Error())
	}
}

// TestBlobExistingContainer opens a store twice on one container: the second finds it.
func TestBlobExistingContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := azuritetest.Start(t)
	name := randomContainer(t)
	for i := range 2 {
		st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: srv.ConnectionString(), Container: name})
		if err != nil {
			t.Fatalf("NewBlob %d: %v", i, err)
		}
		if _, err := st.Put(ctx, "x", strings.NewReader("x"), nil); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
}

func TestNewBlobOptions(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		o    *store.BlobOptions
	}{
		{"nil", nil},
		{"no endpoint", &store.BlobOptions{Container: "c-ok"}},
		{"both", &store.BlobOptions{Container: "c-ok", ConnectionString: "UseDevelopmentStorage=true", AccountURL: "http://127.0.0.1:1/"}},
		{"bad container", &store.BlobOptions{Container: "Bad_Name", ConnectionString: "UseDevelopmentStorage=true"}},
		{"short container", &store.BlobOptions{Container: "ab", ConnectionString: "UseDevelopmentStorage=true"}},
		{"relative url", &store.BlobOptions{Container: "c-ok", AccountURL: "account.blob"}},
	} {
		if _, err := store.NewBlob(ctx, c.o); err == nil {
			t.Errorf("NewBlob(%s): err = nil, want an error", c.name)
		}
	}
}

// TestBlobSecretsStayOut points stores with a key or a SAS at a closed port and checks that
// neither String nor the error names the secret.
func TestBlobSecretsStayOut(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	const key = "c2VjcmV0LWtleS1tYXRlcmlhbC1mb3ItdGhlLXRlc3Q="
	const sig = "SECRETSIGNATUREVALUE"
	noRetry := &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
	for _, o := range []*store.BlobOptions{
		{ConnectionString: "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=" + key + ";BlobEndpoint=http://" + closed + "/acct;"},
		{ConnectionString: "BlobEndpoint=http://" + closed + "/acct;SharedAccessSignature=sv=2022-11-02&ss=b&sig=" + sig},
		{AccountURL: "http://" + closed + "/acct?sv=2022-11-02&ss=b&sig=" + sig},
	} {
		o.Container = "c-secret"
		o.ClientOptions = noRetry
		_, err := store.NewBlob(ctx, o)
		if err == nil {
			t.Fatalf("NewBlob against a closed port: err = nil, want an error")
		}
		for _, secret := range []string{key, sig} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains a secret", err.Error())
			}
		}
		var ne net.Error
		if !errors.As(err, &ne) && !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error %q lost its cause", err.Error())
		}
	}
}

func TestRedactConnectionString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{
			"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc+/==;EndpointSuffix=core.windows.net",
			"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=core.windows.net",
		},
		{
			"BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=xyz%3D",
			"BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=***",
		},
		{"https://a.blob.core.windows.net/c?sv=1&sig=abc&se=2", "https://a.blob.core.windows.net/c?sv=1&sig=***&se=2"},
		{"accountkey=lower;", "accountkey=***;"},
		{"UseDevelopmentStorage=true", "UseDevelopmentStorage=true"},
		{"", ""},
	} {
		if got := store.RedactConnectionString(c.in); got != c.want {
			t.Errorf("RedactConnectionString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestBlobDevelopmentStorage checks that UseDevelopmentStorage=true means the emulator's
// account on 127.0.0.1:10000: an Azurite there (started here when the port is free, or
// already running, e.g. by .ci/run) must answer.
func TestBlobDevelopmentStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if l, err := net.Listen("tcp", "127.0.0.1:10000"); err == nil {
		l.Close()
		azuritetest.Fresh(t, &azurite.Options{Port: 10000})
	}
	st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: "UseDevelopmentStorage=true", Container: randomContainer(t)})
	if err != nil {
		t.Fatalf("NewBlob(UseDevelopmentStorage=true): %v", err)
	}
	if want := "at http://127.0.0.1:10000/devstoreaccount1"; !strings.HasSuffix(st.String(), want) {
		t.Errorf("String() = %q, want it to end %q", st.String(), want)
	}
	if _, err := st.Put(ctx, "x", strings.NewReader("x"), nil); err != nil {
		t.Errorf("Put: %v", err)
	}
}

package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
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

// getFaults is a transport to Azurite that disturbs downloads of one blob: before the first
// one it runs overwrite (a concurrent writer between Get's HEAD and its download), and it gives
// the answers of the first relabel downloads another ETag (what Azurite's download that
// overlaps a block-list commit answers: the old body with the new ETag and metadata).
type getFaults struct {
	path      string
	overwrite func()
	relabel   int

	mu        sync.Mutex
	downloads int
}

func (f *getFaults) Do(req *http.Request) (*http.Response, error) {
	download := req.Method == http.MethodGet && req.URL.Query().Get("comp") == "" && strings.HasSuffix(req.URL.Path, f.path)
	f.mu.Lock()
	n := f.downloads
	if download {
		f.downloads++
	}
	f.mu.Unlock()
	if download && n == 0 && f.overwrite != nil {
		f.overwrite()
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil && download && n < f.relabel && resp.StatusCode == http.StatusOK {
		resp.Header.Set("ETag", `"0x1D00000000TORN"`)
	}
	return resp, err
}

// TestBlobGetRereadsChangedBlob checks that Get returns body and properties of one version
// when the blob changes under it: it reads again after a 412 and after an answer whose ETag is
// not the one it pinned, and gives up with an error after five reads.
func TestBlobGetRereadsChangedBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := azuritetest.Start(t)
	container := randomContainer(t)
	plain, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: srv.ConnectionString(), Container: container})
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, body string) store.Props {
		t.Helper()
		p, err := plain.Put(ctx, name, strings.NewReader(body), &store.PutOptions{Metadata: map[string]string{"v": body}})
		if err != nil {
			t.Fatalf("Put %s: %v", name, err)
		}
		return p
	}
	for _, c := range []struct {
		name      string
		overwrite bool
		relabel   int
		want      string // the body (and metadata v) Get returns; "" = an error
		downloads int
	}{
		{name: "overwritten before the download", overwrite: true, want: "new", downloads: 2},
		{name: "answer of another version once", relabel: 1, want: "old", downloads: 2},
		{name: "another version every time", relabel: 100, downloads: 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "get/" + strings.ReplaceAll(c.name, " ", "-")
			put(name, "old")
			f := &getFaults{path: "/" + name, relabel: c.relabel}
			var last store.Props
			if c.overwrite {
				f.overwrite = func() { last = put(name, "new") }
			}
			st, err := store.NewBlob(ctx, &store.BlobOptions{ConnectionString: srv.ConnectionString(), Container: container,
				ClientOptions: &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Transport: f}}})
			if err != nil {
				t.Fatal(err)
			}
			rc, p, err := st.Get(ctx, name)
			if c.want == "" {
				if err == nil {
					rc.Close()
					t.Fatalf("Get: err = nil, want an error")
				}
				if !strings.Contains(err.Error(), "changed during each of 5 reads") {
					t.Errorf("Get: err = %v, want it to say the blob changed during each of 5 reads", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				body, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				cur, err := plain.Props(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if string(body) != c.want || p.Metadata["v"] != c.want || p.ETag != cur.ETag || p.Size != int64(len(c.want)) {
					t.Errorf("Get = %q, props %+v; want %q with v=%s, ETag %s", body, p, c.want, c.want, cur.ETag)
				}
				if c.overwrite && p.ETag != last.ETag {
					t.Errorf("Get's ETag %s, want the overwrite's %s", p.ETag, last.ETag)
				}
			}
			if f.downloads != c.downloads {
				t.Errorf("%d downloads, want %d", f.downloads, c.downloads)
			}
		})
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

package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
)

const (
	// DefaultBlockSize is the upload block size: memory per Put is BlockSize × Concurrency.
	DefaultBlockSize = 4 << 20
	// DefaultConcurrency is the number of blocks a Put stages at once.
	DefaultConcurrency = 4
	// minLeaseTTL and maxLeaseTTL are Azure's bounds for a finite lease.
	minLeaseTTL = 15 * time.Second
	maxLeaseTTL = 60 * time.Second
	// listPageSize is the page size of a listing (Azure's maximum).
	listPageSize = 5000
	// getAttempts bounds how often Get reads a blob that is overwritten while it is read.
	getAttempts = 5

	// devAccountName and devAccountKey are the Azure Storage emulator's well-known, public
	// development account, used for UseDevelopmentStorage=true.
	devAccountName = "devstoreaccount1"
	devAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	// devBlobEndpoint is the emulator's default blob endpoint.
	devBlobEndpoint = "http://127.0.0.1:10000/" + devAccountName
)

// BlobOptions configure NewBlob. Give AccountURL (with Credential, or with a SAS in its query
// and no Credential) or ConnectionString, not both.
type BlobOptions struct {
	// AccountURL is the blob service URL, e.g. https://<account>.blob.core.windows.net/.
	AccountURL string
	// Credential authenticates AccountURL requests (managed identity in production).
	Credential azcore.TokenCredential
	// ConnectionString is an account connection string (Azurite and development), including
	// "UseDevelopmentStorage=true".
	ConnectionString string
	// Container is the container name; it is created if missing, unless NoCreate.
	Container string
	// NoCreate makes a missing container an error (readers such as verify and status must not
	// create what they only read).
	NoCreate bool
	// ClientOptions are passed to the azblob client; nil means its defaults.
	ClientOptions *azblob.ClientOptions
	// BlockSize is the upload block size in bytes; 0 means DefaultBlockSize. Azure's SDK uses
	// at least 1 MiB.
	BlockSize int64
	// Concurrency is the number of blocks staged at once; 0 means DefaultConcurrency.
	Concurrency int
}

// Blob keeps objects as block blobs in one container.
//
// Put streams through blockblob.UploadStream: blocks are staged as they are read and the
// block list is committed once at the end, together with metadata, content type and the
// If-Match/If-None-Match conditions, so the blob changes atomically and a failed Put changes
// nothing. Memory per Put is BlockSize × Concurrency.
//
// Move streams src into dst the same way (one commit), then deletes src if it is still the
// version that was copied. A server-side copy was not used: Copy Blob is not atomic for large
// blobs, and Put Block From URL needs a source SAS or an OAuth source token.
//
// Leases are blob leases on the lease object (created empty if missing) with a TTL clamped to
// Azure's 15–60 s range; the holder renews.
type Blob struct {
	cont        *container.Client
	desc        string
	blockSize   int64
	concurrency int
	secrets     []string
}

// NewBlob connects to the container described by o and creates it when it does not exist.
func NewBlob(ctx context.Context, o *BlobOptions) (*Blob, error) {
	if o == nil {
		return nil, errors.New("new blob store: no options")
	}
	if err := validateContainer(o.Container); err != nil {
		return nil, fmt.Errorf("new blob store: %w", err)
	}
	b := &Blob{blockSize: o.BlockSize, concurrency: o.Concurrency}
	if b.blockSize <= 0 {
		b.blockSize = DefaultBlockSize
	}
	if b.concurrency <= 0 {
		b.concurrency = DefaultConcurrency
	}
	copts := (*container.ClientOptions)(o.ClientOptions)
	var err error
	switch {
	case o.ConnectionString != "" && o.AccountURL != "":
		return nil, errors.New("new blob store: both a connection string and an account URL")
	case o.ConnectionString != "":
		var endpoint string
		cs := expandDevelopmentStorage(o.ConnectionString)
		endpoint, b.secrets = parseConnectionString(cs)
		b.desc = fmt.Sprintf("azure blob container %q at %s", o.Container, endpoint)
		b.cont, err = container.NewClientFromConnectionString(cs, o.Container, copts)
	case o.AccountURL != "":
		u, perr := url.Parse(o.AccountURL)
		if perr != nil || u.Scheme == "" || u.Host == "" {
			return nil, errors.New("new blob store: account URL is not an absolute URL")
		}
		if sig := u.Query().Get("sig"); sig != "" {
			b.secrets = append(b.secrets, sig, url.QueryEscape(sig))
		}
		q := u.RawQuery
		u.RawQuery = ""
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + o.Container
		b.desc = fmt.Sprintf("azure blob container %q at %s://%s", o.Container, u.Scheme, u.Host)
		u.RawQuery = q
		if o.Credential != nil {
			b.cont, err = container.NewClient(u.String(), o.Credential, copts)
		} else {
			b.cont, err = container.NewClientWithNoCredential(u.String(), copts)
		}
	default:
		return nil, errors.New("new blob store: neither a connection string nor an account URL")
	}
	if err != nil {
		return nil, b.wrap(fmt.Errorf("new blob store: %w", err))
	}
	if err := b.ensureContainer(ctx, !o.NoCreate); err != nil {
		return nil, err
	}
	return b, nil
}

// String describes the store for logs: container and endpoint, no credentials.
func (b *Blob) String() string { return b.desc }

var containerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

func validateContainer(name string) error {
	if !containerName.MatchString(name) {
		return fmt.Errorf("container name %q: want 3-63 lowercase letters, digits and single hyphens", truncate(name))
	}
	return nil
}

// expandDevelopmentStorage turns "UseDevelopmentStorage=true" into the emulator's account.
func expandDevelopmentStorage(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(k, "UseDevelopmentStorage") && strings.EqualFold(v, "true") {
			return "DefaultEndpointsProtocol=http;AccountName=" + devAccountName +
				";AccountKey=" + devAccountKey + ";BlobEndpoint=" + devBlobEndpoint + ";"
		}
	}
	return cs
}

// parseConnectionString returns a loggable endpoint and the secrets to keep out of errors.
func parseConnectionString(cs string) (endpoint string, secrets []string) {
	kv := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = v
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "accountkey":
			secrets = append(secrets, v)
		case "sharedaccesssignature":
			secrets = append(secrets, v)
			if q, err := url.ParseQuery(v); err == nil && q.Get("sig") != "" {
				secrets = append(secrets, q.Get("sig"), url.QueryEscape(q.Get("sig")))
			}
		}
	}
	switch {
	case kv["blobendpoint"] != "":
		if u, err := url.Parse(kv["blobendpoint"]); err == nil {
			u.RawQuery = ""
			return u.String(), secrets
		}
		return "(unparsable blob endpoint)", secrets
	case kv["accountname"] != "":
		proto, suffix := kv["defaultendpointsprotocol"], kv["endpointsuffix"]
		if proto == "" {
			proto = "https"
		}
		if suffix == "" {
			suffix = "core.windows.net"
		}
		return fmt.Sprintf("%s://%s.blob.%s", proto, kv["accountname"], suffix), secrets
	}
	return "(no endpoint)", secrets
}

// ensureContainer creates the container when it does not exist and create is set; otherwise a
// missing container is an error wrapping ErrNotFound.
func (b *Blob) ensureContainer(ctx context.Context, create bool) error {
	_, err := b.cont.GetProperties(ctx, nil)
	if err == nil {
		return nil
	}
	if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return b.wrap(fmt.Errorf("new blob store: checking container: %w", err))
	}
	if !create {
		return fmt.Errorf("new blob store: %s does not exist: %w", b.desc, ErrNotFound)
	}
	_, err = b.cont.Create(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return b.wrap(fmt.Errorf("new blob store: creating container: %w", err))
	}
	return nil
}

// classify wraps err with the store's sentinel for its Azure error code, the operation
// prefix, and redaction. The azblob error stays in the chain.
func (b *Blob) classify(op, name string, err error) error {
	var sentinel error
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
		sentinel = ErrNotFound
	case bloberror.HasCode(err, bloberror.LeaseAlreadyPresent, bloberror.LeaseIDMissing,
		bloberror.LeaseIDMismatchWithBlobOperation, bloberror.LeaseIDMismatchWithLeaseOperation,
		bloberror.LeaseLost, bloberror.LeaseIsBrokenAndCannotBeRenewed):
		sentinel = ErrLeased
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists,
		bloberror.TargetConditionNotMet):
		sentinel = ErrPrecondition
	}
	if sentinel != nil {
		return b.wrap(fmt.Errorf("%s %q: %w: %w", op, name, sentinel, err))
	}
	return b.wrap(fmt.Errorf("%s %q: %w", op, name, err))
}

// wrap removes secrets from err's text and keeps its chain.
func (b *Blob) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, secrets: b.secrets}
}

// toAzMeta converts metadata for the SDK.
func toAzMeta(m map[string]string) map[string]*string {
	if len(m) == 0 {
		return nil
	}
	am := make(map[string]*string, len(m))
	for k, v := range m {
		am[k] = &v
	}
	return am
}

// fromAzMeta converts SDK metadata; keys are lowercased because the SDK returns them
// as canonical HTTP header names ("Runid").
func fromAzMeta(am map[string]*string) map[string]string {
	if len(am) == 0 {
		return nil
	}
	m := make(map[string]string, len(am))
	for k, v := range am {
		if v != nil {
			m[strings.ToLower(k)] = *v
		}
	}
	return m
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func accessConditions(o *PutOptions) *blob.AccessConditions {
	if o == nil || (o.IfMatch == "" && !o.IfNoneMatch) {
		return nil
	}
	mac := &blob.ModifiedAccessConditions{}
	if o.IfMatch != "" {
		etag := azcore.ETag(o.IfMatch)
		mac.IfMatch = &etag
	}
	if o.IfNoneMatch {
		etag := azcore.ETagAny
		mac.IfNoneMatch = &etag
	}
	return &blob.AccessConditions{ModifiedAccessConditions: mac}
}

// Put streams r into name; the blob becomes visible with its metadata only when the block
// list is committed after r's end. o's conditions are checked at that commit.
func (b *Blob) Put(ctx context.Context, name string, r io.Reader, o *PutOptions) (Props, error) {
	o, err := checkPut(name, o)
	if err != nil {
		return Props{}, err
	}
	return b.upload(ctx, "put", name, r, o.ContentType, o.Metadata, o)
}

func (b *Blob) upload(ctx context.Context, op, name string, r io.Reader, contentType string, meta map[string]string, o *PutOptions) (Props, error) {
	cr := &ctxReader{ctx: ctx, r: r}
	uo := &blockblob.UploadStreamOptions{
		BlockSize:        b.blockSize,
		Concurrency:      b.concurrency,
		Metadata:         toAzMeta(meta),
		AccessConditions: accessConditions(o),
	}
	if contentType != "" {
		uo.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &contentType}
	}
	resp, err := b.cont.NewBlockBlobClient(name).UploadStream(ctx, cr, uo)
	if err != nil {
		if o != nil && o.IfMatch != "" && bloberror.HasCode(err, bloberror.BlobNotFound) {
			// If-Match on a missing blob failed its condition, whichever code the service picks.
			return Props{}, b.wrap(fmt.Errorf("%s %q: %w: %w", op, name, ErrPrecondition, err))
		}
		return Props{}, b.classify(op, name, err)
	}
	return Props{
		Size:         cr.n,
		ETag:         string(deref(resp.ETag)),
		LastModified: deref(resp.LastModified),
		Metadata:     cloneMeta(meta),
		ContentType:  contentType,
	}, nil
}

// Get opens the blob for reading, with its properties, or ErrNotFound. The caller closes the
// reader.
//
// Body and properties are of one version: Get reads the blob's ETag (Get Blob Properties),
// downloads with If-Match on it, and accepts the response only when the response's ETag is that
// one. On Azure a single download is already one version, so the check always passes there
// and the cost is one extra HEAD per Get. The Azurite we test against (3.37) is not atomic:
// its download takes the blob's block list and length first, then reads the body (and, for a
// body up to 4 MiB, reads it once more for its MD5), and only then takes ETag and metadata from
// its live record, which a concurrent Put Block List rewrites in place. A download that overlaps
// a commit then returns the old body with the new ETag and metadata. The If-Match is checked
// before the block list is taken, so a response whose ETag is still the pinned one has not
// overlapped a commit. When the blob changed (412, or another ETag in the response) Get starts
// again, at most getAttempts times in all.
func (b *Blob) Get(ctx context.Context, name string) (io.ReadCloser, Props, error) {
	if err := ValidateName(name); err != nil {
		return nil, Props{}, fmt.Errorf("get: %w", err)
	}
	bc := b.cont.NewBlobClient(name)
	var changed error
	for range getAttempts {
		pp, err := bc.GetProperties(ctx, nil)
		if err != nil {
			return nil, Props{}, b.classify("get", name, err)
		}
		etag := deref(pp.ETag)
		resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag},
		}})
		if bloberror.HasCode(err, bloberror.ConditionNotMet) {
			changed = err // overwritten between the two requests
			continue
		}
		if err != nil {
			return nil, Props{}, b.classify("get", name, err)
		}
		if got := deref(resp.ETag); got != etag {
			resp.Body.Close()
			changed = fmt.Errorf("download pinned to ETag %s answered with ETag %s", etag, got)
			continue
		}
		return &redactingBody{rc: resp.Body, b: b, name: name}, Props{
			Size:         deref(resp.ContentLength),
			ETag:         string(etag),
			LastModified: deref(resp.LastModified),
			Metadata:     fromAzMeta(resp.Metadata),
			ContentType:  deref(resp.ContentType),
		}, nil
	}
	return nil, Props{}, b.wrap(fmt.Errorf("get %q: the blob changed during each of %d reads: %w", name, getAttempts, changed))
}

// redactingBody keeps secrets out of read errors (a transport error names the URL).
type redactingBody struct {
	rc   io.ReadCloser
	b    *Blob
	name string
}

func (r *redactingBody) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.wrap(fmt.Errorf("get %q: reading: %w", r.name, err))
	}
	return n, err
}

func (r *redactingBody) Close() error { return r.b.wrap(r.rc.Close()) }

// Props returns the blob's properties, or ErrNotFound.
func (b *Blob) Props(ctx context.Context, name string) (Props, error) {
	if err := ValidateName(name); err != nil {
		return Props{}, fmt.Errorf("props: %w", err)
	}
	resp, err := b.cont.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return Props{}, b.classify("props", name, err)
	}
	return Props{
		Size:         deref(resp.ContentLength),
		ETag:         string(deref(resp.ETag)),
		LastModified: deref(resp.LastModified),
		Metadata:     fromAzMeta(resp.Metadata),
		ContentType:  deref(resp.ContentType),
	}, nil
}

// List calls fn for every blob whose name starts with prefix, in lexical order, page by page.
// An error from fn stops the listing and is returned.
func (b *Blob) List(ctx context.Context, prefix string, fn func(Item) error) error {
	if err := validatePrefix(prefix); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	o := &container.ListBlobsFlatOptions{
		Include:    container.ListBlobsInclude{Metadata: true},
		MaxResults: to32(listPageSize),
	}
	if prefix != "" {
		o.Prefix = &prefix
	}
	pager := b.cont.NewListBlobsFlatPager(o)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				return nil // no container, no blobs
			}
			return b.classify("list", prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			if it == nil || it.Name == nil {
				continue
			}
			item := Item{Name: *it.Name}
			if p := it.Properties; p != nil {
				item.Size = deref(p.ContentLength)
				item.ETag = string(deref(p.ETag))
				item.LastModified = deref(p.LastModified)
				item.ContentType = deref(p.ContentType)
			}
			item.Metadata = fromAzMeta(it.Metadata)
			if err := fn(item); err != nil {
				return err
			}
		}
	}
	return nil
}

func to32(n int32) *int32 { return &n }

// Delete removes the blob; a missing blob is not an error. A blob leased by someone else is
// ErrLeased.
func (b *Blob) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return b.delete(ctx, name, "")
}

func (b *Blob) delete(ctx context.Context, name string, ifMatch string) error {
	var o *blob.DeleteOptions
	if ifMatch != "" {
		etag := azcore.ETag(ifMatch)
		o = &blob.DeleteOptions{AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag},
		}}
	}
	_, err := b.cont.NewBlobClient(name).Delete(ctx, o)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return b.classify("delete", name, err)
	}
	return nil
}

// Move replaces dst with src's content and metadata (overlaid with o.Metadata; o.ContentType,
// if set, replaces src's) in one block-list commit, then deletes src unless it changed in
// between (then ErrPrecondition, with dst written and src kept). o's conditions apply to dst.
// If src is missing and dst already carries o.Metadata["runid"], the move happened before and
// Move returns nil; otherwise a missing src is ErrNotFound.
func (b *Blob) Move(ctx context.Context, src, dst string, o *PutOptions) error {
	o, err := checkMove(src, dst, o)
	if err != nil {
		return err
	}
	body, sp, err := b.Get(ctx, src)
	if errors.Is(err, ErrNotFound) {
		dp, derr := b.Props(ctx, dst)
		if derr == nil && moved(dp, o) {
			return nil
		}
		return fmt.Errorf("move %q to %q: %w", src, dst, err)
	}
	if err != nil {
		return fmt.Errorf("move %q to %q: %w", src, dst, err)
	}
	defer body.Close()
	contentType := sp.ContentType
	if o.ContentType != "" {
		contentType = o.ContentType
	}
	if _, err := b.upload(ctx, "move to", dst, body, contentType, mergeMeta(sp.Metadata, o.Metadata), o); err != nil {
		return fmt.Errorf("move %q: %w", src, err)
	}
	if err := b.delete(ctx, src, sp.ETag); err != nil {
		return fmt.Errorf("move %q to %q: source: %w", src, dst, err)
	}
	return nil
}

// AcquireLease takes a blob lease on name, creating an empty blob there if missing. ttl is
// clamped to Azure's 15–60 s; the holder must Renew within it. Another holder's lease gives
// ErrLeased.
func (b *Blob) AcquireLease(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("acquire lease: %w", err)
	}
	ttl = clampTTL(ttl)
	bb := b.cont.NewBlockBlobClient(name)
	lc, err := lease.NewBlobClient(bb, nil) // a random lease id
	if err != nil {
		return nil, b.classify("acquire lease", name, err)
	}
	secs := int32(ttl / time.Second)
	_, err = lc.AcquireLease(ctx, secs, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		empty := &blockblob.UploadOptions{AccessConditions: accessConditions(&PutOptions{IfNoneMatch: true})}
		_, cerr := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(nil)), empty)
		if cerr != nil && !bloberror.HasCode(cerr, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet, bloberror.LeaseIDMissing) {
			return nil, b.classify("acquire lease: creating", name, cerr)
		}
		_, err = lc.AcquireLease(ctx, secs, nil)
	}
	if err != nil {
		return nil, b.classify("acquire lease", name, err)
	}
	return &Lease{
		id:   deref(lc.LeaseID()),
		name: name,
		ttl:  ttl,
		renew: func(ctx context.Context) error {
			if _, err := lc.RenewLease(ctx, nil); err != nil {
				return b.classify("renew lease", name, err)
			}
			return nil
		},
		release: func(ctx context.Context) error {
			_, err := lc.ReleaseLease(ctx, nil)
			if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
				return b.classify("release lease", name, err)
			}
			return nil
		},
	}, nil
}

// clampTTL rounds ttl into Azure's finite lease range.
func clampTTL(ttl time.Duration) time.Duration {
	ttl = ttl.Round(time.Second)
	if ttl < minLeaseTTL {
		return minLeaseTTL
	}
	if ttl > maxLeaseTTL {
		return maxLeaseTTL
	}
	return ttl
}

// StageBlock uploads block n of name (Put Block); it is not visible until CommitBlocks.
func (b *Blob) StageBlock(ctx context.Context, name string, n int, data []byte) error {
	if err := checkBlock("stage block", name, n); err != nil {
		return err
	}
	body := streaming.NopCloser(bytes.NewReader(data))
	if _, err := b.cont.NewBlockBlobClient(name).StageBlock(ctx, blockID(n), body, nil); err != nil {
		return b.classify("stage block of", name, err)
	}
	return nil
}

// CommitBlocks makes name the blocks 0..n-1 in order (one Put Block List: atomic), with o's
// metadata, content type and conditions. n = 0 commits an empty object.
func (b *Blob) CommitBlocks(ctx context.Context, name string, n int, o *PutOptions) (Props, error) {
	if err := checkBlock("commit blocks", name, max(0, n-1)); err != nil {
		return Props{}, err
	}
	if err := validatePut(o); err != nil {
		return Props{}, fmt.Errorf("commit blocks %q: %w", name, err)
	}
	if o == nil {
		o = &PutOptions{}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = blockID(i)
	}
	co := &blockblob.CommitBlockListOptions{Metadata: toAzMeta(o.Metadata), AccessConditions: accessConditions(o)}
	if o.ContentType != "" {
		co.HTTPHeaders = &blob.HTTPHeaders{BlobContentType: &o.ContentType}
	}
	bc := b.cont.NewBlockBlobClient(name)
	if _, err := bc.CommitBlockList(ctx, ids, co); err != nil {
		if o.IfMatch != "" && bloberror.HasCode(err, bloberror.BlobNotFound) {
			return Props{}, b.wrap(fmt.Errorf("commit blocks %q: %w: %w", name, ErrPrecondition, err))
		}
		return Props{}, b.classify("commit blocks of", name, err)
	}
	return b.Props(ctx, name) // the size is the blocks' sum, which only the service knows here
}

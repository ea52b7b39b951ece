// Package store keeps named objects in a local directory (Local) or an Azure Blob Storage container
// (Blob) behind one contract.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Errors that callers branch on with errors.Is.
var (
	// ErrNotFound reports that the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLeased reports that another holder has the lease, or that the object is leased by
	// someone else and cannot be changed.
	ErrLeased = errors.New("leased by another holder")
	// ErrPrecondition reports that an If-Match or If-None-Match condition failed.
	ErrPrecondition = errors.New("precondition failed")
	// ErrInvalidName reports a name or prefix that breaks the naming rules of ValidateName.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidMetadata reports a metadata key or value, or a content type, that cannot be
	// stored the same way in both stores.
	ErrInvalidMetadata = errors.New("invalid metadata")
)

const (
	// MaxNameLen is the longest name in bytes (Azure's limit for a blob name).
	MaxNameLen = 1024
	// MaxSegmentLen is the longest segment in bytes: Local needs room below the file
	// system's 255-byte file name limit for its hidden temporary and sidecar names.
	MaxSegmentLen = 200
	// maxMetadataBytes is Azure's limit for the sum of metadata key and value sizes.
	maxMetadataBytes = 8 << 10
	// MetaRunID is the metadata key that Move's idempotency check compares.
	MetaRunID = "runid"
)

// PutOptions are the options of Put and Move; nil means none.
type PutOptions struct {
	// Metadata is stored with the object. Keys are lowercase identifiers ([a-z_][a-z0-9_]*);
	// values are printable ASCII without leading or trailing spaces; 8 KiB in all.
	Metadata map[string]string
	// ContentType is stored with the object; empty means none (Move keeps the source's).
	ContentType string
	// IfMatch, when not empty, makes the write succeed only if the object's ETag equals it.
	IfMatch string
	// IfNoneMatch makes the write succeed only if the object does not exist (create only).
	IfNoneMatch bool
}

// Props are an object's properties.
type Props struct {
	// Size is the content length in bytes; for Put, the bytes written.
	Size int64
	// ETag changes whenever the content or metadata is replaced; opaque.
	ETag string
	// LastModified is when the object was last written.
	LastModified time.Time
	// Metadata is the object's metadata, keys in lowercase; nil when there is none.
	Metadata map[string]string
	// ContentType is the stored content type, or empty.
	ContentType string
}

// Item is one listed object.
type Item struct {
	Name string
	Props
}

// Lease is a held lease on one name. Its methods are safe for concurrent use.
type Lease struct {
	id   string
	name string
	ttl  time.Duration

	mu       sync.Mutex
	released bool
	renew    func(ctx context.Context) error
	release  func(ctx context.Context) error
}

// ID returns the lease's id.
func (l *Lease) ID() string { return l.id }

// Name returns the leased name.
func (l *Lease) Name() string { return l.name }

// TTL returns the lease's duration as the store applies it (Blob rounds into 15–60 s; Local
// records it only: a local lease lasts until Release or the holding process's death).
func (l *Lease) TTL() time.Duration { return l.ttl }

// Renew extends the lease by its TTL. It fails with ErrLeased when the lease was lost to
// another holder, and with an error after Release.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("renewing lease on %q: already released", l.name)
	}
	return l.renew(ctx)
}

// Keep renews the lease every third of its TTL until the returned stop is called. The returned
// context is ctx, cancelled with the renewal's error as its cause when a renewal fails (the lease
// was lost, so the holder must stop writing). stop ends the renewals and releases the lease; it
// returns the release's error.
func (l *Lease) Keep(ctx context.Context) (context.Context, func() error) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l.ttl <= 0 {
			<-ctx.Done()
			return
		}
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := l.Renew(ctx); err != nil {
					cancel(fmt.Errorf("lease on %q lost: %w", l.name, err))
					return
				}
			}
		}
	}()
	return ctx, func() error {
		cancel(nil)
		<-done
		return l.Release(context.WithoutCancel(ctx))
	}
}

// Hold is Keep for a holder that can only log a failed release: release stops the renewals and
// releases the lease, logging a failure as the warning "releasing <what>" (the lease then expires
// by itself within its TTL).
func (l *Lease) Hold(ctx context.Context, what string) (context.Context, func()) {
	log := zerolog.Ctx(ctx)
	ctx, stop := l.Keep(ctx)
	return ctx, func() {
		if err := stop(); err != nil {
			log.Warn().Err(err).Msg("releasing " + what)
		}
	}
}

// Release gives the lease up. A second Release is a no-op.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	if err := l.release(ctx); err != nil {
		return err
	}
	l.released = true
	return nil
}

// ValidateName reports whether name is a valid object name, with an error wrapping
// ErrInvalidName if not. A valid name is at most MaxNameLen bytes of '/'-separated segments of
// at most MaxSegmentLen bytes;
// no segment is empty or begins with '.' (which also excludes "." and ".."; Local keeps its
// own files under dot names); it does not end with '.' (Azure's URL normalisation drops it); and
// it holds no '\\' and no control character. These rules keep
// a name inside the store on every backend: no traversal, no absolute path, no aliasing.
func ValidateName(name string) error {
	err := checkName(name)
	if err == nil && strings.HasSuffix(name, ".") {
		err = errors.New("trailing '.'")
	}
	if err != nil {
		return fmt.Errorf("%w %q: %s", ErrInvalidName, truncate(name), err.Error())
	}
	return nil
}

// validatePrefix checks a List prefix: empty, or a name, or a name followed by '/'.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if err := checkName(p); err != nil {
		return fmt.Errorf("%w prefix %q: %s", ErrInvalidName, truncate(prefix), err.Error())
	}
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	case strings.HasPrefix(name, "/"):
		return errors.New("leading '/'")
	case strings.Contains(name, "//"):
		return errors.New("empty segment")
	case strings.HasSuffix(name, "/"):
		return errors.New("trailing '/'")
	case strings.ContainsRune(name, '\\'):
		return errors.New("backslash")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			return errors.New("control or invalid character")
		}
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return fmt.Errorf("segment %q begins with '.'", truncate(seg))
		}
		if len(seg) > MaxSegmentLen {
			return fmt.Errorf("segment longer than %d bytes", MaxSegmentLen)
		}
	}
	return nil
}

// truncate shortens a string for an error message.
func truncate(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

var metaKey = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// checkPut checks a Put of name (the same for both stores) and returns its options, never nil.
func checkPut(name string, o *PutOptions) (*PutOptions, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	if err := validatePut(o); err != nil {
		return nil, fmt.Errorf("put %q: %w", name, err)
	}
	if o == nil {
		o = &PutOptions{}
	}
	return o, nil
}

// validatePut checks the options shared by Put and Move.
func validatePut(o *PutOptions) error {
	if o == nil {
		return nil
	}
	total := 0
	for k, v := range o.Metadata {
		if !metaKey.MatchString(k) {
			return fmt.Errorf("%w: key %q is not a lowercase identifier", ErrInvalidMetadata, truncate(k))
		}
		if !printable(v) || strings.TrimSpace(v) != v {
			return fmt.Errorf("%w: value of %q is not trimmed printable ASCII", ErrInvalidMetadata, k)
		}
		total += len(k) + len(v)
	}
	if total > maxMetadataBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMetadata, total, maxMetadataBytes)
	}
	if !printable(o.ContentType) {
		return fmt.Errorf("%w: content type is not printable ASCII", ErrInvalidMetadata)
	}
	if o.IfMatch != "" && o.IfNoneMatch {
		return fmt.Errorf("%w: IfMatch and IfNoneMatch together", ErrInvalidMetadata)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// cloneMeta copies m; nil or empty gives nil.
func cloneMeta(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// mergeMeta returns base overlaid with over.
func mergeMeta(base, over map[string]string) map[string]string {
	m := cloneMeta(base)
	for k, v := range over {
		if m == nil {
			m = make(map[string]string, len(over))
		}
		m[k] = v
	}
	return m
}

// moved reports whether a Move whose source is gone already happened: dst carries the run id
// that the move was asked to stamp.
func moved(dst Props, o *PutOptions) bool {
	if o == nil || o.Metadata[MetaRunID] == "" {
		return false
	}
	return dst.Metadata[MetaRunID] == o.Metadata[MetaRunID]
}

// ctxReader fails a Read once ctx is done, so a Put from a slow reader is cancellable.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Secrets in connection strings and URLs.
var (
	connSecret = regexp.MustCompile(`(?i)\b(AccountKey|SharedAccessSignature)=[^;]*`)
	sigParam   = regexp.MustCompile(`(?i)([?&;]sig=)[^&;"'\s]*`)
)

// RedactConnectionString returns s with the values of AccountKey and SharedAccessSignature
// (and any SAS "sig" parameter) replaced by "***", for logging. The rest is kept.
func RedactConnectionString(s string) string {
	s = connSecret.ReplaceAllString(s, "${1}=***")
	return sigParam.ReplaceAllString(s, "${1}***")
}

// redactedError keeps err's chain for errors.Is/As and removes secrets from its text.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	msg := RedactConnectionString(e.err.Error())
	for _, s := range e.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}

func (e *redactedError) Unwrap() error { return e.err }

// checkMove validates Move's arguments for both stores and returns the options to use.
func checkMove(src, dst string, o *PutOptions) (*PutOptions, error) {
	if err := ValidateName(src); err != nil {
		return nil, fmt.Errorf("move: %w", err)
	}
	if err := ValidateName(dst); err != nil {
		return nil, fmt.Errorf("move: %w", err)
	}
	if err := validatePut(o); err != nil {
		return nil, fmt.Errorf("move %q to %q: %w", src, dst, err)
	}
	if src == dst {
		return nil, fmt.Errorf("move %q: %w: source and destination are the same", src, ErrInvalidName)
	}
	if o == nil {
		o = &PutOptions{}
	}
	return o, nil
}

// MaxSmallObject bounds the objects read whole with ReadSmall: manifests, checkpoints and other
// control documents.
const MaxSmallObject = 64 << 20

// Getter is what ReadSmall needs from a store.
type Getter interface {
	Get(ctx context.Context, name string) (io.ReadCloser, Props, error)
}

// ReadSmall reads a whole small object (at most MaxSmallObject bytes). Get's errors, ErrNotFound
// among them, are returned as they are, for the caller to wrap.
func ReadSmall(ctx context.Context, st Getter, name string) ([]byte, error) {
	rc, _, err := st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, MaxSmallObject))
}

package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Local keeps objects as plain files under a directory, so the directory can be read as a
// data lake with no knowledge of this package.
//
// Layout. Object "a/b/c.jsonl.gz" is the file dir/a/b/c.jsonl.gz. Everything else the store
// keeps is hidden under dot names, which object names cannot have (ValidateName), so a reader
// globbing "*.jsonl.gz" or skipping dot files sees objects only:
//   - dir/a/b/.c.jsonl.gz.meta.json: the sidecar with metadata and content type. It holds one
//     entry per content version, keyed by that version's ETag (the current one and the one it
//     replaced), so a reader that opened either version finds its own metadata while a Put is
//     renaming the pair into place, and a crash between the two renames loses nothing.
//   - dir/a/b/.c.jsonl.gz.tmp-*: a Put in progress (removed when it fails).
//   - dir/.commit.lock: flock'd for the short check-and-rename step of every write, which makes
//     If-Match/If-None-Match atomic between goroutines and processes.
//
// Extended attributes were not used: they are missing or limited on tmpfs, overlay and network
// file systems, and a sidecar needs nothing from the file system but rename.
//
// The ETag is derived from the file's inode, size and modification time: it changes with every
// Put and survives a Move (a rename keeps the inode).
//
// Leases are flock(2) locks on the lease object's file (created empty if missing): the kernel
// frees them when the holding process dies, even by SIGKILL. Every AcquireLease opens its own
// file description, so two goroutines of one process exclude each other too. The TTL is
// recorded but not enforced: a local lease lasts until Release or process exit. Do not Put,
// Move onto or Delete a name that is used for leases.
//
// A name cannot be both an object and a prefix of other objects' names ("a" and "a/b"), since
// it cannot be both a file and a directory.
type Local struct {
	root string
}

const (
	// localTmpInfix marks a Put's temporary file: ".<base>.tmp-<random>".
	localTmpInfix = ".tmp-"
	// localMetaSuffix ends a sidecar's name: ".<base>.meta.json".
	localMetaSuffix = ".meta.json"
	// localBlocksSuffix ends the hidden directory of a name's staged blocks.
	localBlocksSuffix = ".blocks"
	// localCommitLock is the root-level lock file taken for each write's commit step.
	localCommitLock = ".commit.lock"
	// localMkdirTries bounds the retries when a concurrent Delete prunes a directory that a Put
	// has just created.
	localMkdirTries = 50
	// localPropsTries bounds the re-reads when content and sidecar change under a reader.
	localPropsTries = 5
	// localFileMode is the mode of object files, readable by lake readers.
	localFileMode = 0o644
	// localDirMode is the mode of directories the store creates.
	localDirMode = 0o755
)

// NewLocal returns a store over dir, which is created if missing.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("new local store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("new local store: %w", err)
	}
	if err := os.MkdirAll(abs, localDirMode); err != nil {
		return nil, fmt.Errorf("new local store: %w", err)
	}
	return &Local{root: abs}, nil
}

// String describes the store for logs.
func (l *Local) String() string { return "local directory " + l.root }

// Dir returns the store's root directory.
func (l *Local) Dir() string { return l.root }

// sidecar is the JSON document kept beside an object.
type sidecar struct {
	Entries []sidecarEntry `json:"entries"`
}

type sidecarEntry struct {
	ETag        string            `json:"etag"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

func (l *Local) path(name string) string { return filepath.Join(l.root, filepath.FromSlash(name)) }

func metaPath(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+localMetaSuffix)
}

// etagOf derives the ETag from a file's identity and version.
func etagOf(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf(`"%x-%x-%x"`, ino, fi.ModTime().UnixNano(), fi.Size())
}

// readSidecar returns the sidecar of the object at p; a missing or unreadable one is empty.
func readSidecar(p string) sidecar {
	var sc sidecar
	b, err := os.ReadFile(metaPath(p))
	if err == nil {
		_ = json.Unmarshal(b, &sc) // a damaged sidecar means no metadata, not a failed read
	}
	return sc
}

func (sc sidecar) entry(etag string) (sidecarEntry, bool) {
	for _, e := range sc.Entries {
		if e.ETag == etag {
			return e, true
		}
	}
	return sidecarEntry{}, false
}

func propsOf(fi fs.FileInfo, e sidecarEntry) Props {
	return Props{
		Size:         fi.Size(),
		ETag:         etagOf(fi),
		LastModified: fi.ModTime().UTC(),
		Metadata:     cloneMeta(e.Metadata),
		ContentType:  e.ContentType,
	}
}

// statObject stats the object file; a directory or a missing file is ErrNotFound.
func statObject(p, name string) (fs.FileInfo, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && !fi.Mode().IsRegular()) {
		return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	return fi, err
}

// propsAt reads the props of the file version described by fi, re-reading when the sidecar
// has already moved on to a newer version (restat gives the current version).
func propsAt(p string, fi fs.FileInfo, restat func() (fs.FileInfo, error)) (Props, error) {
	for i := 0; ; i++ {
		e, ok := readSidecar(p).entry(etagOf(fi))
		if ok || i == localPropsTries || restat == nil {
			return propsOf(fi, e), nil
		}
		nfi, err := restat()
		if err != nil {
			return Props{}, err
		}
		if etagOf(nfi) == etagOf(fi) {
			return propsOf(fi, e), nil // no sidecar entry for this version: no metadata
		}
		fi = nfi
	}
}

// Props returns the object's properties, or ErrNotFound.
func (l *Local) Props(ctx context.Context, name string) (Props, error) {
	if err := ValidateName(name); err != nil {
		return Props{}, fmt.Errorf("props: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Props{}, fmt.Errorf("props %q: %w", name, err)
	}
	p := l.path(name)
	restat := func() (fs.FileInfo, error) { return statObject(p, name) }
	fi, err := restat()
	if err != nil {
		return Props{}, fmt.Errorf("props: %w", err)
	}
	pr, err := propsAt(p, fi, restat)
	if err != nil {
		return Props{}, fmt.Errorf("props: %w", err)
	}
	return pr, nil
}

// Get opens the object for reading, with the properties of the version opened, or
// ErrNotFound. The caller closes the reader.
func (l *Local) Get(ctx context.Context, name string) (io.ReadCloser, Props, error) {
	if err := ValidateName(name); err != nil {
		return nil, Props{}, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, Props{}, fmt.Errorf("get %q: %w", name, err)
	}
	p := l.path(name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, Props{}, fmt.Errorf("get %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, Props{}, fmt.Errorf("get %q: %w", name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w", ErrNotFound)
	}
	if err != nil {
		f.Close()
		return nil, Props{}, fmt.Errorf("get %q: %w", name, err)
	}
	// The open file is fixed; its sidecar entry is either present or was never written.
	pr, _ := propsAt(p, fi, nil)
	return f, pr, nil
}

// List calls fn for every object whose name starts with prefix, in lexical order. An error
// from fn stops the listing and is returned.
func (l *Local) List(ctx context.Context, prefix string, fn func(Item) error) error {
	if err := validatePrefix(prefix); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	names, err := l.walk(ctx, prefix)
	if err != nil {
		return err
	}
	for _, n := range names {
		fi, err := os.Stat(n.p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the walk
		}
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
		pr, err := propsAt(n.p, fi, func() (fs.FileInfo, error) { return statObject(n.p, n.name) })
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
		if err := fn(Item{Name: n.name, Props: pr}); err != nil {
			return err
		}
	}
	return nil
}

// found is an object a listing walk found: its name and its file.
type found struct {
	name string
	p    string
}

// walk returns the objects whose names start with prefix, sorted by name.
func (l *Local) walk(ctx context.Context, prefix string) ([]found, error) {
	// Walk from the deepest directory that every match lies under.
	base := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i]
	}
	start := l.root
	if base != "" {
		start = l.path(base)
	}
	var names []found
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
				return fs.SkipAll
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == start {
			if !d.IsDir() {
				return fs.SkipAll // the base is an object, not a directory: no name has it as a folder
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			// Prune directories that cannot hold a match.
			if !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(name, prefix) {
			names = append(names, found{name, p})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].name < names[j].name })
	return names, nil
}

// Put writes r to name atomically and returns the new object's properties. The content goes
// to a temporary file in the target directory, is fsync'd, and is renamed into place under
// the commit lock after the If-Match/If-None-Match check. On any error, including a cancelled
// ctx, the old object is untouched.
func (l *Local) Put(ctx context.Context, name string, r io.Reader, o *PutOptions) (Props, error) {
	o, err := checkPut(name, o)
	if err != nil {
		return Props{}, err
	}
	p := l.path(name)
	tmp, err := l.createTemp(p)
	if err != nil {
		return Props{}, fmt.Errorf("put %q: %w", name, err)
	}
	committed := false
	defer func() {
		if !committed {
			os.Remove(tmp.Name())
		}
	}()
	fi, err := writeTemp(ctx, tmp, r)
	if err != nil {
		return Props{}, fmt.Errorf("put %q: %w", name, err)
	}
	entry := sidecarEntry{ETag: etagOf(fi), ContentType: o.ContentType, Metadata: cloneMeta(o.Metadata)}
	err = l.commit(ctx, func() error {
		cur, err := checkConditions(p, name, o)
		if err != nil {
			return err
		}
		if err := writeSidecar(p, entry, cur); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			return err
		}
		committed = true
		return syncDir(filepath.Dir(p))
	})
	if err != nil {
		return Props{}, fmt.Errorf("put %q: %w", name, err)
	}
	return propsOf(fi, entry), nil
}

// createTemp creates the temporary file for p, creating p's directory; it retries when a
// concurrent Delete prunes the directory in between.
func (l *Local) createTemp(p string) (*os.File, error) {
	dir := filepath.Dir(p)
	var err error
	for i := 0; i < localMkdirTries; i++ {
		// MkdirAll creates the missing directories one by one: a concurrent Delete can prune a
		// parent it just made before it makes the child (ENOENT from mkdir), and can prune dir
		// itself before the file is created in it. Both are retried; once the temporary file
		// exists, dir is not empty and prune leaves it alone.
		if err = os.MkdirAll(dir, localDirMode); err == nil {
			var f *os.File
			if f, err = os.CreateTemp(dir, "."+filepath.Base(p)+localTmpInfix+"*"); err == nil {
				return f, nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, err
}

// writeTemp copies r into f, syncs and closes it, and returns its final FileInfo.
func writeTemp(ctx context.Context, f *os.File, r io.Reader) (fs.FileInfo, error) {
	_, err := io.Copy(f, &ctxReader{ctx: ctx, r: r})
	if err == nil {
		err = f.Chmod(localFileMode)
	}
	if err == nil {
		err = f.Sync()
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return fi, err
}

// checkConditions applies o's conditions to the object at p and returns the current
// version's sidecar entry (zero when there is no object).
func checkConditions(p, name string, o *PutOptions) (sidecarEntry, error) {
	fi, err := statObject(p, name)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return sidecarEntry{}, err
	}
	var cur sidecarEntry
	if exists {
		etag := etagOf(fi)
		cur, _ = readSidecar(p).entry(etag)
		cur.ETag = etag
	}
	switch {
	case o.IfNoneMatch && exists:
		return cur, fmt.Errorf("%w: object exists", ErrPrecondition)
	case o.IfMatch != "" && !exists:
		return cur, fmt.Errorf("%w: object does not exist", ErrPrecondition)
	case o.IfMatch != "" && cur.ETag != o.IfMatch:
		return cur, fmt.Errorf("%w: etag is %s, not %s", ErrPrecondition, cur.ETag, o.IfMatch)
	}
	return cur, nil
}

// writeSidecar atomically replaces p's sidecar with entries for the new version and the
// current one (if any).
func writeSidecar(p string, next, cur sidecarEntry) error {
	sc := sidecar{Entries: []sidecarEntry{next}}
	if cur.ETag != "" && cur.ETag != next.ETag {
		sc.Entries = append(sc.Entries, cur)
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	mp := metaPath(p)
	f, err := os.CreateTemp(filepath.Dir(p), filepath.Base(mp)+localTmpInfix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), mp)
}

// Delete removes the object; a missing object is not an error. Directories left empty are
// removed up to the store's root.
func (l *Local) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	p := l.path(name)
	err := l.commit(ctx, func() error {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			return nil // a prefix of other names, not an object
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return err
		}
		if err := os.Remove(metaPath(p)); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return err
		}
		if err := os.RemoveAll(blockDir(p)); err != nil { // blocks staged for p and never committed
			return err
		}
		l.prune(filepath.Dir(p))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	return nil
}

// prune removes dir and its parents while they are empty, stopping at the root. Callers hold
// the commit lock, so no Move is renaming into them; a Put creating its temporary file
// retries (createTemp).
func (l *Local) prune(dir string) {
	for dir != l.root && strings.HasPrefix(dir, l.root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// Move replaces dst with src's content and metadata (overlaid with o.Metadata; o.ContentType,
// if set, replaces src's), then removes src: one rename, so dst changes atomically. o's
// conditions apply to dst. If src is missing and dst already carries o.Metadata["runid"], the
// move happened before and Move returns nil; otherwise a missing src is ErrNotFound.
func (l *Local) Move(ctx context.Context, src, dst string, o *PutOptions) error {
	o, err := checkMove(src, dst, o)
	if err != nil {
		return err
	}
	sp, dp := l.path(src), l.path(dst)
	err = l.commit(ctx, func() error {
		sfi, err := statObject(sp, src)
		if errors.Is(err, ErrNotFound) {
			dfi, derr := statObject(dp, dst)
			if derr == nil {
				dprops, _ := propsAt(dp, dfi, nil)
				if moved(dprops, o) {
					return nil
				}
			}
			return err
		}
		if err != nil {
			return err
		}
		cur, err := checkConditions(dp, dst, o)
		if err != nil {
			return err
		}
		se, _ := readSidecar(sp).entry(etagOf(sfi))
		next := sidecarEntry{
			ETag:        etagOf(sfi), // a rename keeps inode, size and mtime
			ContentType: se.ContentType,
			Metadata:    mergeMeta(se.Metadata, o.Metadata),
		}
		if o.ContentType != "" {
			next.ContentType = o.ContentType
		}
		if err := os.MkdirAll(filepath.Dir(dp), localDirMode); err != nil {
			return err
		}
		// The destination's sidecar first: a crash before the rename leaves src in place
		// and dst readable with its own entry, and the move can be repeated.
		if err := writeSidecar(dp, next, cur); err != nil {
			return err
		}
		if err := os.Rename(sp, dp); err != nil {
			return err
		}
		if err := os.Remove(metaPath(sp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := syncDir(filepath.Dir(dp)); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(sp)); err != nil {
			return err
		}
		l.prune(filepath.Dir(sp))
		return nil
	})
	if err != nil {
		return fmt.Errorf("move %q to %q: %w", src, dst, err)
	}
	return nil
}

// commit runs fn holding the store-wide commit lock (an flock on the root's lock file).
// Every write's check-and-rename step is short, so the lock is taken blocking; ctx is only
// checked before.
func (l *Local) commit(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(l.root, localCommitLock), os.O_CREATE|os.O_RDWR, localFileMode)
	if err != nil {
		return fmt.Errorf("commit lock: %w", err)
	}
	defer f.Close() // closing the descriptor releases the flock
	if err := flock(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("commit lock: %w", err)
	}
	return fn()
}

// flock calls flock(2), retrying on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// AcquireLease takes the lease on name, creating an empty object there if missing. It
// returns ErrLeased at once when another holder (in this or another process) has it. ttl is
// recorded, not enforced: the lease lasts until Release or until the holding process exits.
func (l *Local) AcquireLease(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("acquire lease: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	p := l.path(name)
	var f *os.File
	err := l.commit(ctx, func() error {
		if err := os.MkdirAll(filepath.Dir(p), localDirMode); err != nil {
			return err
		}
		var err error
		f, err = os.OpenFile(p, os.O_CREATE|os.O_RDWR, localFileMode)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("acquire lease %q: %w", name, ErrLeased)
		}
		return nil, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	return &Lease{
		id:   uuid.NewString(),
		name: name,
		ttl:  ttl,
		renew: func(context.Context) error {
			return nil // the flock is held as long as f is open
		},
		release: func(context.Context) error {
			if err := f.Close(); err != nil {
				return fmt.Errorf("release lease %q: %w", name, err)
			}
			return nil
		},
	}, nil
}

// blockDir is the hidden directory holding the staged blocks of p: ".<base>.blocks".
func blockDir(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+localBlocksSuffix)
}

// StageBlock writes block n of name to a hidden file beside it (".<base>.blocks/<n>"); List,
// Get and Props do not see it.
func (l *Local) StageBlock(ctx context.Context, name string, n int, data []byte) error {
	if err := checkBlock("stage block", name, n); err != nil {
		return err
	}
	bp := filepath.Join(blockDir(l.path(name)), strconv.Itoa(n))
	tmp, err := l.createTemp(bp)
	if err != nil {
		return fmt.Errorf("stage block of %q: %w", name, err)
	}
	if _, err := writeTemp(ctx, tmp, bytes.NewReader(data)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("stage block of %q: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), bp); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("stage block of %q: %w", name, err)
	}
	return nil
}

// CommitBlocks makes name the staged blocks 0..n-1 in order: they are appended to one temporary
// file, which is then committed like Put (atomic rename under the commit lock, o's conditions
// checked there). The staged blocks are removed afterwards.
func (l *Local) CommitBlocks(ctx context.Context, name string, n int, o *PutOptions) (Props, error) {
	if err := checkBlock("commit blocks", name, max(0, n-1)); err != nil {
		return Props{}, err
	}
	bd := blockDir(l.path(name))
	files := make([]io.Reader, 0, n)
	for i := 0; i < n; i++ {
		f, err := os.Open(filepath.Join(bd, strconv.Itoa(i)))
		if errors.Is(err, fs.ErrNotExist) {
			return Props{}, fmt.Errorf("commit blocks %q: block %d was not staged: %w", name, i, ErrNotFound)
		}
		if err != nil {
			return Props{}, fmt.Errorf("commit blocks %q: %w", name, err)
		}
		defer f.Close()
		files = append(files, f)
	}
	props, err := l.Put(ctx, name, io.MultiReader(files...), o)
	if err != nil {
		return Props{}, fmt.Errorf("commit blocks: %w", err)
	}
	if err := os.RemoveAll(bd); err != nil {
		return props, fmt.Errorf("commit blocks %q: removing staged blocks: %w", name, err)
	}
	return props, nil
}

package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/internal/store"
)

// maxLine bounds one JSON line (a usage record is a few KB).
const maxLine = 16 << 20

// Part is what re-reading one part file found.
type Part struct {
	Bytes  int64
	Rows   int64
	SHA256 string
}

// ReadPart reads the body of a part file (gzip-compressed when gz), counting its bytes and
// hashing them (trailing bytes the decompressor does not need included), and calls line for
// each non-blank line; an error of line stops the read and is returned with the line's number.
func ReadPart(body io.Reader, gz bool, line func([]byte) error) (Part, error) {
	h := sha256.New()
	cnt := &counter{}
	tee := io.TeeReader(body, io.MultiWriter(h, cnt))
	var r = tee
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return Part{}, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var p Part
	for sc.Scan() {
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		p.Rows++
		if err := line(b); err != nil {
			return p, fmt.Errorf("line %d: %w", p.Rows, err)
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("reading lines: %w", err)
	}
	// Drain what the decompressor did not need (trailing bytes count in the hash).
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return p, err
	}
	p.Bytes = cnt.n
	p.SHA256 = hex.EncodeToString(h.Sum(nil))
	return p, nil
}

// Mismatches says how p differs from what a manifest lists for the part file name.
func (p Part) Mismatches(name string, byteCount int64, sha string, rows int64) []string {
	var out []string
	if p.Bytes != byteCount {
		out = append(out, fmt.Sprintf("%s: %d bytes, manifest says %d", name, p.Bytes, byteCount))
	}
	if p.SHA256 != sha {
		out = append(out, fmt.Sprintf("%s: sha256 %s, manifest says %s", name, p.SHA256, sha))
	}
	if p.Rows != rows {
		out = append(out, fmt.Sprintf("%s: %d rows, manifest says %d", name, p.Rows, rows))
	}
	return out
}

// Unlisted returns the part files (part-…) directly in the folder dir that listed does not
// hold.
func Unlisted(ctx context.Context, st Reader, dir string, listed map[string]bool) ([]string, error) {
	var out []string
	err := st.List(ctx, dir+"/", func(it store.Item) error {
		if path.Dir(it.Name) == dir && strings.HasPrefix(path.Base(it.Name), "part-") && !listed[it.Name] {
			out = append(out, it.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing partition: %w", err)
	}
	return out, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

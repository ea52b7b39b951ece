package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/usage-export/usage-export/internal/export"
)

// GzipResult is what the gzip-only child reports.
type GzipResult struct {
	In  int64 `json:"in"`  // JSON-lines bytes read
	Out int64 `json:"out"` // gzip bytes written
}

// GzipOnly compresses r as the exporter's parts are compressed (export.NewCompressor: level 0
// is the exporter's default, the day split's stateless stream) and discards the output: the
// physical floor of the exporter's work on the same bytes.
func GzipOnly(r io.Reader, level int) (GzipResult, error) {
	var cw countWriter
	gz, err := export.NewCompressor(&cw, level)
	if err != nil {
		return GzipResult{}, fmt.Errorf("gzip only: %w", err)
	}
	n, err := io.Copy(gz, r)
	if err != nil {
		return GzipResult{}, fmt.Errorf("gzip only: %w", err)
	}
	if err := gz.Close(); err != nil {
		return GzipResult{}, fmt.Errorf("gzip only: %w", err)
	}
	return GzipResult{In: n, Out: cw.n}, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// partFiles lists the exported parts under dir (the live tree, not the control tree), in name
// order.
func partFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "_control" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), "part-") && strings.HasSuffix(d.Name(), ".jsonl.gz") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// gzipOnly runs the gzip-only child over the JSON lines of the parts exported under dir, which
// the harness decompresses and pipes to the child's standard input.
func (r *runner) gzipOnly(ctx context.Context, name, dir string) (Row, int64, error) {
	parts, err := partFiles(dir)
	if err != nil || len(parts) == 0 {
		return Row{}, 0, fmt.Errorf("bench: %s: no parts under %s: %v", name, dir, err)
	}
	cmd := exec.CommandContext(ctx, r.o.Self, ModeGzip)
	cmd.Env = childEnv(r.o.Env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return Row{}, 0, fmt.Errorf("bench: %s: %w", name, err)
	}
	fed := make(chan error, 1)
	var lines int64
	go func() {
		defer stdin.Close()
		for _, p := range parts {
			n, err := gunzipTo(stdin, p)
			lines += n
			if err != nil {
				fed <- err
				return
			}
		}
		fed <- nil
	}()
	r.o.Logf("%s: %d parts piped to %s %s", name, len(parts), r.o.Self, ModeGzip)
	res, err := runChild(ctx, cmd)
	ferr := <-fed
	if err != nil {
		return Row{}, 0, fmt.Errorf("bench: %s: %w", name, err)
	}
	if ferr != nil {
		return Row{}, 0, fmt.Errorf("bench: %s: feeding the lines: %w", name, ferr)
	}
	var gr GzipResult
	if err := json.Unmarshal(res.Stdout, &gr); err != nil {
		return Row{}, 0, fmt.Errorf("bench: %s: reading its result: %w", name, err)
	}
	if gr.In != lines {
		return Row{}, 0, fmt.Errorf("bench: %s: compressed %d bytes of %d", name, gr.In, lines)
	}
	row := Row{Scenario: name, JSONBytes: gr.In, StoredBytes: gr.Out, Usage: res.Usage}
	r.o.Logf("%s: %s", name, row.brief())
	return row, lines, nil
}

// gunzipTo writes the decompressed content of the gzip file at path to w.
func gunzipTo(w io.Writer, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n, err := io.Copy(w, zr)
	if err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	return n, zr.Close()
}

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
)

// ModeFetchGzip is the fetch + gzip child: FetchGzip against a sandbox; prints FetchResult.
const ModeFetchGzip = "fetch-gzip"

// FetchOptions configure FetchGzip.
type FetchOptions struct {
	Endpoint   string // management endpoint (the sandbox), http on loopback
	Token      string // bearer token
	Scope      string // billing scope path
	From, To   time.Time
	Expand     string
	APIVersion string
	GzipLevel  int // export.NewCompressor level; 0 = the exporter's default (stateless day-split stream)
}

// FetchResult counts what FetchGzip read and wrote.
type FetchResult struct {
	Pages int64 `json:"pages"`
	In    int64 `json:"in"`  // response body bytes
	Out   int64 `json:"out"` // gzip bytes
}

// tailSize is how much of the end of a page FetchGzip keeps to find its nextLink.
const tailSize = 16 << 10

// FetchGzip is the floor under any exporter that reads the API over HTTP and writes gzip: it
// lists the scope's records of the dates page by page through the exporter's own HTTP client
// (mgmt.NoRedirects: its connection settings and read buffer) and compresses every response
// body at the exporter's gzip level as it arrives, discarding the output. It decodes nothing:
// the nextLink is read from the last bytes of the body, where the API and the sandbox put it.
// What an exporter costs beyond this is its own work: finding and validating the records,
// reading the manifest's fields, staging, hashing and storing the parts.
func FetchGzip(ctx context.Context, o FetchOptions) (FetchResult, error) {
	var res FetchResult
	var cw countWriter
	gz, err := export.NewCompressor(&cw, o.GzipLevel) // as the exporter compresses its parts
	if err != nil {
		return res, fmt.Errorf("fetch + gzip: %w", err)
	}
	client, ok := mgmt.NoRedirects(nil).(*http.Client)
	if !ok {
		return res, fmt.Errorf("fetch + gzip: unexpected transport")
	}
	q := url.Values{}
	q.Set("api-version", o.APIVersion)
	if o.Expand != "" {
		q.Set("$expand", o.Expand)
	}
	q.Set("$filter", fmt.Sprintf("properties/usageStart ge '%s' and properties/usageEnd le '%s'",
		o.From.Format(time.DateOnly), o.To.Format(time.DateOnly)))
	link := strings.TrimSuffix(o.Endpoint, "/") + o.Scope + "/providers/Microsoft.Consumption/usageDetails?" + q.Encode()
	tail := &tailWriter{buf: make([]byte, 0, 2*tailSize)}
	// Reads as large as the connection's buffer go straight into this one, without a copy.
	buf := make([]byte, mgmt.ReadBufferSize)
	for link != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
		if err != nil {
			return res, fmt.Errorf("fetch + gzip: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+o.Token)
		resp, err := client.Do(req)
		if err != nil {
			return res, fmt.Errorf("fetch + gzip: page %d: %w", res.Pages, err)
		}
		tail.buf = tail.buf[:0]
		n, err := io.CopyBuffer(io.MultiWriter(gz, tail), resp.Body, buf)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
		if err != nil {
			return res, fmt.Errorf("fetch + gzip: page %d: %w", res.Pages, err)
		}
		res.Pages++
		res.In += n
		if link, err = lastNextLink(tail.buf); err != nil {
			return res, fmt.Errorf("fetch + gzip: page %d: %w", res.Pages-1, err)
		}
	}
	if err := gz.Close(); err != nil {
		return res, fmt.Errorf("fetch + gzip: %w", err)
	}
	res.Out = cw.n
	return res, nil
}

// tailWriter keeps about the last tailSize bytes written to it.
type tailWriter struct{ buf []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	if len(p) >= tailSize {
		t.buf = append(t.buf[:0], p[len(p)-tailSize:]...)
		return len(p), nil
	}
	if len(t.buf)+len(p) > cap(t.buf) {
		t.buf = t.buf[:copy(t.buf, t.buf[len(t.buf)-(tailSize-len(p)):])]
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// lastNextLink reads the nextLink member at the end of a page ("" when null or absent).
func lastNextLink(tail []byte) (string, error) {
	const member = `"nextLink":`
	i := bytes.LastIndex(tail, []byte(member))
	if i < 0 {
		return "", nil
	}
	var link *string
	if err := json.NewDecoder(bytes.NewReader(tail[i+len(member):])).Decode(&link); err != nil {
		return "", fmt.Errorf("reading nextLink: %w", err)
	}
	if link == nil {
		return "", nil
	}
	return *link, nil
}

// RunFetchGzipMode is the fetch + gzip child: flags in args, the token from the caller (from
// EnvToken), the result as JSON on stdout.
func RunFetchGzipMode(ctx context.Context, args []string, token string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(ModeFetchGzip, flag.ContinueOnError)
	fs.SetOutput(stderr)
	l := newListingFlags(fs, "api-version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	from, to, err := l.dates()
	if err != nil {
		return fmt.Errorf("%s: %w", ModeFetchGzip, err)
	}
	res, err := FetchGzip(ctx, FetchOptions{
		Endpoint: *l.endpoint, Token: token, Scope: *l.scope, From: from, To: to,
		Expand: *l.expand, APIVersion: *l.version,
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// fetchGzip runs the fetch + gzip child against sb for period p.
func (r *runner) fetchGzip(ctx context.Context, name string, sb *sandbox.Server, p period.Period) (Row, error) {
	var fr FetchResult
	usage, err := r.listingChild(ctx, name, sb, listingArgs(ModeFetchGzip, sb, EAScope, p), &fr)
	if err != nil {
		return Row{}, err
	}
	row := Row{Scenario: name, JSONBytes: fr.In, StoredBytes: fr.Out, Usage: usage}
	r.o.Logf("%s: %d pages, %d bytes, wall %.2f s, CPU %.2f s, peak RSS %.1f MiB",
		name, fr.Pages, fr.In, row.Wall.Seconds(), row.CPU.Seconds(), row.MaxRSSMiB())
	return row, nil
}

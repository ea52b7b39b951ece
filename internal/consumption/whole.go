package consumption

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/paging"
)

// A page is handed on all or nothing. pagePolicy, a per-retry policy, reads the body of a 200
// answer whole into the request's pageRecorder (a pooled buffer) and decodes it there, keeping
// each record's bytes and member reports as slices of that buffer; List replays them to the
// Handler only once the page was complete and valid. A read error or an invalid page is an error
// of that try, which azcore's retry policy retries from the same link; the recorder is reset on
// every try, so nothing of a broken try survives. One decode per page, as when the body was
// streamed to the Handler directly.

// maxPooledPage: a page buffer larger than this is not kept for reuse.
const maxPooledPage = 16 << 20

// pageBuffers reuses page buffers across pages.
var pageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// recorderKey is the context key of a request's pageRecorder.
type recorderKey struct{}

// memberEvent is one RecordMember report.
type memberEvent struct {
	name, value  []byte
	inProperties bool
}

// recordEvent is one record: its bytes and the end of its member reports in events.
type recordEvent struct {
	raw       []byte
	eventsEnd int
}

// pageRecorder holds one page read whole: the body and what the decoder reported about it.
type pageRecorder struct {
	names   []string // the Handler's MemberNames, nil when it takes every member
	members bool     // the Handler is a MemberHandler
	body    *[]byte
	events  []memberEvent
	records []recordEvent
	next    string
}

func newPageRecorder(h paging.Handler) *pageRecorder {
	r := &pageRecorder{}
	if _, ok := h.(MemberHandler); ok {
		r.members = true
	}
	if mf, ok := h.(MemberFilter); ok {
		r.names = mf.MemberNames()
	}
	return r
}

// release returns the body buffer to the pool; the recorder must not be used afterwards.
func (r *pageRecorder) release() {
	if r.body != nil && cap(*r.body) <= maxPooledPage {
		pageBuffers.Put(r.body)
	}
	r.body, r.events, r.records = nil, nil, nil
}

// read reads body whole into the recorder's buffer (size hints the length, -1 when unknown).
func (r *pageRecorder) read(body io.Reader, size int64) error {
	if r.body == nil {
		r.body = pageBuffers.Get().(*[]byte)
	}
	b := (*r.body)[:0]
	if size > 0 && size <= MaxPageBytes && int64(cap(b)) < size+1 {
		b = make([]byte, 0, size+1) // +1: the read that sees io.EOF
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*r.body = b
			return err
		}
	}
	*r.body = b
	return nil
}

// decode decodes the buffered page, recording its records and member reports.
func (r *pageRecorder) decode(ctx context.Context) error {
	r.events, r.records, r.next = r.events[:0], r.records[:0], ""
	var h paging.Handler = (*recordingHandler)(r)
	if r.members {
		h = (*recordingMembers)(r)
		if r.names != nil {
			h = (*recordingFilter)(r)
		}
	}
	next, _, err := ParsePageBytes(ctx, *r.body, h)
	r.next = next
	return err
}

// replay hands the recorded records to h, with their member reports when h takes them.
func (r *pageRecorder) replay(ctx context.Context, h paging.Handler) (int, error) {
	mh, _ := h.(MemberHandler)
	e := 0
	for i, rec := range r.records {
		if mh != nil {
			for ; e < rec.eventsEnd; e++ {
				ev := &r.events[e]
				mh.RecordMember(ev.name, ev.value, ev.inProperties)
			}
		}
		if err := h.Record(ctx, rec.raw); err != nil {
			return i, fmt.Errorf("handling record %d: %w", i, err)
		}
	}
	return len(r.records), nil
}

// recordingHandler, recordingMembers and recordingFilter record what the decoder reports, as a
// Handler, a MemberHandler and a MemberFilter with the real Handler's names.
type (
	recordingHandler pageRecorder
	recordingMembers pageRecorder
	recordingFilter  pageRecorder
)

func (r *recordingHandler) Record(_ context.Context, raw []byte) error {
	r.records = append(r.records, recordEvent{raw: raw, eventsEnd: len(r.events)})
	return nil
}
func (r *recordingHandler) PageDone(context.Context, paging.Page) error { return nil }

func (r *recordingMembers) Record(ctx context.Context, raw []byte) error {
	return (*recordingHandler)(r).Record(ctx, raw)
}
func (r *recordingMembers) PageDone(context.Context, paging.Page) error { return nil }
func (r *recordingMembers) RecordMember(name, value []byte, inProperties bool) {
	r.events = append(r.events, memberEvent{name: name, value: value, inProperties: inProperties})
}

func (r *recordingFilter) Record(ctx context.Context, raw []byte) error {
	return (*recordingHandler)(r).Record(ctx, raw)
}
func (r *recordingFilter) PageDone(context.Context, paging.Page) error { return nil }
func (r *recordingFilter) RecordMember(name, value []byte, inProperties bool) {
	(*recordingMembers)(r).RecordMember(name, value, inProperties)
}
func (r *recordingFilter) MemberNames() []string { return r.names }

// pagePolicy is the per-retry policy that reads and checks a page whole (see above). Requests
// without a pageRecorder in their context pass through.
type pagePolicy struct{}

// Do implements policy.Policy.
func (pagePolicy) Do(req *policy.Request) (*http.Response, error) {
	rec, _ := req.Raw().Context().Value(recorderKey{}).(*pageRecorder)
	if rec == nil {
		return req.Next()
	}
	runtime.SkipBodyDownload(req) // read here, into the recorder, not by azcore
	resp, err := req.Next()
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	err = rec.read(resp.Body, resp.ContentLength)
	resp.Body.Close()
	resp.Body = http.NoBody
	if err != nil {
		return resp, fmt.Errorf("reading page (%d bytes read, request id %s): %w", len(*rec.body), resp.Header.Get(mgmt.HeaderRequestID), err)
	}
	if err := rec.decode(req.Raw().Context()); err != nil {
		return resp, fmt.Errorf("%w: %d bytes (request id %s): %w", ErrIncompletePage, len(*rec.body), resp.Header.Get(mgmt.HeaderRequestID), err)
	}
	return resp, nil
}

// withRecorder returns ctx carrying rec for pagePolicy.
func withRecorder(ctx context.Context, rec *pageRecorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, rec)
}

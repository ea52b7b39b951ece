// Package paging is the record-delivery contract both billing clients share with their caller:
// records handed to a Handler one at a time, a Page after each page or blob, and a PageError for
// one that could not be read whole.
package paging

import (
	"context"
	"fmt"
)

// Handler receives the records of a listing or a report. Both methods get the context of the
// call that delivers them (the List or Report the Handler was passed to), so a Handler needs no
// context of its own.
type Handler interface {
	// Record gets one record's raw JSON: exactly the API's bytes (whitespace inside the record
	// included), valid only during the call. An error stops the listing and is returned wrapped.
	Record(ctx context.Context, raw []byte) error
	// PageDone is called after each page (a usageDetails page, a Cost Details blob) has been
	// read completely. An error stops the listing and is returned wrapped.
	PageDone(ctx context.Context, p Page) error
}

// Page describes one fully read page (a usageDetails page, a Cost Details blob).
type Page struct {
	Index      int    // page index within the call, from 0
	Records    int    // records delivered from this page
	Bytes      int64  // body bytes read
	NextLink   string // the link to the next page (secret-bearing: log it redacted), "" at the end
	RequestID  string // x-ms-request-id
	StatusCode int    // 200, or 204 for no content
}

// PageError is a page whose body could not be read whole and valid: it broke off, stalled or
// was not a complete page on every try. A usageDetails page's records are delivered only after
// the whole page was read and checked, so RecordsDelivered is 0 for a listing; a Cost Details
// blob that fails after its resumes may have delivered rows. A caller must discard what it did
// with those and restart the page (or its whole chunk).
type PageError struct {
	Index            int // page index within the call, from 0
	RecordsDelivered int
	RequestID        string
	Err              error
}

// Error implements error.
func (e *PageError) Error() string {
	s := fmt.Sprintf("usage page %d could not be read whole", e.Index)
	if e.RecordsDelivered > 0 {
		s = fmt.Sprintf("usage page %d broke off after %d records were delivered (discard them and restart the page)", e.Index, e.RecordsDelivered)
	}
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *PageError) Unwrap() error { return e.Err }

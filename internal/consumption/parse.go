package consumption

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// Handler receives the records of a listing.
type Handler interface {
	// Record gets one record's raw JSON: exactly the API's bytes (whitespace inside the record
	// included), valid only during the call. An error stops the listing and is returned wrapped.
	Record(raw []byte) error
	// PageDone is called after each page has been read completely and its nextLink checked.
	// An error stops the listing and is returned wrapped.
	PageDone(p Page) error
}

// Page describes one fully read page.
type Page struct {
	Index      int    // page index within the List call, from 0
	Records    int    // records delivered from this page
	Bytes      int64  // body bytes read
	NextLink   string // the link to the next page (secret-bearing: log it with RedactURL), "" at the end
	RequestID  string // x-ms-request-id
	StatusCode int    // 200, or 204 for no content
}

// Top-level member names of a page (UsageDetailsListResult).
const (
	memberValue    = "value"
	memberNextLink = "nextLink"
)

// decoderOptions: duplicate member names are not checked (records are passed through byte for
// byte, and the check costs time and memory per object); UTF-8 is still validated, so every
// record handed on is valid JSON text.
var decoderOptions = jsontext.AllowDuplicateNames(true)

// decoders reuses decoders and their buffers across pages.
var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil), decoderOptions) }}

// emptyReader detaches a pooled decoder from the body it read.
var emptyReader = bytes.NewReader(nil)

// ParsePage reads one usageDetails page, {"value":[records…],"nextLink":"…"}, from r and calls
// h.Record for each record as soon as it is decoded; it never holds more than one record. It
// accepts value and nextLink in either order, skips unknown members, treats a null value as
// empty and an absent, null or empty nextLink as the end. It returns the nextLink and the
// number of records delivered; on error, n records were already delivered. PageDone is not
// called (List does that).
func ParsePage(r io.Reader, h Handler) (nextLink string, n int, err error) {
	dec := decoders.Get().(*jsontext.Decoder)
	dec.Reset(r, decoderOptions)
	defer func() {
		dec.Reset(emptyReader, decoderOptions)
		decoders.Put(dec)
	}()

	tok, err := dec.ReadToken()
	if err != nil {
		return "", 0, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
	}
	if tok.Kind() != '{' {
		return "", 0, fmt.Errorf("reading page: want a JSON object, got %s", tok.Kind())
	}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return "", n, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
		}
		switch name := tok.String(); name {
		case memberValue:
			if err := readValue(dec, h, &n); err != nil {
				return "", n, err
			}
		case memberNextLink:
			tok, err := dec.ReadToken()
			if err != nil {
				return "", n, fmt.Errorf("reading nextLink: %w", eofIsUnexpected(err))
			}
			switch tok.Kind() {
			case 'n':
				nextLink = ""
			case '"':
				nextLink = tok.String()
			default:
				return "", n, fmt.Errorf("reading nextLink: want a string, got %s", tok.Kind())
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return "", n, fmt.Errorf("reading page member %q: %w", name, eofIsUnexpected(err))
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing '}'
		return "", n, fmt.Errorf("reading page: %w", eofIsUnexpected(err))
	}
	if tok, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("unexpected %s", tok.Kind())
		}
		return "", n, fmt.Errorf("reading page: data after the page object: %w", err)
	}
	return nextLink, n, nil
}

// readValue streams the elements of the value array (or accepts null) into h.
func readValue(dec *jsontext.Decoder, h Handler, n *int) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return fmt.Errorf("reading value: %w", eofIsUnexpected(err))
	}
	switch tok.Kind() {
	case 'n':
		return nil
	case '[':
	default:
		return fmt.Errorf("reading value: want an array, got %s", tok.Kind())
	}
	for {
		kind := dec.PeekKind()
		if kind == ']' {
			break
		}
		raw, err := dec.ReadValue()
		if err != nil {
			return fmt.Errorf("reading record %d: %w", *n, eofIsUnexpected(err))
		}
		if kind != '{' {
			return fmt.Errorf("reading record %d: want a JSON object, got %s", *n, kind)
		}
		if err := h.Record(raw); err != nil {
			return &handlerError{fmt.Errorf("handling record %d: %w", *n, err)}
		}
		*n++
	}
	if _, err := dec.ReadToken(); err != nil { // the closing ']'
		return fmt.Errorf("reading value: %w", eofIsUnexpected(err))
	}
	return nil
}

// handlerError marks an error returned by the Handler, so List can tell it from a broken body.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// eofIsUnexpected turns a bare io.EOF (the body ended where a token was due) into
// io.ErrUnexpectedEOF, so a truncated page never looks like a clean end.
func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

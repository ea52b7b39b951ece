package paging

import (
	"errors"
	"io"
	"testing"
)

func TestPageError(t *testing.T) {
	tests := []struct {
		err  *PageError
		want string
	}{
		{&PageError{Index: 2, Err: io.ErrUnexpectedEOF},
			"usage page 2 could not be read whole: unexpected EOF"},
		{&PageError{Index: 0, RequestID: "r-1", Err: io.ErrUnexpectedEOF},
			"usage page 0 could not be read whole (request id r-1): unexpected EOF"},
		{&PageError{Index: 3, RecordsDelivered: 700, RequestID: "r-2", Err: io.ErrUnexpectedEOF},
			"usage page 3 broke off after 700 records were delivered (discard them and restart the page) (request id r-2): unexpected EOF"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(tt.err, io.ErrUnexpectedEOF) {
			t.Errorf("%v does not unwrap to its cause", tt.err)
		}
	}
}

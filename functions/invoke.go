package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/usage-export/usage-export/internal/redact"
)

// invocation is the host's request body in the default (non-forwarding) mode. Keys are
// PascalCase; encoding/json matches them case-insensitively.
type invocation struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// sysMetadata is Metadata.sys.
type sysMetadata struct {
	MethodName string `json:"MethodName"`
	UtcNow     string `json:"UtcNow"`
	RandGuid   string `json:"RandGuid"`
}

// sys returns Metadata.sys, or its zero value.
func (inv *invocation) sys() sysMetadata {
	var s sysMetadata
	if raw, ok := inv.Metadata["sys"]; ok {
		_ = json.Unmarshal(raw, &s) // informational only
	}
	return s
}

// retryCount returns Metadata.RetryContext.RetryCount (0 on a first execution).
func (inv *invocation) retryCount() int {
	var rc struct {
		RetryCount int `json:"RetryCount"`
	}
	if raw, ok := inv.Metadata["RetryContext"]; ok {
		_ = json.Unmarshal(raw, &rc)
	}
	return rc.RetryCount
}

// invokeResponse is the handler's reply to the host: always Content-Type application/json.
type invokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// httpOutput is the value of an http output binding (Outputs.res). The host reads statusCode
// (not status), writes a string body as is and applies headers.
type httpOutput struct {
	StatusCode int               `json:"statusCode"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// errorBody is the JSON error of the HTTP API: {"error":{"code","message"}}.
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// invocationID is the host's id of the invocation.
func invocationID(r *http.Request) string { return r.Header.Get("X-Azure-Functions-InvocationId") }

// begin returns the invocation's context and logger: a child of the base logger with the
// function name and the invocation id, carried in ctx so export logs carry them too.
func (s *Server) begin(r *http.Request, function string) (context.Context, zerolog.Logger) {
	log := s.log.With().Str("function", function).Str("invocation_id", invocationID(r)).Logger()
	return log.WithContext(r.Context()), log
}

// errTooLarge reports an invocation payload over maxInvocationBytes.
var errTooLarge = errors.New("invocation payload too large")

// readInvocation decodes the host's payload, at most maxInvocationBytes.
func readInvocation(w http.ResponseWriter, r *http.Request) (*invocation, error) {
	body := http.MaxBytesReader(w, r.Body, maxInvocationBytes)
	b, err := io.ReadAll(body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fmt.Errorf("%w: more than %d bytes", errTooLarge, mbe.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("reading invocation: %w", err)
	}
	var inv invocation
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("decoding invocation: %w", err)
	}
	if inv.Data == nil {
		return nil, errors.New("decoding invocation: no Data object")
	}
	return &inv, nil
}

// writeJSON writes v as JSON with an explicit Content-Type (Go would sniff text/plain, which
// the host refuses). Every reply to the host goes through it, so it is where secrets are
// removed from what the host logs and what an HTTP caller reads (redact.JSON), once.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	b = redact.JSON(b)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal_error","message":"encoding the response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// header is a case-insensitive view of Data.req.Headers, whose values are arrays of strings
// (a plain string is accepted too).
type header map[string][]string

// UnmarshalJSON accepts {"Name": ["v", …]} and {"Name": "v"}.
func (h *header) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := header{}
	for k, v := range raw {
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			var one string
			if err := json.Unmarshal(v, &one); err != nil {
				continue // not a header value we use
			}
			list = []string{one}
		}
		out[strings.ToLower(k)] = list
	}
	*h = out
	return nil
}

// get returns the first value of the named header, or "".
func (h header) get(name string) string {
	if v := h[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// httpRequest is Data.req of an httpTrigger invocation.
type httpRequest struct {
	URL     string            `json:"Url"`
	Method  string            `json:"Method"`
	Headers header            `json:"Headers"`
	Params  map[string]string `json:"Params"`
	// Query is an object in current hosts and a string ("{}") in older ones; it is not used.
	Query json.RawMessage `json:"Query"`
	// Body is the raw request text as a JSON string (present only when Content-Length > 0).
	// Older hosts sent a JSON body as a JSON value; both are accepted (see text).
	Body json.RawMessage `json:"Body"`
}

// text returns the request body as the caller sent it.
func (r *httpRequest) text() string {
	b := bytes.TrimSpace(r.Body)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return ""
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err == nil {
			return s
		}
	}
	return string(b)
}

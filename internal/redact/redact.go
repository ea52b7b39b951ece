// Package redact removes secrets (URL tokens, SAS signatures, account keys, bearer tokens) from text at the process's boundaries.
package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/usage-export/usage-export/internal/mgmt"
	"github.com/usage-export/usage-export/internal/store"
)

// urlInText finds URLs in a message: up to whitespace, a quote or a backslash, so that a URL
// quoted by a Go error (Get "https://…": …) or escaped inside JSON text is redacted alone and
// the text around it, line breaks included, stays as it was.
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>\\]+`)

// bearer finds an Authorization header's bearer token.
var bearer = regexp.MustCompile(`(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*`)

// String returns s with the secrets in it replaced: the values of secret query parameters of
// URLs ($skiptoken, sessiontoken, sig, …, see mgmt.RedactURL), connection-string keys and SAS
// signatures (store.RedactConnectionString) and bearer tokens. The rest of the text is kept.
func String(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	s = urlInText.ReplaceAllStringFunc(s, func(u string) string {
		trimmed := strings.TrimRight(u, ".,:;)")
		if !strings.ContainsAny(trimmed, "?@") {
			return u
		}
		return mgmt.RedactURL(trimmed) + u[len(trimmed):]
	})
	s = bearer.ReplaceAllString(s, "${1}***")
	return store.RedactConnectionString(s)
}

// mayHoldSecret is String's fast path: every secret it removes follows a "=", a "://" or
// "bearer".
func mayHoldSecret(s string) bool {
	return strings.Contains(s, "=") || strings.Contains(s, "://") || containsFold(s, "bearer")
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// JSON returns the JSON text b with String applied to every string in it; a string that holds
// JSON text itself (an HTTP body carried in the host's reply) is redacted as JSON. Everything
// else, whitespace included, is kept byte for byte. Text that is not JSON is redacted with
// String as a whole.
func JSON(b []byte) []byte {
	out, ok := redactJSON(b)
	if !ok {
		return []byte(String(string(b)))
	}
	return out
}

// redactJSON rewrites the string literals of b that hold a secret; ok is false when b is not
// well-formed (an unterminated string).
func redactJSON(b []byte) (out []byte, ok bool) {
	for i := 0; i < len(b); {
		if b[i] != '"' {
			if out != nil {
				out = append(out, b[i])
			}
			i++
			continue
		}
		end := stringEnd(b, i)
		if end < 0 {
			return nil, false
		}
		lit := b[i:end]
		if repl, changed := redactLiteral(lit); changed {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = append(out, repl...)
		} else if out != nil {
			out = append(out, lit...)
		}
		i = end
	}
	if out == nil {
		return b, true
	}
	return out, true
}

// stringEnd returns the index just past the JSON string literal starting at b[i] (a quote), or
// -1 when it does not end.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// redactLiteral returns the literal lit (quotes included) re-encoded with its secrets removed,
// and whether anything changed.
func redactLiteral(lit []byte) ([]byte, bool) {
	if !bytes.Contains(lit, []byte("=")) && !bytes.Contains(lit, []byte("://")) && !bytes.Contains(bytes.ToLower(lit), []byte("bearer")) {
		return nil, false
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return []byte(String(string(lit))), true
	}
	r := String(s)
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		if inner, ok := redactJSON([]byte(s)); ok && json.Valid([]byte(s)) {
			r = string(inner)
		}
	}
	if r == s {
		return nil, false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return []byte(`"REDACTED"`), true
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), true
}

// Writer returns a writer that redacts what it passes on to w: each Write is one zerolog event
// (a JSON object, redacted with JSON) or text (redacted with String). Every logger of the app
// writes through it, so no call site has to remember to redact.
func Writer(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct {
	mu sync.Mutex // Write may be called concurrently; w may not be safe for it
	w  io.Writer
}

func (rw *writer) Write(p []byte) (int, error) {
	var out []byte
	if t := bytes.TrimSpace(p); len(t) > 0 && t[0] == '{' {
		out = JSON(p)
	} else {
		out = []byte(String(string(p)))
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if _, err := rw.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

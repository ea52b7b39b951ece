package functions

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRepliesRedacted: every reply to the host goes through writeJSON, which removes secrets
// from the host's log lines and from the HTTP body it hands to the caller (a JSON text inside a
// JSON string, where encoding/json writes & as \u0026), and keeps the reply's shape.
func TestRepliesRedacted(t *testing.T) {
	body, _ := json.Marshal(errorBody{Error: apiError{Code: "internal_error",
		Message: `storing a new job: PUT "https://acct.blob.core.windows.net/c/j.json?sv=2024&sig=s3cr3t": 403`}})
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusOK, invokeResponse{
		Outputs: map[string]any{ResponseBinding: httpOutput{StatusCode: 500, Body: string(body), Headers: map[string]string{"Content-Type": "application/json"}}},
		Logs:    []string{"failed: GET https://management.azure.com/x?api-version=1&$skiptoken=abc123: EOF"},
	})
	got := rec.Body.String()
	if strings.Contains(got, "s3cr3t") || strings.Contains(got, "abc123") {
		t.Fatalf("secret in the reply: %s", got)
	}
	var rep struct {
		Outputs map[string]httpOutput
		Logs    []string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, got)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(rep.Outputs[ResponseBinding].Body), &eb); err != nil || eb.Error.Code != "internal_error" ||
		!strings.Contains(eb.Error.Message, "sig=***") || !strings.Contains(rep.Logs[0], "$skiptoken=REDACTED") {
		t.Errorf("reply after redaction = %s (%v)", got, err)
	}
}

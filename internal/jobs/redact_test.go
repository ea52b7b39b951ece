package jobs

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestStoredErrorsRedacted: a partition's error text (which can quote a request URL) is stored
// without its secrets, in the job document and in the partition record, whoever wrote it.
func TestStoredErrorsRedacted(t *testing.T) {
	ctx := context.Background()
	s, l := newStore(t)
	const msg = `attempt 1: GET "https://management.azure.com/x?api-version=1&$skiptoken=abc123": EOF; blob https://a.blob.core.windows.net/c?sv=1&sig=s3cr3t`
	j := sampleJob(time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC))
	j.Error = msg
	if err := s.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord(ctx, j.ID, 0, &Record{Status: PartRetrying, Error: msg}, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{s.Name(j.ID), s.recordName(j.ID, 0)} {
		rc, _, err := l.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if strings.Contains(string(b), "abc123") || strings.Contains(string(b), "s3cr3t") || !strings.Contains(string(b), "$skiptoken=REDACTED") {
			t.Errorf("%s stored: %s", name, b)
		}
	}
	rec, err := s.GetRecord(ctx, j.ID, 0)
	if err != nil || !strings.HasPrefix(rec.Error, `attempt 1: GET "https://management.azure.com/x?api-version=1&$skiptoken=REDACTED"`) {
		t.Errorf("record read back: %+v, %v", rec, err)
	}
}

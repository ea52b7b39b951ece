package benchdata

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestPage(t *testing.T) {
	for _, s := range Shapes {
		t.Run(string(s), func(t *testing.T) {
			recs, err := Records(s, 50)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 50 {
				t.Fatalf("got %d records, want 50", len(recs))
			}
			wantDate := map[Shape]string{Legacy: `"date":"2026-10-07`, Modern: `"date":"2026-10-07`, Legacy2018: `"usageStart":"2026-10-07`}[s]
			for i, r := range recs {
				var v map[string]any
				if err := json.Unmarshal(r, &v); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if !bytes.Contains(r, []byte(wantDate)) {
					t.Errorf("record %d has no %s: %.300s", i, wantDate, r)
				}
			}
		})
	}
	if _, err := Page(Legacy, 0); err == nil {
		t.Errorf("Page(Legacy, 0): got nil error, want one")
	}
	if _, err := Page("nope", 1); err == nil {
		t.Errorf("Page(nope, 1): got nil error, want one")
	}
}

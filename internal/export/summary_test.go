package export

import (
	"errors"
	"strings"
	"testing"
)

// TestSummaryCountsDerivedFailures: a derived partition (the FOCUS dataset) that failed to build
// fails the run like a raw one, so the CLI's exit code and the timer's answer say it.
func TestSummaryCountsDerivedFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sum     Summary
		failed  int
		errText string
	}{
		{"all committed", Summary{Partitions: []Result{{Status: StatusCommitted}}, Derived: []Derived{{Status: StatusCommitted}, {Status: "upToDate"}, {Status: "waiting"}}}, 0, ""},
		{"raw failed", Summary{Partitions: []Result{{Scope: "s", Period: "202401", Metric: "actualcost", Status: StatusFailed, Err: errors.New("boom")}}}, 1, "s 202401 actualcost: boom"},
		{"derived failed", Summary{Partitions: []Result{{Status: StatusCommitted}}, Derived: []Derived{{Dataset: "focus", Scope: "s", Period: "202401", Status: StatusFailed, Error: "inputs disagree"}}}, 1, "s 202401 dataset=focus: inputs disagree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sum.Failed(); got != tc.failed {
				t.Errorf("Failed() = %d, want %d", got, tc.failed)
			}
			err := tc.sum.Err()
			switch {
			case tc.errText == "" && err != nil:
				t.Errorf("Err() = %v, want nil", err)
			case tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)):
				t.Errorf("Err() = %v, want it to contain %q", err, tc.errText)
			}
		})
	}
}

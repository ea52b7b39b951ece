package verify_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/export"
	"github.com/usage-export/usage-export/internal/manifest"
	"github.com/usage-export/usage-export/internal/paging"
	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
	"github.com/usage-export/usage-export/internal/store"
	"github.com/usage-export/usage-export/internal/verify"
)

type oneDay struct{}

func (oneDay) Name() manifest.Source { return manifest.SourceUsageDetails }
func (oneDay) APIVersion() string    { return "2024-08-01" }
func (oneDay) Fetch(ctx context.Context, c export.Chunk, h paging.Handler) error {
	for d := c.From; !d.After(c.To); d = d.AddDate(0, 0, 1) {
		rec := `{"kind":"legacy","properties":{"date":"` + d.Format("2006-01-02") + `T00:00:00.0000000Z","cost":1.25,"billingCurrency":"USD"}}`
		if err := h.Record(ctx, []byte(rec)); err != nil {
			return err
		}
	}
	return h.PageDone(ctx, paging.Page{Index: 1})
}

// TestDetectsTampering exports a partition, then damages it in the ways verify must notice.
func TestDetectsTampering(t *testing.T) {
	ctx := context.Background()
	p := export.Partition{Scope: scope.MustParse("/subscriptions/abc"), Period: period.Period{Year: 2024, Month: time.January}, Metric: "actualcost"}
	setup := func(t *testing.T) (*store.Local, *export.Exporter) {
		st, err := store.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e := export.New(st, func(scope.Scope) (export.Source, error) { return oneDay{}, nil },
			&export.Options{PartDays: 7, Now: func() time.Time { return time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC) }})
		if sum, err := e.Run(ctx, []export.Partition{p}); err != nil || sum.Failed() > 0 {
			t.Fatal(err, sum.Err())
		}
		return st, e
	}
	part := func(e *export.Exporter) string { return e.Dir(p) + "/part-20240101-20240107.jsonl.gz" }
	tests := []struct {
		name   string
		damage func(st *store.Local, e *export.Exporter)
		want   string
	}{
		{"intact", func(*store.Local, *export.Exporter) {}, ""},
		{"part replaced", func(st *store.Local, e *export.Exporter) {
			_, _ = st.Put(ctx, part(e), bytes.NewReader([]byte("garbage")), nil)
		}, "gzip"},
		{"part deleted", func(st *store.Local, e *export.Exporter) { _ = st.Delete(ctx, part(e)) }, "missing"},
		{"stray part", func(st *store.Local, e *export.Exporter) {
			_, _ = st.Put(ctx, e.Dir(p)+"/part-20240140-20240141.jsonl.gz", bytes.NewReader(nil), nil)
		}, "not listed in the manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, e := setup(t)
			tt.damage(st, e)
			rep, err := verify.Partition(ctx, st, e.ManifestName(p))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if !rep.OK() || rep.Rows != 31 {
					t.Fatalf("intact partition: %+v", rep)
				}
				return
			}
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), tt.want) {
				t.Errorf("problems %v, want one mentioning %q", rep.Problems, tt.want)
			}
		})
	}
}

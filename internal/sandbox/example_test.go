package sandbox_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/sandbox"
	"github.com/usage-export/usage-export/internal/scope"
)

// Example pages through one billing period of an EA department and checks the row count
// against the ground truth.
func Example() {
	s, err := sandbox.New(&sandbox.Options{
		RecordsPerDay: 5,
		Now:           func() time.Time { return time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		panic(err)
	}
	if err := s.Start(); err != nil {
		panic(err)
	}
	defer func() { _ = s.Close() }()

	sc := scope.MustParse("/providers/Microsoft.Billing/departments/301001")
	link := s.URL() + sc.PeriodPath("202402") + "/providers/Microsoft.Consumption/usageDetails?api-version=2024-08-01&$top=1000"
	rows, pages := 0, 0
	for link != "" {
		req, _ := http.NewRequest(http.MethodGet, link, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"nextLink"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			panic(err)
		}
		rows += len(page.Value)
		pages++
		link = page.NextLink
	}
	truth, err := s.GroundTruth(sc, period.Period{Year: 2024, Month: 2}, "actualcost")
	if err != nil {
		panic(err)
	}
	fmt.Println(pages, "pages;", rows == truth.Rows, truth.MinDate, truth.MaxDate)
	// Output: 1 pages; true 2024-02-01 2024-02-29
}

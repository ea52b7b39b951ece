package sandbox

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

func generateURL(base, scopePath string) string {
	return base + scopePath + "/providers/Microsoft.CostManagement/generateCostDetailsReport?api-version=2022-05-01"
}

// runReport POSTs a report request, polls Location until 200 and returns the result and the
// number of 202 polls.
func runReport(t *testing.T, s *Server, base, scopePath, body string) (costDetailsResult, int) {
	t.Helper()
	resp, b := do(t, s, http.MethodPost, generateURL(base, scopePath), []byte(body))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: status %d: %s", resp.StatusCode, b)
	}
	loc := resp.Header.Get("Location")
	wantPrefix := base + "/" + strings.TrimPrefix(scopePath, "/") + "/providers/Microsoft.CostManagement/costDetailsOperationResults/"
	if !strings.HasPrefix(loc, wantPrefix) || !strings.HasSuffix(loc, "?api-version=2022-05-01") {
		t.Fatalf("Location %q, want %s{id}?api-version=2022-05-01", loc, wantPrefix)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("202 without Retry-After")
	}
	polls := 0
	for i := 0; i < 100; i++ {
		resp, b = get(t, s, loc)
		switch resp.StatusCode {
		case http.StatusAccepted:
			polls++
			if resp.Header.Get("Location") != loc || resp.Header.Get("Retry-After") == "" {
				t.Errorf("202 poll: Location %q Retry-After %q", resp.Header.Get("Location"), resp.Header.Get("Retry-After"))
			}
			continue
		case http.StatusOK:
			var res costDetailsResult
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatalf("result: %v", err)
			}
			return res, polls
		default:
			t.Fatalf("poll: status %d: %s", resp.StatusCode, b)
		}
	}
	t.Fatal("report never completed")
	return costDetailsResult{}, 0
}

// downloadCSV fetches every blob (without a bearer token) and returns the header and rows.
func downloadCSV(t *testing.T, res costDetailsResult, compressed bool) ([]string, [][]string) {
	t.Helper()
	var header []string
	var rows [][]string
	for i, b := range res.Manifest.Blobs {
		resp, body := get(t, nil, b.BlobLink)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("blob %d: status %d: %s", i, resp.StatusCode, body)
		}
		if int64(len(body)) != b.ByteCount {
			t.Errorf("blob %d: %d bytes, manifest says %d", i, len(body), b.ByteCount)
		}
		if compressed {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("blob %d: %v", i, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("blob %d: %v", i, err)
			}
		}
		if !bytes.Contains(body, []byte("\r\n")) {
			t.Errorf("blob %d: lines do not end in CRLF", i)
		}
		var bom bool
		if body, bom = bytes.CutPrefix(body, []byte(byteOrderMark)); !bom {
			t.Errorf("blob %d: no byte order mark", i)
		}
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatalf("blob %d: csv: %v", i, err)
		}
		if header == nil {
			header = recs[0]
		} else if !slices.Equal(header, recs[0]) {
			t.Errorf("blob %d header differs", i)
		}
		rows = append(rows, recs[1:]...)
	}
	return header, rows
}

var csvDate = regexp.MustCompile(`^\d\d/\d\d/\d{4}$`)

// csvTruth computes rows and sums from CSV rows.
func csvTruth(t *testing.T, header []string, rows [][]string, modern bool) Truth {
	t.Helper()
	col := func(name string) int {
		i := slices.Index(header, name)
		if i < 0 {
			t.Fatalf("no column %q in %v", name, header)
		}
		return i
	}
	// The published headers (cost-details-and-focus.md §1.2, §1.3).
	costName, curName, dateName, tagsName := "CostInBillingCurrency", "BillingCurrencyCode", "Date", "Tags"
	if modern {
		costName, curName, dateName, tagsName = "costInBillingCurrency", "billingCurrency", "date", "tags"
	}
	costC, curC := col(costName), col(curName)
	dateC, tagsC := col(dateName), col(tagsName)
	tr := Truth{Sums: map[string]string{}, Rows: len(rows)}
	sums := map[string]*decSum{}
	var usd decSum
	for _, r := range rows {
		if len(r) != len(header) {
			t.Fatalf("row has %d cells, header %d", len(r), len(header))
		}
		if sums[r[curC]] == nil {
			sums[r[curC]] = &decSum{}
		}
		if !sums[r[curC]].addText(r[costC]) {
			t.Fatalf("cost %q is not a decimal", r[costC])
		}
		if modern && !usd.addText(r[col("costInUsd")]) {
			t.Fatalf("costInUsd %q", r[col("costInUsd")])
		}
		if !csvDate.MatchString(r[dateC]) {
			t.Errorf("date %q is not MM/DD/YYYY", r[dateC])
		}
		// Tags are JSON members without the outer braces (§1.5), or empty.
		if tg := r[tagsC]; strings.HasPrefix(tg, "{") || (tg != "" && !json.Valid([]byte("{"+tg+"}"))) {
			t.Errorf("tags %q are not brace-less JSON members", tg)
		}
	}
	for c, sm := range sums {
		tr.Sums[c] = sm.String()
	}
	if modern {
		tr.USDSum = usd.String()
	}
	return tr
}

func TestCostDetailsEndToEnd(t *testing.T) {
	prof := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/billingProfiles/EF56-GH78-BG7-TGB"
	cust := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/customers/9b3c1d2e-4f5a-4b6c-8d7e-0f1a2b3c4d5e"
	cases := []struct {
		name, scope, body string
		month             period.Period
		metric            string
		modern, compress  bool
		echo              string // requestBody echoed in requestContext
	}{
		{"EA department billingPeriod", "/providers/Microsoft.Billing/departments/301001", `{"metric":"ActualCost","billingPeriod":"202402"}`,
			period.Period{Year: 2024, Month: 2}, "actualcost", false, false, `{"metric":"ActualCost","billingPeriod":"202402"}`},
		{"EA enrollment amortized timePeriod gzip", "/providers/Microsoft.Billing/billingAccounts/" + EABillingAccountEUR,
			`{"metric":"AmortizedCost","timePeriod":{"start":"2024-01-01","end":"2024-01-31"}}`,
			period.Period{Year: 2024, Month: 1}, "amortizedcost", false, true, `{"metric":"AmortizedCost","timePeriod":{"start":"2024-01-01","end":"2024-01-31"}}`},
		{"MCA profile invoiceId", prof, `{"metric":"AmortizedCost","invoiceId":"` + invoiceID(nil2profile(t, "EF56-GH78-BG7-TGB"), 202401) + `"}`,
			period.Period{Year: 2024, Month: 1}, "amortizedcost", true, false, `{"metric":"AmortizedCost","billingPeriod":"202401"}`},
		{"customer timePeriod", cust, `{"timePeriod":{"start":"2024-02-01","end":"2024-02-29"}}`,
			period.Period{Year: 2024, Month: 2}, "actualcost", true, false, `{"metric":"ActualCost","timePeriod":{"start":"2024-02-01","end":"2024-02-29"}}`},
		{"subscription current month", "/subscriptions/" + worldSub(0), `{"metric":"ActualCost"}`,
			period.Period{Year: 2024, Month: 3}, "actualcost", false, false, `{"metric":"ActualCost"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, ts := newTestServer(t, &Options{RecordsPerDay: 3, RowsPerBlob: 100, CompressCSV: c.compress, PollInterval: 300 * time.Millisecond})
			res, polls := runReport(t, s, ts.URL, c.scope, c.body)
			if polls != 2 {
				t.Errorf("%d 202 polls, want PollsBeforeDone=2", polls)
			}
			m := res.Manifest
			if res.Status != "Completed" || m == nil {
				t.Fatalf("result %+v", res)
			}
			scopeNoSlash := strings.TrimPrefix(c.scope, "/")
			if res.ID != scopeNoSlash+"/providers/Microsoft.CostManagement/costDetailsOperationResults/"+res.Name || !isGUID(res.Name) {
				t.Errorf("id %q name %q", res.ID, res.Name)
			}
			if _, err := time.Parse("2006-01-02T15:04:05.0000000Z", res.ValidTill); err != nil {
				t.Errorf("validTill %q: %v", res.ValidTill, err)
			}
			echo, _ := json.Marshal(m.RequestContext.RequestBody)
			if m.ManifestVersion != "2022-05-01" || m.DataFormat != "Csv" || m.CompressData != c.compress ||
				m.RequestContext.RequestScope != scopeNoSlash || string(echo) != c.echo {
				t.Errorf("manifest %+v, body %s", m, echo)
			}
			var total int64
			for _, b := range m.Blobs {
				total += b.ByteCount
				u, _ := url.Parse(b.BlobLink)
				q := u.Query()
				if !strings.HasPrefix(u.Path, "/sandbox-storage/armreports/") || q.Get("sv") != "2020-05-31" || q.Get("sr") != "b" || q.Get("sig") == "" || q.Get("se") == "" {
					t.Errorf("blobLink %s", b.BlobLink)
				}
			}
			if m.BlobCount != len(m.Blobs) || m.ByteCount != total {
				t.Errorf("blobCount %d byteCount %d, blobs %d total %d", m.BlobCount, m.ByteCount, len(m.Blobs), total)
			}
			want, err := s.GroundTruth(scope.MustParse(c.scope), c.month, c.metric)
			if err != nil {
				t.Fatal(err)
			}
			if wantBlobs := (want.Rows + 99) / 100; m.BlobCount != wantBlobs {
				t.Errorf("%d blobs for %d rows, want %d", m.BlobCount, want.Rows, wantBlobs)
			}
			header, rows := downloadCSV(t, res, c.compress)
			wantHeader := CSVHeaders(CSVSchemaEA20240801)
			if c.modern {
				wantHeader = CSVHeaders(CSVSchemaMCA20231201)
			}
			if !slices.Equal(header, wantHeader) {
				t.Errorf("header %v\nwant %v", header, wantHeader)
			}
			got := csvTruth(t, header, rows, c.modern)
			if got.Rows != want.Rows || !mapsEqual(got.Sums, want.Sums) || got.USDSum != want.USDSum {
				t.Errorf("CSV rows %d sums %v usd %q; ground truth rows %d sums %v usd %q", got.Rows, got.Sums, got.USDSum, want.Rows, want.Sums, want.USDSum)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// worldSub returns the guid of subscription i of the (fixed) world.
func worldSub(i int) string { return newWorld(1, 1).subs[i].guid }

func nil2profile(t *testing.T, id string) *billingProfile {
	t.Helper()
	p := newWorld(1, 1).profByID[strings.ToLower(id)]
	if p == nil {
		t.Fatalf("no profile %s", id)
	}
	return p
}

func TestCostDetailsValidation(t *testing.T) {
	s, ts := newTestServer(t, nil)
	ea := "/providers/Microsoft.Billing/departments/301001"
	mcaBA := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount
	prof := mcaBA + "/billingProfiles/AB12-CD34-BG7-TGB"
	cases := []struct {
		name, scope, query, body string
		status                   int
	}{
		{"unknown member", ea, "", `{"metric":"ActualCost","granularity":"Daily"}`, 400},
		{"not JSON", ea, "", `metric=ActualCost`, 400},
		{"trailing data", ea, "", `{"metric":"ActualCost"} {}`, 400},
		{"two of three", ea, "", `{"billingPeriod":"202402","timePeriod":{"start":"2024-02-01","end":"2024-02-10"}}`, 400},
		{"more than a month", ea, "", `{"timePeriod":{"start":"2024-01-15","end":"2024-02-15"}}`, 400},
		{"a month exactly", ea, "", `{"timePeriod":{"start":"2024-01-15","end":"2024-02-14"}}`, 202},
		// 13 months are counted back from now (2024-03-15T10:30Z), not in calendar months.
		{"13 calendar months back", ea, "", `{"timePeriod":{"start":"2023-02-01","end":"2023-02-05"}}`, 400},
		{"13 months back from now", ea, "", `{"timePeriod":{"start":"2023-02-15","end":"2023-02-20"}}`, 400},
		{"a day later", ea, "", `{"timePeriod":{"start":"2023-02-16","end":"2023-02-20"}}`, 202},
		{"billingPeriod 13 months back", ea, "", `{"billingPeriod":"202302"}`, 400},
		{"billingPeriod 12 months back", ea, "", `{"billingPeriod":"202303"}`, 202},
		{"invoiceId 13 months back", prof, "", `{"invoiceId":"` + invoiceID(nil2profile(t, "AB12-CD34-BG7-TGB"), 202302) + `"}`, 400},
		{"end before start", ea, "", `{"timePeriod":{"start":"2024-02-10","end":"2024-02-01"}}`, 400},
		{"missing end", ea, "", `{"timePeriod":{"start":"2024-02-10"}}`, 400},
		{"bad metric", ea, "", `{"metric":"Usage"}`, 400},
		{"billingPeriod on MCA", prof, "", `{"billingPeriod":"202402"}`, 400},
		{"invoiceId on EA", ea, "", `{"invoiceId":"G1000000"}`, 400},
		{"invoiceId on MCA billing account", mcaBA, "", `{"invoiceId":"` + invoiceID(nil2profile(t, "AB12-CD34-BG7-TGB"), 202402) + `"}`, 400},
		{"unknown invoiceId", prof, "", `{"invoiceId":"G1999999"}`, 400},
		{"management group", "/providers/Microsoft.Management/managementGroups/" + ManagementGroupID, "", `{}`, 400},
		{"billing period sub-scope", ea + "/providers/Microsoft.Billing/billingPeriods/202402", "", `{}`, 400},
		{"unknown scope", "/providers/Microsoft.Billing/departments/1", "", `{}`, 404},
		{"pay-as-you-go subscription", paygPath(s), "", `{}`, 400},
		{"EA subscription", "/subscriptions/" + worldSub(0), "", `{}`, 202},
		{"bad api-version", ea, "2024-08-01", `{}`, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := generateURL(ts.URL, c.scope)
			if c.query != "" {
				u = strings.Replace(u, "2022-05-01", c.query, 1)
			}
			resp, body := do(t, s, http.MethodPost, u, []byte(c.body))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.status >= 400 {
				errorCode(t, body)
			}
			if strings.Contains(c.name, "13 months back") && !strings.Contains(string(body), "Start date must be after 2023-02-15T10:30:00Z") {
				t.Errorf("body %s: want the service's \"Start date must be after …\" message", body)
			}
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		if resp, _ := get(t, s, generateURL(ts.URL, ea)); resp.StatusCode != 405 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		if resp, _ := do(t, nil, http.MethodPost, generateURL(ts.URL, ea), []byte(`{}`)); resp.StatusCode != 401 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

func TestCostDetailsOutcomesAndSAS(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, &Options{Clock: clock.Now, PollsBeforeDone: -1, ReportValidity: time.Hour})
	dept := "/providers/Microsoft.Billing/departments/301002"
	body := `{"metric":"ActualCost","billingPeriod":"202402"}`

	res, polls := runReport(t, s, ts.URL, dept, body)
	if polls != 0 || res.Status != "Completed" {
		t.Fatalf("polls %d status %s", polls, res.Status)
	}
	link := res.Manifest.Blobs[0].BlobLink
	u, _ := url.Parse(link)
	q := u.Query()
	sig := q.Get("sig")
	if sig == "" {
		t.Fatalf("blob link without a signature: %s", link)
	}
	withQuery := func(k, v string) string {
		q2 := u.Query()
		if v == "" {
			q2.Del(k)
		} else {
			q2.Set(k, v)
		}
		return u.Scheme + "://" + u.Host + u.Path + "?" + q2.Encode()
	}
	// The tamper changes the signature's first character whatever it is ('A' → 'B', else 'A').
	tampered := "A" + sig[1:]
	if sig[0] == 'A' {
		tampered = "B" + sig[1:]
	}
	forbidden := map[string]string{
		"tampered sig":    withQuery("sig", tampered),
		"no sig":          withQuery("sig", ""),
		"extended expiry": withQuery("se", clock.Now().Add(48*time.Hour).UTC().Format(time.RFC3339)),
		"other blob":      strings.Replace(link, "part_0.csv", "part_1.csv", 1),
	}
	for name, l := range forbidden {
		t.Run(name, func(t *testing.T) {
			resp, body := get(t, nil, l)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-error-code") != "AuthenticationFailed" ||
				!strings.Contains(string(body), "<Code>AuthenticationFailed</Code>") {
				t.Errorf("status %d code %q body %s", resp.StatusCode, resp.Header.Get("x-ms-error-code"), body)
			}
		})
	}
	t.Run("valid link without token", func(t *testing.T) {
		if resp, _ := get(t, nil, link); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv" {
			t.Errorf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
	t.Run("expired after validTill", func(t *testing.T) {
		clock.Advance(time.Hour + time.Second)
		resp, body := get(t, nil, link)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d: %s", resp.StatusCode, body)
		}
		mustContain(t, string(body), "Signed expiry time")
	})

	outcomes := []struct {
		fault  Fault
		body   string
		status string
	}{
		{ReportFailed, body, "Failed"},
		{ReportNoData, body, "NoDataFound"},
		{"", `{"timePeriod":{"start":"2024-03-20","end":"2024-03-25"}}`, "NoDataFound"}, // after Now: no data
	}
	for _, o := range outcomes {
		t.Run("status "+o.status+" "+string(o.fault), func(t *testing.T) {
			if o.fault != "" {
				s.Faults().Inject(o.fault, 1)
			}
			res, _ := runReport(t, s, ts.URL, dept, o.body)
			if res.Status != o.status || res.Manifest != nil {
				t.Errorf("status %q manifest %v, want %s without manifest", res.Status, res.Manifest, o.status)
			}
			if (o.status == "Failed") != (res.Error != nil) {
				t.Errorf("error %+v", res.Error)
			}
		})
	}
	t.Run("report-expired", func(t *testing.T) {
		s.Faults().Inject(ReportExpired, 1)
		res, _ := runReport(t, s, ts.URL, dept, body)
		vt, _ := time.Parse("2006-01-02T15:04:05.0000000Z", res.ValidTill)
		if res.Status != "Completed" || !vt.Before(clock.Now()) {
			t.Fatalf("status %s validTill %s", res.Status, res.ValidTill)
		}
		if resp, _ := get(t, nil, res.Manifest.Blobs[0].BlobLink); resp.StatusCode != http.StatusForbidden {
			t.Errorf("expired blob: status %d", resp.StatusCode)
		}
	})
	t.Run("blob faults", func(t *testing.T) {
		res, _ := runReport(t, s, ts.URL, dept, body)
		blob := res.Manifest.Blobs[0]
		s.Faults().Add(Rule{Fault: TruncatedJSON, Target: TargetBlob, Count: 1})
		resp, b := get(t, nil, blob.BlobLink)
		if resp.StatusCode != 200 || int64(len(b)) != blob.ByteCount/2 {
			t.Errorf("truncated blob: status %d, %d bytes of %d", resp.StatusCode, len(b), blob.ByteCount)
		}
		s.Faults().Add(Rule{Fault: Unavailable503, Target: TargetBlob, Count: 1})
		if resp, _ := get(t, nil, blob.BlobLink); resp.StatusCode != 503 {
			t.Errorf("status %d, want 503", resp.StatusCode)
		}
		s.Faults().Add(Rule{Fault: ResetMidBody, Target: TargetBlob, Count: 1})
		r2, err := http.Get(blob.BlobLink)
		if err == nil {
			_, err = io.ReadAll(r2.Body)
			r2.Body.Close()
		}
		if err == nil {
			t.Error("reset blob read without error")
		}
		if resp, b := get(t, nil, blob.BlobLink); resp.StatusCode != 200 || int64(len(b)) != blob.ByteCount {
			t.Errorf("after faults: status %d, %d bytes", resp.StatusCode, len(b))
		}
	})
	t.Run("poll errors", func(t *testing.T) {
		resp, _ := do(t, s, http.MethodPost, generateURL(ts.URL, dept), []byte(body))
		loc := resp.Header.Get("Location")
		for name, l := range map[string]string{
			"unknown operation": strings.Replace(loc, "costDetailsOperationResults/", "costDetailsOperationResults/0", 1),
			"other scope":       strings.Replace(loc, "301002", "301001", 1),
		} {
			if resp, _ := get(t, s, l); resp.StatusCode != 404 {
				t.Errorf("%s: status %d, want 404", name, resp.StatusCode)
			}
		}
		s.Faults().Add(Rule{Fault: Unavailable503, Target: TargetCostDetails, Count: 1})
		if resp, _ := get(t, s, loc); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("injected poll fault: status %d", resp.StatusCode)
		}
	})
}

func TestCostDetailsThrottleAndRetryAfter(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, &Options{Clock: clock.Now, RatePerScope: 1})
	dept := "/providers/Microsoft.Billing/departments/301003"
	resp, _ := do(t, s, http.MethodPost, generateURL(ts.URL, dept), []byte(`{}`))
	if resp.StatusCode != 202 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("retry-after-ms") != "" {
		t.Errorf("status %d Retry-After %q retry-after-ms %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("retry-after-ms"))
	}
	resp, _ = do(t, s, http.MethodPost, generateURL(ts.URL, dept), []byte(`{}`))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "60" || resp.Header.Get(hdrConsumptionRetryAfter) != "" {
		t.Errorf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestGroundTruthHTTP(t *testing.T) {
	s, ts := newTestServer(t, nil)
	sc := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/billingProfiles/AB12-CD34-BG7-TGB/invoiceSections/MN34-OP56-PJA-TGB"
	want, err := s.GroundTruthVersion(scope.MustParse(sc), period.Period{Year: 2024, Month: 2}, "amortizedcost", "2019-10-01")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, nil, ts.URL+"/sandbox/groundtruth?scope="+url.QueryEscape(sc)+"&period=202402&metric=amortizedcost&api-version=2019-10-01")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got Truth
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	compareTruth(t, got, want)
	if want.Kinds["modern"] != want.Rows || want.USDSum == "" || want.Sums["USD"] == "" {
		t.Errorf("truth %+v", want)
	}
	for q, status := range map[string]int{
		"scope=/subscriptions/00000000-0000-0000-0000-000000000000&period=202402": 404,
		"scope=nope&period=202402":                                               400,
		"scope=" + url.QueryEscape(sc) + "&period=2024":                          400,
		"scope=" + url.QueryEscape(sc) + "&period=202402&metric=x":               400,
		"scope=" + url.QueryEscape(sc) + "&period=202402&api-version=2018-06-30": 400,
	} {
		if resp, body := get(t, nil, ts.URL+"/sandbox/groundtruth?"+q); resp.StatusCode != status {
			t.Errorf("%s: status %d, want %d: %s", q, resp.StatusCode, status, body)
		}
	}
}

func TestCSVSchemas(t *testing.T) {
	// Column counts of the published versions (cost-details-and-focus.md §1.2, §1.3).
	for name, n := range map[string]int{CSVSchemaEA20211001: 55, CSVSchemaEA20231201: 55, CSVSchemaEA20240801: 57,
		CSVSchemaMCA20210101: 62, CSVSchemaMCA20211001: 65, CSVSchemaMCA20231201: 65} {
		h := CSVHeaders(name)
		if len(h) != n {
			t.Errorf("%s: %d columns, want %d", name, len(h), n)
		}
		seen := map[string]bool{}
		for _, x := range h {
			if seen[strings.ToLower(x)] {
				t.Errorf("%s: %s twice", name, x)
			}
			seen[strings.ToLower(x)] = true
		}
	}
	if h := CSVHeaders(CSVSchemaEA20211001); h[0] != "CostInBillingCurrency" || h[54] != "benefitName" {
		t.Errorf("EA 2021-10-01 order: %v", h)
	}
	// A request chooses a version with the header; a version of the other agreement is refused.
	s, ts := newTestServer(t, nil)
	ea := generateURL(ts.URL, "/providers/Microsoft.Billing/departments/301001")
	for schema, status := range map[string]int{CSVSchemaEA20211001: 202, CSVSchemaMCA20211001: 400, "ea-1999": 400} {
		req, _ := http.NewRequest(http.MethodPost, ea, strings.NewReader(`{"billingPeriod":"202402"}`))
		req.Header.Set("Authorization", "Bearer "+s.Token())
		req.Header.Set(CSVSchemaHeader, schema)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("%s: status %d, want %d", schema, resp.StatusCode, status)
		}
	}
	if _, err := New(&Options{CostDetailsSchemaEA: CSVSchemaMCA20211001}); err == nil {
		t.Error("an MCA schema for EA reports was accepted")
	}
}

// paygPath is the path of the first pay-as-you-go subscription.
func paygPath(s *Server) string {
	paths, _ := paygSubs(s)
	return paths[0]
}

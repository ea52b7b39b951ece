package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usage-export/usage-export/internal/period"
	"github.com/usage-export/usage-export/internal/scope"
)

// Property lists of consumption-api.md §3.3, typed out independently of records.go.
var (
	specLegacy = strings.Fields(`billingAccountId billingAccountName billingPeriodStartDate billingPeriodEndDate
		billingProfileId billingProfileName accountOwnerId accountName subscriptionId subscriptionName date product
		partNumber meterId meterDetails quantity effectivePrice cost unitPrice billingCurrency resourceLocation
		consumedService resourceId resourceName serviceInfo1 serviceInfo2 additionalInfo invoiceSection costCenter
		resourceGroup reservationId reservationName productOrderId productOrderName offerId isAzureCreditEligible term
		publisherName publisherType planName chargeType frequency payGPrice benefitId benefitName pricingModel`)
	specModern = strings.Fields(`billingAccountId effectivePrice pricingModel billingAccountName
		billingPeriodStartDate billingPeriodEndDate billingProfileId billingProfileName subscriptionGuid
		subscriptionName date product meterId meterName meterRegion meterCategory meterSubCategory serviceFamily
		quantity unitOfMeasure instanceName costInUSD unitPrice billingCurrencyCode resourceLocation consumedService
		serviceInfo1 serviceInfo2 additionalInfo invoiceSectionId invoiceSectionName costCenter resourceGroup
		reservationId reservationName productOrderId productOrderName isAzureCreditEligible term publisherName
		publisherType chargeType frequency costInBillingCurrency costInPricingCurrency exchangeRate exchangeRateDate
		invoiceId previousInvoiceId pricingCurrencyCode productIdentifier resourceLocationNormalized
		servicePeriodStartDate servicePeriodEndDate customerTenantId customerName partnerTenantId partnerName
		resellerMpnId resellerName publisherId marketPrice exchangeRatePricingToBilling paygCostInBillingCurrency
		paygCostInUSD partnerEarnedCreditRate partnerEarnedCreditApplied payGPrice benefitId benefitName provider
		costAllocationRuleName`)
	spec2018 = strings.Fields(`billingPeriodId invoiceId usageStart usageEnd instanceName instanceId
		instanceLocation currency usageQuantity billableQuantity pretaxCost isEstimated meterId meterDetails
		subscriptionGuid subscriptionName accountName departmentName product consumedService costCenter partNumber
		resourceGuid offerId chargesBilledSeparately location additionalProperties`)
)

func specNames(version, kind string) []string {
	switch {
	case version == "2018-06-30":
		return spec2018
	case version == "2019-10-01" && kind == "legacy":
		return specLegacy[:slices.Index(specLegacy, "frequency")+1]
	case version == "2019-10-01" && kind == "modern":
		return slices.DeleteFunc(slices.Clone(specModern), func(n string) bool {
			return slices.Contains([]string{"effectivePrice", "pricingModel", "payGPrice", "benefitId", "benefitName", "provider", "costAllocationRuleName"}, n)
		})
	case kind == "legacy":
		return specLegacy
	}
	return specModern
}

// fixtureProps returns the union of property names of the fixture records of a version, by kind
// (records without kind count as legacy, the shape their properties have).
func fixtureProps(t *testing.T, version string) map[string]map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "consumption", version, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures for %s: %v", version, err)
	}
	out := map[string]map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ex struct {
			Responses map[string]struct {
				Body struct {
					Value []struct {
						Kind       string         `json:"kind"`
						Properties map[string]any `json:"properties"`
					} `json:"value"`
				} `json:"body"`
			} `json:"responses"`
		}
		if err := json.Unmarshal(b, &ex); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range ex.Responses["200"].Body.Value {
			k := r.Kind
			if k == "" && version != "2018-06-30" {
				k = "legacy"
			}
			if out[k] == nil {
				out[k] = map[string]bool{}
			}
			for p := range r.Properties {
				out[k][p] = true
			}
		}
	}
	return out
}

// orderedKeys returns the keys of a JSON object in document order.
func orderedKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestRecordShapesMatchSpecAndFixtures(t *testing.T) {
	s, ts := newTestServer(t, nil)
	legacySub := "/subscriptions/" + s.w.subs[0].guid
	modernSub := ""
	for _, sub := range s.w.subs {
		if sub.modern {
			modernSub = "/subscriptions/" + sub.guid
			break
		}
	}
	for _, v := range APIVersions {
		fx := fixtureProps(t, v.Name)
		kinds := []string{"legacy", "modern"}
		if v.Name == "2018-06-30" {
			kinds = []string{""}
		}
		for _, kind := range kinds {
			t.Run(v.Name+"/"+kind, func(t *testing.T) {
				want := specNames(v.Name, kind)
				pn := PropertyNames(v.Name, kind)
				if kind == "" {
					pn = PropertyNames(v.Name, "legacy")
				}
				if !slices.Equal(pn, want) {
					t.Fatalf("PropertyNames = %v\nwant %v", pn, want)
				}
				for p := range fx[kind] {
					if !slices.Contains(want, p) {
						t.Errorf("fixture property %q is not in the %s %s shape", p, v.Name, kind)
					}
				}
				if len(fx[kind]) == 0 {
					t.Errorf("no %s fixture records for %s", kind, v.Name)
				}
				sc := legacySub
				if kind == "modern" {
					sc = modernSub
				}
				resp, body := get(t, s, usageURL(ts.URL, sc, "api-version="+v.Name+"&$top=5"))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				var p page
				if err := json.Unmarshal(body, &p); err != nil || len(p.Value) != 5 {
					t.Fatalf("page: %v, %d records", err, len(p.Value))
				}
				wantTop := []string{"id", "name", "type", "kind", "tags", "properties"}
				if kind == "" {
					wantTop = []string{"id", "name", "type", "tags", "properties"}
				}
				for _, raw := range p.Value {
					if got := orderedKeys(t, raw); !slices.Equal(got, wantTop) {
						t.Errorf("envelope keys %v, want %v", got, wantTop)
					}
					var env struct {
						Kind       string          `json:"kind"`
						Properties json.RawMessage `json:"properties"`
					}
					_ = json.Unmarshal(raw, &env)
					if env.Kind != kind {
						t.Errorf("kind %q, want %q", env.Kind, kind)
					}
					if got := orderedKeys(t, env.Properties); !slices.Equal(got, want) {
						t.Errorf("properties %v\nwant %v", got, want)
					}
				}
			})
		}
	}
}

func TestEveryScopeFormAndVersion(t *testing.T) {
	s, ts := newTestServer(t, &Options{RecordsPerDay: 1})
	for _, sc := range s.Scopes() {
		for _, v := range APIVersions {
			subs, _ := s.w.resolve(sc)
			modern := sc.Channel() == scope.Modern || subs[0].modern
			paths := []string{sc.Path()}
			webDirect := sc.Kind == scope.Subscription && subs[0].offer == OfferWebDirect
			switch {
			case webDirect: // its own period names; refused from 2019-10-01 on
				paths = append(paths, sc.PeriodPath("202402-1"))
			case sc.SupportsBillingPeriod():
				paths = append(paths, sc.PeriodPath("202402"), sc.PeriodPath("20240201"))
			}
			for _, p := range paths {
				t.Run(v.Name+p, func(t *testing.T) {
					resp, body := get(t, s, usageURL(ts.URL, p, "api-version="+v.Name+"&$top=3"))
					if webDirect && p != sc.Path() && !v.flat {
						if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Web Direct Offer") {
							t.Fatalf("status %d %s, want 400 for a Web Direct billing period", resp.StatusCode, body)
						}
						return
					}
					if v.Name == "2018-06-30" && modern {
						if resp.StatusCode != http.StatusBadRequest || errorCode(t, body) != "InvalidApiVersionParameter" {
							t.Fatalf("status %d %s, want 400 InvalidApiVersionParameter", resp.StatusCode, body)
						}
						return
					}
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("status %d: %s", resp.StatusCode, body)
					}
					for _, h := range []string{"x-ms-request-id", "x-ms-correlation-request-id"} {
						if !isGUID(resp.Header.Get(h)) {
							t.Errorf("%s = %q, want a GUID", h, resp.Header.Get(h))
						}
					}
					var pg page
					if err := json.Unmarshal(body, &pg); err != nil || len(pg.Value) != 3 || pg.NextLink == nil {
						t.Fatalf("page: err %v, %d records, nextLink %v", err, len(pg.Value), pg.NextLink)
					}
					wantKind := "legacy"
					switch {
					case v.Name == "2018-06-30":
						wantKind = ""
					case modern:
						wantKind = "modern"
					}
					for _, raw := range pg.Value {
						d := decodeRecord(t, raw)
						got := ""
						if d.Kind != nil {
							got = *d.Kind
						}
						if got != wantKind {
							t.Errorf("kind %q, want %q", got, wantKind)
						}
						if strings.Contains(p, "billingPeriods") {
							date, _ := d.Properties["date"].(string)
							if date == "" {
								date, _ = d.Properties["usageStart"].(string)
							}
							if !strings.HasPrefix(date, "2024-02") {
								t.Errorf("date %q outside billing period 202402", date)
							}
						}
					}
				})
			}
		}
	}
}

func TestScopeSpellingsAndErrors(t *testing.T) {
	s, ts := newTestServer(t, nil)
	sub := s.w.subs[0].guid
	cases := []struct {
		name, path, query string
		status            int
		code              string
	}{
		{"upper-case segments", "/PROVIDERS/MICROSOFT.BILLING/BILLINGACCOUNTS/8608480", "api-version=2024-08-01", 200, ""},
		{"example casing", "/providers/Microsoft.Billing/Departments/301001", "api-version=2021-10-01", 200, ""},
		{"invoice section without profile", "/providers/Microsoft.Billing/BillingAccounts/" + MCABillingAccount + "/invoiceSections/IJ90-KL12-PJA-TGB", "api-version=2024-08-01", 200, ""},
		{"upper-case subscription id", "/subscriptions/" + strings.ToUpper(sub), "api-version=2024-08-01", 200, ""},
		{"period sub-scope casing", "/subscriptions/" + sub + "/PROVIDERS/Microsoft.Billing/BillingPeriods/202402", "api-version=2023-11-01", 200, ""},
		{"trailing slash", "/providers/Microsoft.Billing/enrollmentAccounts/4210001/", "api-version=2024-08-01", 200, ""},
		{"double slash", "//subscriptions/" + sub, "api-version=2024-08-01", 404, "NotFound"},
		{"unknown subscription", "/subscriptions/00000000-0000-0000-0000-000000000000", "api-version=2024-08-01", 404, "SubscriptionNotFound"},
		{"unknown enrollment", "/providers/Microsoft.Billing/billingAccounts/1111111", "api-version=2024-08-01", 404, "NotFound"},
		{"unknown department", "/providers/Microsoft.Billing/departments/999", "api-version=2024-08-01", 404, "NotFound"},
		{"unknown management group", "/providers/Microsoft.Management/managementGroups/other", "api-version=2024-08-01", 404, "NotFound"},
		{"section under wrong profile", "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/billingProfiles/EF56-GH78-BG7-TGB/invoiceSections/IJ90-KL12-PJA-TGB", "api-version=2024-08-01", 404, "NotFound"},
		{"resource group is no scope", "/subscriptions/" + sub + "/resourceGroups/rg-web-prod", "api-version=2024-08-01", 404, "NotFound"},
		{"unknown api-version", "/subscriptions/" + sub, "api-version=2020-01-01", 400, "InvalidApiVersionParameter"},
		{"missing api-version", "/subscriptions/" + sub, "", 400, "MissingApiVersionParameter"},
		{"MCA with billing period", "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/providers/Microsoft.Billing/billingPeriods/202402", "api-version=2024-08-01", 400, "BadRequest"},
		{"bad billing period", "/subscriptions/" + sub + "/providers/Microsoft.Billing/billingPeriods/202413", "api-version=2024-08-01", 400, "BadRequest"},
		{"bad metric", "/subscriptions/" + sub, "api-version=2024-08-01&metric=cost", 400, "BadRequest"},
		{"metric upper case", "/subscriptions/" + sub, "api-version=2024-08-01&metric=AmortizedCost", 200, ""},
		{"$apply in 2018-06-30", "/subscriptions/" + sub, "api-version=2018-06-30&$apply=groupby((tags))", 400, "BadRequest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(t, s, usageURL(ts.URL, c.path, c.query))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.code != "" {
				if got := errorCode(t, body); got != c.code {
					t.Errorf("code %q, want %q", got, c.code)
				}
			}
		})
	}
	t.Run("POST is not allowed", func(t *testing.T) {
		resp, _ := do(t, s, http.MethodPost, usageURL(ts.URL, "/subscriptions/"+sub, "api-version=2024-08-01"), []byte("{}"))
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", resp.StatusCode)
		}
	})
}

// pagingCase fetches a whole month through the API with $top=7 and compares with GroundTruth.
func TestPagingMatchesGroundTruth(t *testing.T) {
	s, ts := newTestServer(t, &Options{RecordsPerDay: 3})
	prof := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/billingProfiles/EF56-GH78-BG7-TGB"
	cust := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/customers/2e4f6a8b-0c1d-4e3f-9a5b-7c9d1e3f5a7b"
	cases := []struct {
		scope, version, metric string
		modern                 bool
	}{
		{"/providers/Microsoft.Billing/departments/301001", "2024-08-01", "actualcost", false},
		{"/providers/Microsoft.Billing/departments/301001", "2024-08-01", "amortizedcost", false},
		{"/providers/Microsoft.Billing/billingAccounts/" + EABillingAccountEUR, "2019-10-01", "usage", false},
		{"/providers/Microsoft.Management/managementGroups/" + ManagementGroupID, "2023-11-01", "actualcost", false},
		{"/subscriptions/" + s.w.subs[0].guid, "2018-06-30", "", false},
		{prof, "2021-10-01", "amortizedcost", true},
		{cust, "2023-05-01", "actualcost", true},
	}
	p := period.Period{Year: 2024, Month: 2}
	for _, c := range cases {
		t.Run(c.version+c.scope+"/"+c.metric, func(t *testing.T) {
			sc := scope.MustParse(c.scope)
			q := "api-version=" + c.version + "&$top=7"
			if c.metric != "" {
				q += "&metric=" + c.metric
			}
			first := usageURL(ts.URL, sc.PeriodPath("202402"), q)
			if c.modern {
				first = usageURL(ts.URL, c.scope, q+"&startDate=2024-02-01&endDate=2024-02-29")
			}
			recs, pages := fetchAll(t, s, first)
			want, err := s.GroundTruthVersion(sc, p, c.metric, c.version)
			if err != nil {
				t.Fatal(err)
			}
			if want.Rows == 0 {
				t.Fatal("ground truth has no rows")
			}
			compareTruth(t, truthOfRecords(t, recs), want)
			if wantPages := (want.Rows + 6) / 7; pages != wantPages {
				t.Errorf("pages %d, want %d", pages, wantPages)
			}
		})
	}
}

func TestMetricsDiffer(t *testing.T) {
	s, _ := newTestServer(t, nil)
	sc := scope.MustParse("/providers/Microsoft.Billing/billingAccounts/" + EABillingAccount)
	p := period.Period{Year: 2024, Month: 1}
	actual, _ := s.GroundTruth(sc, p, "actualcost")
	amort, _ := s.GroundTruth(sc, p, "amortizedcost")
	usage, _ := s.GroundTruth(sc, p, "usage")
	if actual.Rows == amort.Rows || actual.Sums["USD"] == amort.Sums["USD"] || actual.Hash == amort.Hash {
		t.Errorf("actual %+v and amortized %+v do not differ", actual, amort)
	}
	compareTruth(t, usage, actual)
	if actual.MinDate != "2024-01-01" || actual.MaxDate != "2024-01-31" {
		t.Errorf("dates %s..%s, want the whole of January", actual.MinDate, actual.MaxDate)
	}
	current, _ := s.GroundTruth(sc, period.Period{Year: 2024, Month: 3}, "actualcost")
	if current.MaxDate != "2024-03-15" {
		t.Errorf("current month ends %s, want Now's day 2024-03-15", current.MaxDate)
	}
	before, _ := s.GroundTruth(sc, period.Period{Year: 2023, Month: 1}, "actualcost")
	if before.Rows != 0 || len(before.Sums) != 0 || before.MinDate != "" {
		t.Errorf("month before FirstMonth: %+v, want empty", before)
	}
}

func TestEmptyResultPerVersion(t *testing.T) {
	s, ts := newTestServer(t, nil)
	sub := "/subscriptions/" + s.w.subs[0].guid + "/providers/Microsoft.Billing/billingPeriods/202301"
	for _, v := range APIVersions {
		t.Run(v.Name, func(t *testing.T) {
			resp, body := get(t, s, usageURL(ts.URL, sub, "api-version="+v.Name))
			if v.Has204 {
				if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
					t.Errorf("status %d body %q, want 204 and no body", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || string(body) != `{"value":[]}` {
				t.Errorf("status %d body %q, want 200 {\"value\":[]}", resp.StatusCode, body)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	s, ts := newTestServer(t, nil)
	u := usageURL(ts.URL, "/subscriptions/"+s.w.subs[0].guid, "api-version=2024-08-01")
	cases := []struct{ name, auth, code string }{
		{"missing", "", "AuthenticationFailed"},
		{"wrong token", "Bearer nope", "InvalidAuthenticationToken"},
		{"wrong scheme", "Basic " + s.Token(), "InvalidAuthenticationToken"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e armError
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != http.StatusUnauthorized || e.Error.Code != c.code {
				t.Errorf("status %d code %q, want 401 %q", resp.StatusCode, e.Error.Code, c.code)
			}
			mustContain(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
		})
	}
	t.Run("control endpoints need no token", func(t *testing.T) {
		for _, p := range []string{"/sandbox/stats", "/sandbox/faults", "/sandbox/groundtruth?scope=/subscriptions/" + s.w.subs[0].guid + "&period=202402&metric=actualcost"} {
			resp, body := get(t, nil, ts.URL+p)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: status %d: %s", p, resp.StatusCode, body)
			}
		}
	})
}

func TestTopAndPageSize(t *testing.T) {
	s, ts := newTestServer(t, &Options{PageSize: 5})
	base := "/subscriptions/" + s.w.subs[0].guid
	for _, top := range []string{"0", "1001", "abc", "-1", ""} {
		t.Run("top="+top, func(t *testing.T) {
			resp, body := get(t, s, usageURL(ts.URL, base, "api-version=2024-08-01&$top="+top))
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", resp.StatusCode, body)
			}
		})
	}
	for _, c := range []struct {
		query string
		want  int
	}{{"", 5}, {"&$top=1000", rowsBetween(s, s.w.subs[0], 1, 15)}, {"&$top=1", 1}} {
		t.Run("records"+c.query, func(t *testing.T) {
			_, body := get(t, s, usageURL(ts.URL, base, "api-version=2024-08-01&startDate=2024-03-01&endDate=2024-03-15"+c.query))
			var p page
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Value) != c.want {
				t.Errorf("%d records, want %d", len(p.Value), c.want)
			}
		})
	}
	if _, err := New(&Options{PageSize: 1001}); err == nil {
		t.Error("New accepted PageSize 1001")
	}
}

// rowsBetween counts the actual-cost rows of a subscription on March 2024's days from..to.
func rowsBetween(s *Server, sub *subscription, from, to int) int {
	n := 0
	for d := from; d <= to; d++ {
		n += s.w.rowsOn(sub, time.Date(2024, 3, d, 0, 0, 0, 0, time.UTC), MetricActualCost, s.o.RecordsPerDay)
	}
	return n
}

func TestNextLinkAndSkiptoken(t *testing.T) {
	s, ts := newTestServer(t, nil)
	q := "api-version=2024-08-01&$top=2&$filter=" + url.QueryEscape("properties/usageStart ge '2024-03-01' and properties/usageEnd le '2024-03-10'") + "&metric=actualcost"
	_, body := get(t, s, usageURL(ts.URL, "/providers/Microsoft.Billing/departments/301002", q))
	var p page
	if err := json.Unmarshal(body, &p); err != nil || p.NextLink == nil {
		t.Fatalf("first page: %v, nextLink %v", err, p.NextLink)
	}
	link := *p.NextLink
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, ts.URL+"/providers/Microsoft.Billing/departments/301002/providers/Microsoft.Consumption/usageDetails?") {
		t.Errorf("nextLink %q is not on the same host and path", link)
	}
	lq := u.Query()
	for k, want := range map[string]string{"api-version": "2024-08-01", "$top": "2", "metric": "actualcost", "skiptokenver": "v1",
		"$filter": "properties/usageStart ge '2024-03-01' and properties/usageEnd le '2024-03-10'"} {
		if got := lq.Get(k); got != want {
			t.Errorf("nextLink %s = %q, want %q", k, got, want)
		}
	}
	if !isGUID(lq.Get("id")) || lq.Get("$skiptoken") == "" {
		t.Errorf("nextLink id %q / $skiptoken %q", lq.Get("id"), lq.Get("$skiptoken"))
	}
	tok := lq.Get("$skiptoken")
	flip := "0"
	if tok[5] == '0' {
		flip = "1"
	}
	tampered := tok[:5] + flip + tok[6:]
	noID := url.Values{}
	for k, v := range lq {
		if k != "id" {
			noID[k] = v
		}
	}
	otherQuery := strings.Replace(link, "2024-03-10%27", "2024-03-11%27", 1)
	bad := map[string]string{
		"tampered token":    strings.Replace(link, tok, tampered, 1),
		"no id":             u.Scheme + "://" + u.Host + u.Path + "?" + noID.Encode(),
		"other id":          strings.Replace(link, lq.Get("id"), uuid.NewString(), 1),
		"only the token":    u.Scheme + "://" + u.Host + u.Path + "?api-version=2024-08-01&$skiptoken=" + tok,
		"query was changed": otherQuery,
	}
	if otherQuery == link {
		t.Fatalf("test bug: %q has no date to change", link)
	}
	for name, l := range bad {
		t.Run(name, func(t *testing.T) {
			resp, body := get(t, s, l)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, body)
			}
			mustContain(t, string(body), "id query parameter is not a valid Guid")
		})
	}
	resp, _ := get(t, s, link)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the untouched nextLink: status %d", resp.StatusCode)
	}
}

func TestDateSelection(t *testing.T) {
	s, ts := newTestServer(t, nil)
	ignoring, ts2 := newTestServer(t, &Options{IgnoreDateFilter: true})
	ea := "/providers/Microsoft.Billing/departments/301001"
	mca := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/billingProfiles/AB12-CD34-BG7-TGB"
	legacySub := "/subscriptions/" + s.w.subs[0].guid
	var modernSub string
	for _, sub := range s.w.subs {
		if sub.modern {
			modernSub = "/subscriptions/" + sub.guid
		}
	}
	cust := "/providers/Microsoft.Billing/billingAccounts/" + MCABillingAccount + "/customers/" + s.w.mca.customers[0].id
	var cspSub string
	for _, sub := range s.w.subs {
		if sub.customer != nil {
			cspSub = "/subscriptions/" + sub.guid
			break
		}
	}
	filter := func(lo, hi string) string {
		return "$filter=" + url.QueryEscape("properties/usageStart ge '"+lo+"' and properties/usageEnd le '"+hi+"'")
	}
	cases := []struct {
		name   string
		srv    *Server
		base   string
		path   string
		query  string
		lo, hi string // expected first and last day
	}{
		{"EA $filter", s, ts.URL, ea, filter("2024-02-10", "2024-02-12"), "2024-02-10", "2024-02-12"},
		{"EA $filter AND upper case", s, ts.URL, ea, "$filter=" + url.QueryEscape("properties/usageEnd ge '2024-02-10' AND properties/usageEnd le '2024-02-11T00:00:00Z'"), "2024-02-10", "2024-02-11"},
		{"EA ignores startDate/endDate", s, ts.URL, ea, "startDate=2024-02-10&endDate=2024-02-12", "2024-03-01", "2024-03-15"},
		{"EA single bound narrows current month", s, ts.URL, ea, "$filter=" + url.QueryEscape("properties/usageStart gt '2024-03-09'"), "2024-03-10", "2024-03-15"},
		{"EA period only", s, ts.URL, ea + "/providers/Microsoft.Billing/billingPeriods/202401", "", "2024-01-01", "2024-01-31"},
		{"EA period plus dates: dates win", s, ts.URL, ea + "/providers/Microsoft.Billing/billingPeriods/202401", filter("2024-02-03", "2024-02-04"), "2024-02-03", "2024-02-04"},
		{"EA range crossing months", s, ts.URL, ea, filter("2024-01-30", "2024-02-02"), "2024-01-30", "2024-02-02"},
		{"EA range clipped to Now", s, ts.URL, ea, filter("2024-03-10", "2024-04-30"), "2024-03-10", "2024-03-15"},
		{"MCA startDate/endDate", s, ts.URL, mca, "startDate=2024-02-10&endDate=2024-02-12", "2024-02-10", "2024-02-12"},
		{"MCA ignores $filter dates", s, ts.URL, mca, filter("2024-02-10", "2024-02-12"), "2024-03-01", "2024-03-15"},
		{"MCA single date is ignored", s, ts.URL, mca, "startDate=2024-02-10", "2024-03-01", "2024-03-15"},
		{"legacy subscription startDate", s, ts.URL, legacySub, "startDate=2024-02-10&endDate=2024-02-12", "2024-02-10", "2024-02-12"},
		{"legacy subscription $filter", s, ts.URL, legacySub, filter("2024-02-11", "2024-02-12"), "2024-02-11", "2024-02-12"},
		{"modern subscription ignores $filter", s, ts.URL, modernSub, filter("2024-02-11", "2024-02-12"), "2024-03-01", "2024-03-15"},
		{"no dates: current month", s, ts.URL, ea, "", "2024-03-01", "2024-03-15"},
		{"IgnoreDateFilter returns whole month", ignoring, ts2.URL, ea, filter("2024-02-10", "2024-02-12"), "2024-02-01", "2024-02-29"},
		{"IgnoreDateFilter MCA", ignoring, ts2.URL, mca, "startDate=2024-01-10&endDate=2024-02-12", "2024-01-01", "2024-02-29"},
		{"IgnoreDateFilter billing period", ignoring, ts2.URL, legacySub + "/providers/Microsoft.Billing/billingPeriods/202401", filter("2024-02-10", "2024-02-12"), "2024-01-01", "2024-01-31"},
		{"IgnoreDateFilter CSP customer: the current period", ignoring, ts2.URL, cust, "startDate=2024-01-10&endDate=2024-02-12", "2024-03-01", "2024-03-15"},
		{"IgnoreDateFilter CSP subscription: the current period", ignoring, ts2.URL, cspSub, "startDate=2024-01-01&endDate=2024-01-31", "2024-03-01", "2024-03-15"},
		{"CSP customer honours the range otherwise", s, ts.URL, cust, "startDate=2024-01-10&endDate=2024-01-12", "2024-01-10", "2024-01-12"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, _ := fetchAll(t, c.srv, usageURL(c.base, c.path, "api-version=2024-08-01&"+c.query))
			days := recordDates(t, recs)
			keys := make([]string, 0, len(days))
			for d := range days {
				keys = append(keys, d)
			}
			slices.Sort(keys)
			if len(keys) == 0 || keys[0] != c.lo || keys[len(keys)-1] != c.hi {
				t.Fatalf("days %v, want %s..%s", keys, c.lo, c.hi)
			}
		})
	}
	bad := []struct{ name, path, query string }{
		{"more than 12 months", ea, filter("2023-02-01", "2024-02-01")},
		{"end before start", mca, "startDate=2024-02-10&endDate=2024-02-01"},
		{"bad date", mca, "startDate=2024-02-30&endDate=2024-03-01"},
		{"filter end before start", ea, filter("2024-02-10", "2024-02-01")},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(t, s, usageURL(ts.URL, c.path, "api-version=2024-08-01&"+c.query))
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", resp.StatusCode, body)
			}
		})
	}
	t.Run("12 months exactly is allowed", func(t *testing.T) {
		resp, body := get(t, s, usageURL(ts.URL, ea, "api-version=2024-08-01&$top=1&"+filter("2023-03-16", "2024-03-15")))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d: %s", resp.StatusCode, body)
		}
	})
}

func TestFilterTerms(t *testing.T) {
	s, ts := newTestServer(t, nil)
	sub := s.w.subs[0] // has a reservation
	path := "/subscriptions/" + sub.guid + "/providers/Microsoft.Billing/billingPeriods/202402"
	all, _ := fetchAll(t, s, usageURL(ts.URL, path, "api-version=2024-08-01"))
	group := sub.resources[1].group
	cases := []struct {
		filter string
		keep   func(d decoded) bool
	}{
		{"tags eq 'app:web'", func(d decoded) bool { return d.Tags["app"] == "web" }},
		{"properties/resourceGroup eq '" + strings.ToUpper(group) + "'", func(d decoded) bool { return d.Properties["resourceGroup"] == group }},
		{"properties/chargeType eq 'Purchase'", func(d decoded) bool { return d.Properties["chargeType"] == "Purchase" }},
		{"properties/reservationId eq '" + sub.reservation.id + "' and properties/chargeType eq 'Usage'", func(d decoded) bool {
			return d.Properties["reservationId"] == sub.reservation.id && d.Properties["chargeType"] == "Usage"
		}},
		{"properties/resourceName eq '" + sub.resources[1].name + "'", func(d decoded) bool { return d.Properties["resourceName"] == sub.resources[1].name }},
		{"properties/publisherType eq 'azure'", func(d decoded) bool { return true }},
	}
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			recs, _ := fetchAll(t, s, usageURL(ts.URL, path, "api-version=2024-08-01&$top=3&$filter="+url.QueryEscape(c.filter)))
			want := 0
			for _, raw := range all {
				if c.keep(decodeRecord(t, raw)) {
					want++
				}
			}
			if want == 0 {
				t.Fatal("test data has no matching record")
			}
			if len(recs) != want {
				t.Errorf("%d records, want %d", len(recs), want)
			}
			for _, raw := range recs {
				if !c.keep(decodeRecord(t, raw)) {
					t.Errorf("record does not match: %s", raw)
				}
			}
		})
	}
	for _, f := range []string{
		"properties/chargeType ne 'Usage'",
		"properties/chargeType eq 'Usage' or properties/chargeType eq 'Purchase'",
		"not properties/chargeType eq 'Usage'",
		"(properties/chargeType eq 'Usage')",
		"properties/meterId eq 'x'",
		"tags eq 'nocolon'",
		"properties/chargeType eq Usage",
		"properties/usageStart ge '2024/02/01'",
		"properties/chargeType eq 'Usage' and",
		"properties/chargeType eq 'unterminated",
	} {
		t.Run("unsupported "+f, func(t *testing.T) {
			resp, body := get(t, s, usageURL(ts.URL, path, "api-version=2024-08-01&$filter="+url.QueryEscape(f)))
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", resp.StatusCode, body)
			}
		})
	}
	t.Run("2018-06-30 fields", func(t *testing.T) {
		name := sub.resources[1].name
		recs, _ := fetchAll(t, s, usageURL(ts.URL, path, "api-version=2018-06-30&$filter="+url.QueryEscape("properties/instanceName eq '"+name+"'")))
		if len(recs) == 0 {
			t.Fatal("no records")
		}
		for _, raw := range recs {
			if got := decodeRecord(t, raw).Properties["instanceName"]; got != name {
				t.Errorf("instanceName %v, want %s", got, name)
			}
		}
		resp, _ := get(t, s, usageURL(ts.URL, path, "api-version=2018-06-30&$filter="+url.QueryEscape("properties/chargeType eq 'Usage'")))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("chargeType in 2018-06-30: status %d, want 400", resp.StatusCode)
		}
	})
}

func TestExpandMeterDetails(t *testing.T) {
	s, ts := newTestServer(t, nil)
	path := "/subscriptions/" + s.w.subs[0].guid
	for _, c := range []struct {
		version, expand string
		want            bool
	}{
		{"2024-08-01", "", false},
		{"2024-08-01", "meterDetails,additionalInfo", true},
		{"2021-10-01", "properties/meterDetails,properties/additionalInfo", true},
		{"2018-06-30", "properties/meterDetails", true},
		{"2023-05-01", "properties/additionalInfo", false},
	} {
		t.Run(fmt.Sprintf("%s %q", c.version, c.expand), func(t *testing.T) {
			_, body := get(t, s, usageURL(ts.URL, path, "api-version="+c.version+"&$top=2&$expand="+url.QueryEscape(c.expand)))
			var p page
			_ = json.Unmarshal(body, &p)
			if len(p.Value) == 0 {
				t.Fatalf("no records: %s", body)
			}
			for _, raw := range p.Value {
				d := decodeRecord(t, raw)
				md, present := d.Properties["meterDetails"]
				if !present {
					t.Fatal("meterDetails missing")
				}
				if got := md != nil; got != c.want {
					t.Errorf("meterDetails %v, want expanded=%v", md, c.want)
				}
				if _, ok := d.Properties["additionalInfo"]; !ok && c.version != "2018-06-30" {
					t.Error("additionalInfo missing")
				}
			}
		})
	}
}

// BenchmarkServePages follows nextLinks over a large enrollment (1000-record pages) and reports
// records served per second. The client does not decode the records (a JSON decoder would cost
// several times what the server does); it counts them by their "id" keys.
func BenchmarkServePages(b *testing.B) {
	s, err := New(&Options{RecordsPerDay: 3000, Token: "t", Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	first := usageURL(srv.URL, "/providers/Microsoft.Billing/billingAccounts/"+EABillingAccount+"/providers/Microsoft.Billing/billingPeriods/202402", "api-version=2024-08-01")
	link := first
	records := 0
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest(http.MethodGet, link, nil)
		req.Header.Set("Authorization", "Bearer t")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		records += bytes.Count(body, []byte(`{"id":`))
		link = first
		if i := bytes.LastIndex(body, []byte(`"nextLink":"`)); i >= 0 {
			link = string(body[i+len(`"nextLink":"`) : len(body)-2])
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(records)/cpu.Seconds(), "records/cpu-s")
	}
}

// TestContinuationSurvivesNewDay moves "today" between pages: the continuation resumes where
// it stopped (no row repeated or skipped), although the newest day of the sequence changed.
func TestContinuationSurvivesNewDay(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	s, ts := newTestServer(t, &Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	sc := scope.MustParse("/providers/Microsoft.Billing/departments/301001")
	want, err := s.GroundTruth(sc, period.Period{Year: 2024, Month: 3}, "actualcost")
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, s, usageURL(ts.URL, sc.Path(), "api-version=2024-08-01&$top=10"))
	var p page
	if err := json.Unmarshal(body, &p); err != nil || p.NextLink == nil {
		t.Fatalf("first page: %v", err)
	}
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	rest, _ := fetchAll(t, s, *p.NextLink)
	compareTruth(t, truthOfRecords(t, append(p.Value, rest...)), want)
}

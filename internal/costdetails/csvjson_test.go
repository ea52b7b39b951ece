package costdetails

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// convertAll converts a CSV and returns the objects as lines.
func convertAll(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	var out []string
	n, err := ConvertCSV(r, func(obj []byte) error {
		if !json.Valid(obj) {
			t.Errorf("object %d is not valid JSON: %s", len(out), obj)
		}
		out = append(out, string(obj))
		return nil
	})
	if n != len(out) {
		t.Errorf("ConvertCSV returned %d rows, emitted %d", n, len(out))
	}
	return out, err
}

func gzipped(t *testing.T, parts ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range parts { // one gzip member per part, as concatenated gzip files are
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// schemaCSV writes a CSV with the published header of a schema version and one row per map
// (header → cell; other cells empty).
func schemaCSV(t *testing.T, schema string, rows ...map[string]string) string {
	t.Helper()
	s := LookupSchema(schema)
	if s == nil {
		t.Fatalf("no schema %s", schema)
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	var rec []string
	for _, c := range s.Columns {
		rec = append(rec, c.Header)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		rec = rec[:0]
		for _, c := range s.Columns {
			rec = append(rec, r[c.Header])
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	return b.String()
}

// decodeLine decodes a line keeping numbers as their text.
func decodeLine(t *testing.T, line string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("line %s: %v", line, err)
	}
	return m
}

func TestConvertCSVValues(t *testing.T) {
	type want map[string]any // path ("properties.cost", "tags", …) → value after decodeLine
	tests := []struct {
		name   string
		schema string
		row    map[string]string
		want   want
		absent []string
	}{
		{
			name:   "MCA numbers keep their digits; empty is null; other text stays a string",
			schema: "mca-2023-12-01-preview",
			row: map[string]string{"quantity": "0.0000000072922557592391990000", "effectivePrice": "1.5E-7",
				"costInBillingCurrency": "-0", "costInUsd": "", "unitPrice": "N/A", "PayGPrice": ".5"},
			want: want{"kind": "modern", "properties.quantity": json.Number("0.0000000072922557592391990000"),
				"properties.effectivePrice": json.Number("1.5E-7"), "properties.costInBillingCurrency": json.Number("-0"),
				"properties.costInUSD": nil, "properties.unitPrice": "N/A", "properties.payGPrice": ".5",
				"properties.marketPrice": ".5"},
		},
		{
			name:   "MCA renamed columns, dates in the API's two forms, derived exchangeRate",
			schema: "mca-2021-10-01",
			row: map[string]string{"date": "05/31/2024", "billingPeriodEndDate": "05/31/2024", "servicePeriodStartDate": "05/01/2024",
				"exchangeRateDate": "2024-05-01", "exchangeRatePricingToBilling": "0.9215", "billingCurrency": "EUR",
				"pricingCurrency": "USD", "resourceGroupName": "rg", "ResourceId": "/subscriptions/x", "location": "US East",
				"SubscriptionId": "0000", "ProductId": "DZH318Z0BQ4L", "ProductName": "Virtual Machines", "costInUsd": "1.1",
				"paygCostInUsd": "2", "isAzureCreditEligible": "True"},
			want: want{"properties.date": "2024-05-31T00:00:00.0000000Z", "properties.billingPeriodEndDate": "2024-05-31T00:00:00.0000000Z",
				"properties.servicePeriodStartDate": "2024-05-01T00:00:00Z", "properties.exchangeRateDate": "2024-05-01T00:00:00Z",
				"properties.exchangeRatePricingToBilling": json.Number("0.9215"), "properties.exchangeRate": "0.9215",
				"properties.billingCurrencyCode": "EUR", "properties.pricingCurrencyCode": "USD", "properties.resourceGroup": "rg",
				"properties.instanceName": "/subscriptions/x", "properties.resourceLocationNormalized": "US East",
				"properties.subscriptionGuid": "0000", "properties.productIdentifier": "DZH318Z0BQ4L",
				"properties.product": "Virtual Machines", "properties.costInUSD": json.Number("1.1"),
				"properties.paygCostInUSD": json.Number("2"), "properties.isAzureCreditEligible": true,
				"properties.servicePeriodEndDate": nil},
			absent: []string{"properties.customerTenantId", "properties.partnerEarnedCreditApplied", "properties.meterDetails", ExtraColumnsMember},
		},
		{
			name:   "MCA tags without braces become the envelope object; additionalInfo stays JSON text",
			schema: "mca-2023-12-01-preview",
			row: map[string]string{"tags": `"env": "prod","org": "trey, inc"`,
				"additionalInfo": `{"ServiceType":"Standard_D2s_v3","VCPUs":2,"RINormalizationRatio":2.0}`},
			want: want{"tags": map[string]any{"env": "prod", "org": "trey, inc"},
				"properties.additionalInfo": `{"ServiceType":"Standard_D2s_v3","VCPUs":2,"RINormalizationRatio":2.0}`},
		},
		{
			name:   "tags with braces, booleans in any case",
			schema: "mca-2023-12-01-preview",
			row:    map[string]string{"tags": ` {"a": ""} `, "isAzureCreditEligible": "FALSE"},
			want:   want{"tags": map[string]any{"a": ""}, "properties.isAzureCreditEligible": false},
		},
		{
			name:   "empty tags are {}, an empty boolean is null, other text a string",
			schema: "ea-2024-08-01",
			row:    map[string]string{"IsAzureCreditEligible": "1"},
			want:   want{"tags": map[string]any{}, "properties.isAzureCreditEligible": "1"},
		},
		{
			name:   "a Tags cell that is not JSON is kept under costDetailsColumns.Tags",
			schema: "ea-2024-08-01",
			row:    map[string]string{"Tags": `env=prod;org=trey`},
			want:   want{"tags": map[string]any{}, ExtraColumnsMember + ".Tags": "env=prod;org=trey"},
		},
		{
			name:   "EA meter columns go to meterDetails; columns without JSON to costDetailsColumns",
			schema: "ea-2024-08-01",
			row: map[string]string{"MeterName": "D2s v3", "MeterCategory": "Virtual Machines", "MeterSubCategory": "Dsv3",
				"UnitOfMeasure": "1 Hour", "ServiceFamily": "Compute", "MeterRegion": "US East", "AccountId": "42",
				"AvailabilityZone": "1", "InvoiceSectionId": "d1", "ResourceLocationNormalized": "US East",
				"CostInBillingCurrency": "12.5", "BillingCurrencyCode": "EUR", "InvoiceSectionName": "Dept",
				"ProductName": "VM", "BillingPeriodStartDate": "05/01/2024", "Term": "12"},
			want: want{"kind": "legacy", "properties.meterDetails": map[string]any{"meterName": "D2s v3",
				"meterCategory": "Virtual Machines", "meterSubCategory": "Dsv3", "unitOfMeasure": "1 Hour", "serviceFamily": "Compute"},
				ExtraColumnsMember: map[string]any{"MeterRegion": "US East", "AvailabilityZone": "1", "InvoiceSectionId": "d1",
					"CostAllocationRuleName": "", "AccountId": "42", "ResourceLocationNormalized": "US East"},
				"properties.cost": json.Number("12.5"), "properties.billingCurrency": "EUR",
				"properties.invoiceSection": "Dept", "properties.product": "VM", "properties.term": "12",
				"properties.billingPeriodStartDate": "2024-05-01T00:00:00.0000000Z"},
			absent: []string{"properties.meterName", "properties.exchangeRate", "properties.marketPrice", "id", "name", "type", "etag"},
		},
		{
			name:   "quoted commas, quotes and newlines; control characters and invalid UTF-8",
			schema: "ea-2023-12-01-preview",
			row:    map[string]string{"ResourceGroup": "rg,one", "ResourceName": "caf\xe9 \xe2\x82\xac", "ServiceInfo1": "a\\b\tc\x01\nd"},
			want: want{"properties.resourceGroup": "rg,one", "properties.resourceName": "caf\ufffd €",
				"properties.serviceInfo1": "a\\b\tc\x01\nd"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := schemaCSV(t, tt.schema, tt.row)
			for _, mode := range []string{"plain", "gzip"} {
				r := io.Reader(strings.NewReader(in))
				if mode == "gzip" {
					r = bytes.NewReader(gzipped(t, in))
				}
				got, err := convertAll(t, r)
				if err != nil || len(got) != 1 {
					t.Fatalf("%s: %d lines, %v", mode, len(got), err)
				}
				line := decodeLine(t, got[0])
				for path, w := range tt.want {
					v, ok := lookupPath(line, path)
					if !ok || !reflect.DeepEqual(v, w) {
						t.Errorf("%s: %s = %#v (present %v), want %#v", mode, path, v, ok, w)
					}
				}
				for _, path := range tt.absent {
					if _, ok := lookupPath(line, path); ok {
						t.Errorf("%s: %s present, want absent", mode, path)
					}
				}
			}
		})
	}
}

func lookupPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = o[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestConvertCSVPropertyOrder(t *testing.T) {
	// Lines list the properties in the API's order, whatever the file's column order: the EA
	// 2021-10-01 file (cost first) and the 2023-12-01-preview file give the same bytes.
	row := map[string]string{"CostInBillingCurrency": "1", "Date": "05/02/2024", "AccountName": "a", "Tags": `"k":"v"`}
	a, err := convertAll(t, strings.NewReader(schemaCSV(t, "ea-2021-10-01", row)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := convertAll(t, strings.NewReader(schemaCSV(t, "ea-2023-12-01-preview", row)))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 1 || len(b) != 1 || a[0] != b[0] {
		t.Fatalf("2021-10-01 %q\n2023-12-01-preview %q", a, b)
	}
	want := `{"kind":"legacy","tags":{"k":"v"},"properties":{"billingAccountId":"","billingAccountName":"",` +
		`"billingPeriodStartDate":null,"billingPeriodEndDate":null,"billingProfileId":"","billingProfileName":"",` +
		`"accountOwnerId":"","accountName":"a","subscriptionId":"","subscriptionName":"","date":"2024-05-02T00:00:00.0000000Z",`
	if !strings.HasPrefix(a[0], want) {
		t.Errorf("line starts\n%s\nwant\n%s", a[0][:min(len(a[0]), len(want))], want)
	}
}

func TestDetectSchema(t *testing.T) {
	headers := func(name string) []string {
		var h []string
		for _, c := range LookupSchema(name).Columns {
			h = append(h, c.Header)
		}
		return h
	}
	// Every version's published header set is detected as itself, except that MCA 2021-10-01
	// and 2023-12-01-preview are the same list (the first one listed wins).
	for _, s := range Schemas {
		got, _, err := DetectSchema(headers(s.Name))
		want := s.Name
		if want == "mca-2023-12-01-preview" {
			want = "mca-2021-10-01"
		}
		if err != nil || got.Name != want {
			t.Errorf("%s: detected %v, %v", s.Name, got, err)
		}
	}
	ea := headers("ea-2024-08-01")
	variants := map[string]func(h string, i int) string{
		"lower case": func(h string, _ int) string { return strings.ToLower(h) },
		"upper case": func(h string, _ int) string { return strings.ToUpper(h) },
		"BOM, spaces": func(h string, i int) string {
			return map[bool]string{true: "\ufeff", false: ""}[i == 0] + " " + h + " "
		},
		"localised": func(h string, _ int) string { return "Lokalisierter Name (" + h + ")" },
	}
	for name, f := range variants {
		var h []string
		for i, x := range ea {
			h = append(h, f(x, i))
		}
		got, idx, err := DetectSchema(h)
		if err != nil || got.Name != "ea-2024-08-01" || slices.Contains(idx, -1) {
			t.Errorf("%s: detected %v %v, %v", name, got, idx, err)
		}
	}
	// Aliases of older files (DepartmentName, PreTaxCost, SubscriptionGuid) map like the header.
	old := slices.Clone(ea)
	for i, h := range old {
		old[i] = map[string]string{"InvoiceSectionName": "DepartmentName", "CostInBillingCurrency": "PreTaxCost",
			"SubscriptionId": "SubscriptionGuid"}[h]
		if old[i] == "" {
			old[i] = h
		}
	}
	if got, _, err := DetectSchema(old); err != nil || got.Name != "ea-2024-08-01" {
		t.Errorf("aliases: %v, %v", got, err)
	}
	// An extra column is kept (index -1), not a reason to fail.
	got, idx, err := DetectSchema(append(slices.Clone(ea), "NewColumn2026"))
	if err != nil || got.Name != "ea-2024-08-01" || idx[len(idx)-1] != -1 {
		t.Errorf("extra column: %v %v, %v", got, idx, err)
	}
	// A set no version fits names itself, the closest version and what it lacks.
	_, _, err = DetectSchema(append(slices.Clone(ea[:10]), "Kosten"))
	var se *SchemaError
	if !errors.As(err, &se) || se.Closest == "" || len(se.Missing) == 0 ||
		!strings.Contains(err.Error(), "unknown Cost Details header set (11 columns: InvoiceSectionName,") ||
		!strings.Contains(err.Error(), "Kosten") || !strings.Contains(err.Error(), "lacks") {
		t.Errorf("unknown set: %v", err)
	}
	_, _, err = DetectSchema(append(slices.Clone(ea), "date"))
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("duplicate header: %v", err)
	}
}

func TestConvertCSVExtraColumnKept(t *testing.T) {
	in := strings.Replace(schemaCSV(t, "mca-2023-12-01-preview", map[string]string{"date": "05/01/2024"}), "\n", ",Neu (NewCol)\n", 1)
	in = strings.Replace(in, "\n05/01/2024", "\n05/01/2024", 1)
	lines := strings.SplitAfter(in, "\n")
	lines[1] = strings.TrimSuffix(lines[1], "\n") + ",x\n"
	got, err := convertAll(t, strings.NewReader(strings.Join(lines, "")))
	if err != nil || len(got) != 1 {
		t.Fatalf("%q %v", got, err)
	}
	if v, ok := lookupPath(decodeLine(t, got[0]), ExtraColumnsMember+".Neu (NewCol)"); !ok || v != "x" {
		t.Errorf("extra column: %v %v in %s", v, ok, got[0])
	}
}

func TestConvertCSVHeaderVariants(t *testing.T) {
	// BOM, case and localised headers give the same lines as the published header.
	row := map[string]string{"Date": "05/02/2024", "CostInBillingCurrency": "3", "MeterName": "m", "Tags": `"a":"b"`}
	plain := schemaCSV(t, "ea-2024-08-01", row)
	want, err := convertAll(t, strings.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	head, rest, _ := strings.Cut(plain, "\n")
	var loc []string
	for _, h := range strings.Split(head, ",") {
		loc = append(loc, "Spalte ("+strings.ToLower(h)+")")
	}
	for name, in := range map[string]string{
		"bom":       "\ufeff" + plain,
		"lower":     strings.ToLower(head) + "\n" + rest,
		"localised": "\ufeff" + strings.Join(loc, ",") + "\n" + rest,
	} {
		got, err := convertAll(t, strings.NewReader(in))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %q %v\nwant %q", name, got, err, want)
		}
	}
}

func TestConvertCSVEmptyAndHeaderOnly(t *testing.T) {
	for name, in := range map[string]string{"empty": "", "header only": schemaCSV(t, "ea-2024-08-01")} {
		got, err := convertAll(t, strings.NewReader(in))
		if err != nil || len(got) != 0 {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
}

func TestConvertCSVMultiMemberGzip(t *testing.T) {
	// A gzip file may hold several members; the rows continue across them.
	full := schemaCSV(t, "mca-2023-12-01-preview", map[string]string{"date": "05/01/2024"}, map[string]string{"date": "05/02/2024"})
	i := strings.Index(full, "\n") + 1
	j := i + strings.Index(full[i:], "\n") + 1
	got, err := convertAll(t, bytes.NewReader(gzipped(t, full[:j], full[j:])))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := convertAll(t, strings.NewReader(full))
	if len(got) != 2 || !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestConvertCSVErrors(t *testing.T) {
	head, _, _ := strings.Cut(schemaCSV(t, "mca-2023-12-01-preview"), "\n")
	row := "05/01/2024" + strings.Repeat(",", len(mcaColumns)-1)
	tests := []struct {
		name     string
		in       []byte
		wantRows int
		wantErr  string
	}{
		{"too many cells", []byte(head + "\n" + row + "\n" + row + ",3\n"), 1, "wrong number of fields"},
		{"too few cells", []byte(head + "\n05/01/2024\n"), 0, "wrong number of fields"},
		{"bare quote", []byte(head + "\n" + row + "1\"5\n"), 0, "bare \" in non-quoted-field"},
		{"unterminated quote", []byte(head + "\n" + row + "\"1\n"), 0, "extraneous or missing \" in quoted-field"},
		{"broken gzip", gzipped(t, head+"\n"+row+"\n")[:20], 0, "unexpected EOF"},
		{"unknown header set", []byte("date,cost\n2024-05-01,1\n"), 0, "unknown Cost Details header set (2 columns: date,cost)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := convertAll(t, bytes.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if len(got) != tt.wantRows {
				t.Errorf("rows before the error = %d, want %d", len(got), tt.wantRows)
			}
		})
	}
}

func TestConvertCSVEmitError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	in := schemaCSV(t, "ea-2024-08-01", map[string]string{}, map[string]string{}, map[string]string{})
	got, err := ConvertCSV(strings.NewReader(in), func([]byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || got != 1 {
		t.Errorf("ConvertCSV = %d, %v; want 1, stop", got, err)
	}
}

func TestConverterReuse(t *testing.T) {
	// One converter serves all blobs of a report: a gzip EA part, then a plain MCA one, must not
	// carry anything over.
	var c converter
	var got []string
	emit := func(obj []byte) error { got = append(got, string(obj)); return nil }
	ea := schemaCSV(t, "ea-2024-08-01", map[string]string{"Date": "05/01/2024"})
	mca := schemaCSV(t, "mca-2021-01-01", map[string]string{"date": "05/02/2024"})
	if _, err := c.convert(bytes.NewReader(gzipped(t, ea)), emit); err != nil {
		t.Fatal(err)
	}
	if _, err := c.convert(strings.NewReader(mca), emit); err != nil {
		t.Fatal(err)
	}
	want1, _ := convertAll(t, strings.NewReader(ea))
	want2, _ := convertAll(t, strings.NewReader(mca))
	if want := append(want1, want2...); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSchemaMissing(t *testing.T) {
	for name, want := range map[string][]string{
		"ea-2024-08-01":  nil,
		"ea-2020-01-01":  {"benefitId", "benefitName"},
		"mca-2021-10-01": {"customerTenantId", "customerName", "partnerTenantId", "partnerName", "partnerEarnedCreditRate", "partnerEarnedCreditApplied"},
		"mca-2021-01-01": {"customerTenantId", "customerName", "partnerTenantId", "partnerName", "partnerEarnedCreditRate", "partnerEarnedCreditApplied", "benefitId", "benefitName", "provider"},
	} {
		if got := LookupSchema(name).Missing(); !slices.Equal(got, want) {
			t.Errorf("%s: Missing() = %q, want %q", name, got, want)
		}
	}
}

// TestAppendJSONString pins the bytes of a cell as a JSON string (jsontext.AppendQuote, RFC 8785's
// minimal escaping) and checks each decodes to the cell (invalid UTF-8 to U+FFFD).
func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want, decoded string }{
		{"plain text, digits 123", `"plain text, digits 123"`, ""},
		{`quote " and backslash \`, `"quote \" and backslash \\"`, ""},
		{"\n\r\t", `"\n\r\t"`, ""},
		{"\b\f", `"\b\f"`, ""},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`, ""},
		{"<tag> & </script>", `"<tag> & </script>"`, ""},
		{"caf\u00e9 \u20ac \u2028 \U0001F600", "\"caf\u00e9 \u20ac \u2028 \U0001F600\"", ""},
		{"\x7f", "\"\x7f\"", ""},
		{"bad \xe9 byte", "\"bad \ufffd byte\"", "bad \ufffd byte"},
		{"", `""`, ""},
	}
	for _, tt := range tests {
		got := appendJSONString([]byte("x"), tt.in)
		if string(got) != "x"+tt.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got[1:], tt.want)
		}
		var s string
		if err := json.Unmarshal(got[1:], &s); err != nil {
			t.Errorf("appendJSONString(%q) = %s: %v", tt.in, got[1:], err)
		}
		want := tt.in
		if tt.decoded != "" {
			want = tt.decoded
		}
		if s != want {
			t.Errorf("appendJSONString(%q) decodes to %q, want %q", tt.in, s, want)
		}
	}
}

func TestIsJSONNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "12": true, "1.5": true, "1e5": true, "1E+5": true, "-1.5e-7": true,
		"": false, "-": false, "01": false, ".5": false, "1.": false, "+1": false, "1e": false,
		"1,5": false, " 1": false, "1 ": false, "NaN": false, "0x10": false, "1.2.3": false,
	} {
		if got := isJSONNumber(s); got != want {
			t.Errorf("isJSONNumber(%q) = %v, want %v", s, got, want)
		}
		if got := json.Valid([]byte(s)) && strings.TrimSpace(s) == s; got != want {
			t.Errorf("cross-check with encoding/json for %q: %v, want %v", s, got, want)
		}
	}
}

// csvGen generates a Cost Details CSV of rows rows on the fly, so a test can feed a large file
// without holding it.
type csvGen struct {
	rows, i int
	buf     []byte
}

// genHeader is the EA 2024-08-01 header; genRow fills the columns a row needs.
var genHeader = func() string {
	var h []string
	for _, c := range LookupSchema("ea-2024-08-01").Columns {
		h = append(h, c.Header)
	}
	return strings.Join(h, ",") + "\n"
}()

// genRow writes row i: each column from a per-header template (%[1]d is i, %[2]d i%28+1…).
func genRow(b []byte, i int) []byte {
	for j, c := range LookupSchema("ea-2024-08-01").Columns {
		if j > 0 {
			b = append(b, ',')
		}
		switch c.Header {
		case "InvoiceSectionName":
			b = fmt.Appendf(b, "Dept %d", i%7)
		case "SubscriptionId":
			b = fmt.Appendf(b, "00000000-0000-0000-0000-%012d", i%50)
		case "Date":
			b = fmt.Appendf(b, "05/%02d/2024", i%28+1)
		case "ProductName":
			b = append(b, `"Virtual Machines Dsv3 Series - D2s v3, Linux"`...)
		case "Quantity":
			b = fmt.Appendf(b, "%d.%06d", i%24, i%1000000)
		case "CostInBillingCurrency":
			b = fmt.Appendf(b, "%d.%08d", i%9, i%100000000)
		case "BillingCurrencyCode":
			b = append(b, "EUR"...)
		case "ResourceId":
			b = fmt.Appendf(b, "/subscriptions/x/resourceGroups/rg-%d/providers/Microsoft.Compute/virtualMachines/vm-%d", i%13, i)
		case "AdditionalInfo":
			b = append(b, `"{""UsageType"": ""ComputeHR"", ""VCPUs"": 2}"`...)
		case "Tags":
			b = append(b, `"""env"": ""prod"""`...)
		case "IsAzureCreditEligible":
			b = append(b, "True"...)
		case "MeterName", "MeterCategory", "UnitOfMeasure", "ResourceGroup", "ResourceLocation", "EffectivePrice", "UnitPrice":
			b = append(b, "x1"...)
		}
	}
	return append(b, '\n')
}

func (g *csvGen) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i <= g.rows {
		if g.i == 0 {
			g.buf = append(g.buf, genHeader...)
		} else {
			g.buf = genRow(g.buf, g.i)
		}
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	return n, nil
}

func TestConvertCSVBoundedMemory(t *testing.T) {
	// About 40 MB of CSV through the converter: the heap must stay at a small multiple of one
	// row, far below the file, so nothing buffers the whole blob.
	const rows = 120_000
	const maxHeap = 16 << 20
	in := countingReader{r: &csvGen{rows: rows}}
	var ms runtime.MemStats
	var peak uint64
	var samples int
	runtime.GC()
	n, err := ConvertCSV(&in, func(obj []byte) error {
		if len(obj) < 100 || obj[0] != '{' || obj[len(obj)-1] != '}' {
			return fmt.Errorf("bad object %q", obj)
		}
		if samples++; samples%5_000 == 0 { // about once per 1.5 MB of input
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("rows = %d, want %d", n, rows)
	}
	if in.n < 2*maxHeap {
		t.Fatalf("input is only %d bytes; the test needs a file well above the heap bound", in.n)
	}
	t.Logf("peak heap %d MB while converting %d MB", peak>>20, in.n>>20)
	if peak == 0 || peak > maxHeap {
		t.Errorf("peak heap %d MB while converting %d MB, want under %d MB", peak>>20, in.n>>20, maxHeap>>20)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func BenchmarkConvertCSV(b *testing.B) {
	const rows = 100_000
	data, err := io.ReadAll(&csvGen{rows: rows})
	if err != nil {
		b.Fatal(err)
	}
	gz := func() []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		return buf.Bytes()
	}()
	for _, bc := range []struct {
		name string
		in   []byte
	}{{"plain", data}, {"gzip", gz}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data))) // MB/s of CSV text
			b.ReportAllocs()
			var c converter
			for b.Loop() {
				n, err := c.convert(bytes.NewReader(bc.in), func([]byte) error { return nil })
				if err != nil || n != rows {
					b.Fatalf("convert = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}

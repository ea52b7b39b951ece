package costdetails

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
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

func TestConvertCSV(t *testing.T) {
	tests := []struct {
		name string
		csv  string
		want []string
	}{
		{
			name: "modern camelCase header kept",
			csv:  "date,costInBillingCurrency,billingCurrency,meterName\n05/01/2024,1.25,EUR,D2s v3\n",
			want: []string{`{"date":"05/01/2024","costInBillingCurrency":1.25,"billingCurrency":"EUR","meterName":"D2s v3"}`},
		},
		{
			name: "EA PascalCase header normalised",
			csv:  "Date,CostInBillingCurrency,BillingCurrencyCode,CostInUsd,PayGPrice,ProductName,IsAzureCreditEligible\n2024-05-01,2,USD,2,0,Virtual Machines,True\n",
			want: []string{`{"date":"2024-05-01","costInBillingCurrency":2,"billingCurrencyCode":"USD","costInUSD":2,"payGPrice":0,"productName":"Virtual Machines","isAzureCreditEligible":true}`},
		},
		{
			name: "byte order mark and spaces around header names",
			csv:  "\ufeffDate , Cost\n2024-05-01,3\n",
			want: []string{`{"date":"2024-05-01","cost":3}`},
		},
		{
			name: "quoted commas, quotes and newlines",
			csv:  "resourceGroup,additionalInfo,tags\n\"rg,one\",\"{\"\"UsageType\"\": \"\"ComputeHR\"\"}\",\"line1\nline2\r\nline3\"\n",
			want: []string{`{"resourceGroup":"rg,one","additionalInfo":"{\"UsageType\": \"ComputeHR\"}","tags":"line1\nline2\nline3"}`},
		},
		{
			name: "numbers: exact text, exponent, negative, empty and non-numbers",
			csv: "quantity,effectivePrice,unitPrice,cost,marketPrice,exchangeRate,partnerEarnedCreditRate\n" +
				"0.000001980949998,1.5E-7,-3,,.5,1.0,01\n" +
				"1.84763819095477,1e+2,-0,N/A,1.,2,0.15\n",
			want: []string{
				`{"quantity":0.000001980949998,"effectivePrice":1.5E-7,"unitPrice":-3,"cost":null,"marketPrice":".5","exchangeRate":"1.0","partnerEarnedCreditRate":"01"}`,
				`{"quantity":1.84763819095477,"effectivePrice":1e+2,"unitPrice":-0,"cost":"N/A","marketPrice":"1.","exchangeRate":"2","partnerEarnedCreditRate":0.15}`,
			},
		},
		{
			name: "booleans in any case, empty and other text",
			csv:  "isAzureCreditEligible,partnerEarnedCreditApplied\nTrue,1\nfalse,0\nTRUE,\n,true\n1,x\n",
			want: []string{
				`{"isAzureCreditEligible":true,"partnerEarnedCreditApplied":"1"}`,
				`{"isAzureCreditEligible":false,"partnerEarnedCreditApplied":"0"}`,
				`{"isAzureCreditEligible":true,"partnerEarnedCreditApplied":""}`,
				`{"isAzureCreditEligible":null,"partnerEarnedCreditApplied":"true"}`,
				`{"isAzureCreditEligible":"1","partnerEarnedCreditApplied":"x"}`,
			},
		},
		{
			name: "control characters, backslashes and invalid UTF-8",
			csv:  "meterName,resourceName\n\"a\\b\tc\x01\",\"caf\xe9 \xe2\x82\xac\"\n",
			want: []string{`{"meterName":"a\\b\tc\u0001","resourceName":"caf\ufffd €"}`},
		},
		{
			name: "duplicate names after normalisation stay distinct",
			csv:  "Cost,cost,Cost\n1,2,3\n",
			want: []string{`{"cost":1,"cost_2":"2","Cost":3}`},
		},
		{
			name: "empty file",
			csv:  "",
			want: nil,
		},
		{
			name: "header only",
			csv:  "date,cost\r\n",
			want: nil,
		},
		{
			name: "CRLF line ends and blank lines",
			csv:  "date,cost\r\n\r\n2024-05-01,1\r\n2024-05-02,2\r\n",
			want: []string{`{"date":"2024-05-01","cost":1}`, `{"date":"2024-05-02","cost":2}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"plain", "gzip"} {
				in := []byte(tt.csv)
				if mode == "gzip" {
					if tt.csv == "" {
						continue // an empty blob has no gzip header
					}
					in = gzipped(t, tt.csv)
				}
				got, err := convertAll(t, bytes.NewReader(in))
				if err != nil {
					t.Fatalf("%s: ConvertCSV: %v", mode, err)
				}
				if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Errorf("%s:\ngot  %s\nwant %s", mode, strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
				}
			}
		})
	}
}

func TestConvertCSVMultiMemberGzip(t *testing.T) {
	// A gzip file may hold several members; the rows continue across them.
	in := gzipped(t, "date,cost\n2024-05-01,1\n", "2024-05-02,2\n")
	got, err := convertAll(t, bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"date":"2024-05-01","cost":1}`, `{"date":"2024-05-02","cost":2}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestConvertCSVErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		wantRows int
		wantErr  string
	}{
		{"too many cells", []byte("date,cost\n2024-05-01,1\n2024-05-02,2,3\n"), 1, "wrong number of fields"},
		{"too few cells", []byte("date,cost\n2024-05-01\n"), 0, "wrong number of fields"},
		{"bare quote", []byte("date,cost\n2024-05-01,1\"5\n"), 0, "bare \" in non-quoted-field"},
		{"unterminated quote", []byte("date,cost\n2024-05-01,\"1\n"), 0, "extraneous or missing \" in quoted-field"},
		{"broken gzip", gzipped(t, "date,cost\n2024-05-01,1\n")[:20], 0, "unexpected EOF"},
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
	got, err := ConvertCSV(strings.NewReader("date\n1\n2\n3\n"), func([]byte) error {
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
	// One converter serves all blobs of a report: a gzip part, then a plain one with other
	// columns, must not carry anything over.
	var c converter
	var got []string
	emit := func(obj []byte) error { got = append(got, string(obj)); return nil }
	if _, err := c.convert(bytes.NewReader(gzipped(t, "Date,Cost\n2024-05-01,1\n")), emit); err != nil {
		t.Fatal(err)
	}
	if _, err := c.convert(strings.NewReader("date,meterName\n2024-05-02,x\n"), emit); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"date":"2024-05-01","cost":1}`, `{"date":"2024-05-02","meterName":"x"}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestNormalizeHeader(t *testing.T) {
	tests := map[string]string{
		"Date":                      "date",
		"date":                      "date",
		"CostInUsd":                 "costInUSD",
		"PaygCostInUsd":             "paygCostInUSD",
		"paygCostInUSD":             "paygCostInUSD",
		"BillingCurrencyCode":       "billingCurrencyCode",
		"BillingCurrency":           "billingCurrency",
		"SubscriptionId":            "subscriptionId",
		"ProductName":               "productName",
		"ResourceId":                "resourceId",
		"ChargeType":                "chargeType",
		"AvailabilityZone":          "availabilityZone",
		"\ufeffInvoiceSectionName ": "invoiceSectionName",
		"x":                         "x",
		"":                          "",
		"Ärger":                     "Ärger", // only ASCII letters are lowered
	}
	for in, want := range tests {
		if got := NormalizeHeader(in); got != want {
			t.Errorf("NormalizeHeader(%q) = %q, want %q", in, got, want)
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

const genHeader = "InvoiceSectionName,AccountName,SubscriptionId,SubscriptionName,ResourceGroup,ResourceLocation,Date," +
	"ProductName,MeterCategory,MeterName,Quantity,EffectivePrice,CostInBillingCurrency,BillingCurrencyCode," +
	"UnitPrice,ResourceId,AdditionalInfo,Tags,IsAzureCreditEligible,CostInUsd\n"

func (g *csvGen) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i <= g.rows {
		if g.i == 0 {
			g.buf = append(g.buf, genHeader...)
		} else {
			g.buf = fmt.Appendf(g.buf, "Dept %d,acct@example.com,00000000-0000-0000-0000-%012d,Sub %d,rg-%d,eastus,05/%02d/2024,"+
				"\"Virtual Machines Dsv3 Series - D2s v3, Linux\",Virtual Machines,D2s v3,%d.%06d,0.0768,%d.%08d,EUR,"+
				"0.096,/subscriptions/x/resourceGroups/rg-%d/providers/Microsoft.Compute/virtualMachines/vm-%d,"+
				"\"{\"\"UsageType\"\": \"\"ComputeHR\"\", \"\"VCPUs\"\": 2}\",\"{\"\"env\"\": \"\"prod\"\"}\",True,%d.%04d\n",
				g.i%7, g.i%50, g.i%50, g.i%13, g.i%28+1, g.i%24, g.i%1000000, g.i%9, g.i%100000000, g.i%13, g.i, g.i%5, g.i%10000)
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

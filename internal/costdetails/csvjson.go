package costdetails

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
)

// NumericColumns are the columns whose cells become JSON numbers: the properties the usageDetails
// swagger declares as "format: decimal" (consumption-api.md §3.3) and the Cost Details CSV's own
// cost and price columns, by their normalised (lowerCamel) names. A cell becomes a number only
// when its text is a valid JSON number (RFC 8259: "-0.5", "12", "1.5E-7"); the digits are copied
// as written, never through a float. An empty cell becomes null; any other text (".5", "1,5",
// "N/A") stays a JSON string, exactly as the CSV gives it.
//
// The list: quantity, effectivePrice, cost, unitPrice, payGPrice, costInBillingCurrency,
// costInPricingCurrency, costInUSD, paygCostInBillingCurrency, paygCostInUSD, marketPrice,
// exchangeRatePricingToBilling, partnerEarnedCreditRate.
//
// exchangeRate and partnerEarnedCreditApplied hold numbers but are strings in the API, so they
// stay strings.
var NumericColumns = []string{
	"quantity", "effectivePrice", "cost", "unitPrice", "payGPrice",
	"costInBillingCurrency", "costInPricingCurrency", "costInUSD",
	"paygCostInBillingCurrency", "paygCostInUSD",
	"marketPrice", "exchangeRatePricingToBilling", "partnerEarnedCreditRate",
}

// BooleanColumns are the columns whose cells become JSON booleans: isAzureCreditEligible, the
// one boolean the API declares. "true" and "false" in any letter case (the files write "True"
// and "False") become true and false; an empty cell becomes null; any other text ("1", "0")
// stays a JSON string.
var BooleanColumns = []string{"isAzureCreditEligible"}

// knownProperties are the usageDetails property names (legacy and modern, consumption-api.md
// §3.3). A CSV header that equals one of them ignoring case is written with its spelling, so EA
// files' "CostInUsd" and "PayGPrice" become the "costInUSD" and "payGPrice" readers of
// usageDetails exports know.
var knownProperties = []string{
	// Legacy.
	"billingAccountId", "billingAccountName", "billingPeriodStartDate", "billingPeriodEndDate",
	"billingProfileId", "billingProfileName", "accountOwnerId", "accountName", "subscriptionId",
	"subscriptionName", "date", "product", "partNumber", "meterId", "meterDetails", "quantity",
	"effectivePrice", "cost", "unitPrice", "billingCurrency", "resourceLocation", "consumedService",
	"resourceId", "resourceName", "serviceInfo1", "serviceInfo2", "additionalInfo", "invoiceSection",
	"costCenter", "resourceGroup", "reservationId", "reservationName", "productOrderId",
	"productOrderName", "offerId", "isAzureCreditEligible", "term", "publisherName", "publisherType",
	"planName", "chargeType", "frequency", "payGPrice", "benefitId", "benefitName", "pricingModel",
	// Modern, where not above.
	"subscriptionGuid", "meterName", "meterRegion", "meterCategory", "meterSubCategory",
	"serviceFamily", "unitOfMeasure", "instanceName", "costInUSD", "billingCurrencyCode",
	"invoiceSectionId", "invoiceSectionName", "costInBillingCurrency", "costInPricingCurrency",
	"exchangeRate", "exchangeRateDate", "invoiceId", "previousInvoiceId", "pricingCurrencyCode",
	"productIdentifier", "resourceLocationNormalized", "servicePeriodStartDate",
	"servicePeriodEndDate", "customerTenantId", "customerName", "partnerTenantId", "partnerName",
	"resellerMpnId", "resellerName", "publisherId", "marketPrice", "exchangeRatePricingToBilling",
	"paygCostInBillingCurrency", "paygCostInUSD", "partnerEarnedCreditRate",
	"partnerEarnedCreditApplied", "provider", "costAllocationRuleName",
}

// columnKind says how a column's cells are written.
type columnKind uint8

const (
	kindString columnKind = iota
	kindNumber
	kindBool
)

// Lookup tables keyed by the lower-cased column name.
var (
	canonicalNames = func() map[string]string {
		m := make(map[string]string, len(knownProperties))
		for _, n := range knownProperties {
			m[strings.ToLower(n)] = n
		}
		return m
	}()
	columnKinds = func() map[string]columnKind {
		m := make(map[string]columnKind, len(NumericColumns)+len(BooleanColumns))
		for _, n := range NumericColumns {
			m[strings.ToLower(n)] = kindNumber
		}
		for _, n := range BooleanColumns {
			m[strings.ToLower(n)] = kindBool
		}
		return m
	}()
)

// byteOrderMark is the UTF-8 BOM some CSV writers put before the first header.
const byteOrderMark = "\ufeff"

// NormalizeHeader returns the JSON key for a CSV header: surrounding spaces and a UTF-8 byte
// order mark removed; a usageDetails property name matched ignoring case gets that property's
// spelling ("CostInUsd" → "costInUSD", "Date" → "date"); any other name gets its first letter
// lower-cased ("ProductName" → "productName", "meterId" unchanged). Modern (MCA) files are
// already camelCase and come out unchanged.
func NormalizeHeader(name string) string {
	name = strings.TrimSpace(strings.TrimPrefix(name, byteOrderMark))
	if c, ok := canonicalNames[strings.ToLower(name)]; ok {
		return c
	}
	r, size := utf8.DecodeRuneInString(name)
	if size == 0 || r == utf8.RuneError {
		return name
	}
	if lr := toLowerASCII(r); lr != r {
		return string(lr) + name[size:]
	}
	return name
}

func toLowerASCII(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + ('a' - 'A')
	}
	return r
}

// gzipMagic are the first two bytes of a gzip member (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// readBufferSize is the read buffer between the blob body and the CSV parser.
const readBufferSize = 64 << 10

// converter turns CSV rows into JSON objects. Its buffers are reused across rows and blobs; it
// is not safe for concurrent use.
type converter struct {
	keys  [][]byte     // per column: the quoted JSON key followed by ':'
	kinds []columnKind // per column
	obj   []byte       // the object being built
	br    *bufio.Reader
	gz    *gzip.Reader
}

// ConvertCSV reads one CSV file from r — gzip-compressed or not, told by the gzip magic bytes —
// and calls emit with one JSON object per data row: the header names (see NormalizeHeader) as
// keys, in header order; cells as JSON strings, except the NumericColumns and BooleanColumns
// rules. Invalid UTF-8 is replaced by U+FFFD. The object is valid only during the call. It
// returns the number of rows emitted; on error, that many were already emitted. A file with no
// bytes or only a header has no rows. Rows with a different number of cells than the header
// are an error (with the line number), as are malformed quotes. Memory is bounded by the
// longest row, never the file.
func ConvertCSV(r io.Reader, emit func(obj []byte) error) (int, error) {
	var c converter
	return c.convert(r, emit)
}

func (c *converter) convert(r io.Reader, emit func(obj []byte) error) (int, error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(r, readBufferSize)
	} else {
		c.br.Reset(r)
	}
	var src io.Reader = c.br
	magic, err := c.br.Peek(len(gzipMagic))
	switch {
	case len(magic) == 0 && errors.Is(err, io.EOF):
		return 0, nil // an empty blob
	case err != nil && !errors.Is(err, io.EOF):
		return 0, fmt.Errorf("reading csv: %w", err)
	case bytes.Equal(magic, gzipMagic):
		if c.gz == nil {
			c.gz, err = gzip.NewReader(c.br)
		} else {
			err = c.gz.Reset(c.br)
		}
		if err != nil {
			return 0, fmt.Errorf("reading gzip csv: %w", err)
		}
		src = c.gz
	}

	cr := csv.NewReader(src)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading csv header: %w", err)
	}
	if err := c.setHeader(header); err != nil {
		return 0, err
	}
	n := 0
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading csv row %d: %w", n+1, err)
		}
		c.obj = c.appendObject(c.obj[:0], row)
		if err := emit(c.obj); err != nil {
			return n, err
		}
		n++
	}
}

// setHeader prepares the keys and kinds of the columns. A name that normalises to one already
// taken keeps its spelling as written; a name that is still taken gets "_2", "_3"… so an
// object never has duplicate keys.
func (c *converter) setHeader(header []string) error {
	if len(header) == 0 || (len(header) == 1 && strings.TrimSpace(strings.TrimPrefix(header[0], byteOrderMark)) == "") {
		return errors.New("reading csv header: no column names")
	}
	c.keys = c.keys[:0]
	c.kinds = c.kinds[:0]
	taken := make(map[string]bool, len(header))
	for i, h := range header {
		name := NormalizeHeader(h)
		if taken[name] {
			if raw := strings.TrimSpace(strings.TrimPrefix(h, byteOrderMark)); !taken[raw] {
				name = raw
			}
		}
		for k := 2; taken[name]; k++ {
			name = NormalizeHeader(h) + "_" + strconv.Itoa(k)
		}
		if name == "" {
			name = "column" + strconv.Itoa(i+1)
			for k := 2; taken[name]; k++ {
				name = "column" + strconv.Itoa(i+1) + "_" + strconv.Itoa(k)
			}
		}
		taken[name] = true
		key := appendJSONString(nil, name)
		c.keys = append(c.keys, append(key, ':'))
		c.kinds = append(c.kinds, columnKinds[strings.ToLower(name)])
	}
	return nil
}

// appendObject appends the JSON object of one row.
func (c *converter) appendObject(b []byte, row []string) []byte {
	b = append(b, '{')
	for i, cell := range row {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c.keys[i]...)
		switch c.kinds[i] {
		case kindNumber:
			switch {
			case cell == "":
				b = append(b, "null"...)
			case isJSONNumber(cell):
				b = append(b, cell...)
			default:
				b = appendJSONString(b, cell)
			}
		case kindBool:
			switch {
			case cell == "":
				b = append(b, "null"...)
			case strings.EqualFold(cell, "true"):
				b = append(b, "true"...)
			case strings.EqualFold(cell, "false"):
				b = append(b, "false"...)
			default:
				b = appendJSONString(b, cell)
			}
		default:
			b = appendJSONString(b, cell)
		}
	}
	return append(b, '}')
}

// isJSONNumber reports whether s is a number in the JSON grammar (RFC 8259 §6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// hexDigits spells control characters as \u00XX.
const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: '"' and '\\' escaped, control characters as
// \n, \r, \t or \u00XX, invalid UTF-8 replaced by \ufffd, everything else as it is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

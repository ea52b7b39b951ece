// Package record reads the few fields the exporter needs from a raw usage record without
// decoding the rest: the usage day (to place the record in its part), the cost and currency (for
// the manifest's totals), the record kind, and the hierarchy fields used to detect overlapping
// scopes. It accepts the three usageDetails shapes (legacy, modern, 2018-06-30), whose fields sit
// under "properties", and the flat objects made from Cost Details CSV rows.
package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Fields are the extracted values, as the raw bytes of the JSON value (strings unquoted).
// Slices are reused by the next Extract call on the same Fields.
type Fields struct {
	Kind     []byte // "legacy", "modern", other, or empty when absent
	Date     []byte // usage date text: date (legacy/modern/CSV) or usageStart (2018-06-30)
	Currency []byte // billingCurrency, billingCurrencyCode or currency
	Cost     []byte // number text of cost, costInBillingCurrency or pretaxCost
	CostUSD  []byte // number text of costInUSD (modern), else empty
	// CostField names the field Cost came from.
	CostField string

	SubscriptionID []byte // subscriptionId / subscriptionGuid
	Department     []byte // departmentName (2018-06-30), invoiceSection (legacy EA: the department) or invoiceSectionName (EA Cost Details)
	Account        []byte // accountName (EA enrollment account)
	BillingProfile []byte // billingProfileId
	InvoiceSection []byte // invoiceSectionId (modern)

	dec jsontext.Decoder
	rd  bytes.Reader
}

// ErrNotObject is returned when the record is not a JSON object.
var ErrNotObject = errors.New("record is not a JSON object")

// Cost fields in the order of preference, per shape.
const (
	FieldCost                  = "cost"                  // legacy
	FieldCostInBillingCurrency = "costInBillingCurrency" // modern and Cost Details
	FieldPretaxCost            = "pretaxCost"            // 2018-06-30
	FieldCostInUSD             = "costInUSD"             // modern
)

func (f *Fields) reset() {
	f.Kind, f.Date, f.Currency = f.Kind[:0], f.Date[:0], f.Currency[:0]
	f.Cost, f.CostUSD, f.CostField = f.Cost[:0], f.CostUSD[:0], ""
	f.SubscriptionID, f.Department, f.Account = f.SubscriptionID[:0], f.Department[:0], f.Account[:0]
	f.BillingProfile, f.InvoiceSection = f.BillingProfile[:0], f.InvoiceSection[:0]
}

// Extract reads the fields of raw into f. Unknown members are skipped; missing ones stay empty.
func (f *Fields) Extract(raw []byte) error {
	f.reset()
	f.rd.Reset(raw)
	f.dec.Reset(&f.rd, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	d := &f.dec
	tok, err := d.ReadToken()
	if err != nil {
		return fmt.Errorf("reading record: %w", err)
	}
	if tok.Kind() != '{' {
		return ErrNotObject
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return fmt.Errorf("reading record member: %w", err)
		}
		key := unquote(name)
		switch {
		case string(key) == "properties" && d.PeekKind() == '{':
			if _, err := d.ReadToken(); err != nil {
				return fmt.Errorf("reading properties: %w", err)
			}
			for d.PeekKind() != '}' {
				if err := f.member(d); err != nil {
					return err
				}
			}
			if _, err := d.ReadToken(); err != nil {
				return fmt.Errorf("reading properties: %w", err)
			}
		case string(key) == "kind":
			v, err := d.ReadValue()
			if err != nil {
				return fmt.Errorf("reading kind: %w", err)
			}
			f.Kind = append(f.Kind, unquote(v)...)
		default:
			// Flat objects (Cost Details rows) carry the properties at the top level.
			if err := f.field(d, key); err != nil {
				return err
			}
		}
	}
	if _, err := d.ReadToken(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading record end: %w", err)
	}
	return nil
}

func (f *Fields) member(d *jsontext.Decoder) error {
	name, err := d.ReadValue()
	if err != nil {
		return fmt.Errorf("reading property name: %w", err)
	}
	return f.field(d, unquote(name))
}

// field reads the value of the member named key, keeping it if it is one of ours.
func (f *Fields) field(d *jsontext.Decoder, key []byte) error {
	var dst *[]byte
	switch string(key) {
	case "date", "usageStart":
		dst = &f.Date
	case "billingCurrency", "billingCurrencyCode", "currency":
		dst = &f.Currency
	case FieldCost, FieldCostInBillingCurrency, FieldPretaxCost:
		if len(f.Cost) > 0 && f.CostField == FieldCost {
			break // legacy cost wins over anything else
		}
		f.CostField = string(key)
		f.Cost = f.Cost[:0]
		dst = &f.Cost
	case FieldCostInUSD:
		dst = &f.CostUSD
	case "subscriptionId", "subscriptionGuid":
		dst = &f.SubscriptionID
	case "departmentName", "invoiceSection", "invoiceSectionName":
		dst = &f.Department
	case "accountName":
		dst = &f.Account
	case "billingProfileId":
		dst = &f.BillingProfile
	case "invoiceSectionId":
		dst = &f.InvoiceSection
	}
	if dst == nil {
		if err := d.SkipValue(); err != nil {
			return fmt.Errorf("skipping %q: %w", key, err)
		}
		return nil
	}
	v, err := d.ReadValue()
	if err != nil {
		return fmt.Errorf("reading %q: %w", key, err)
	}
	if len(v) > 0 && v[0] == 'n' { // null
		return nil
	}
	*dst = append((*dst)[:0], unquote(v)...)
	return nil
}

// unquote strips the quotes of a JSON string value. Escapes are left as they are: none of the
// fields read here (dates, codes, ids, numbers) contain escapes in practice, and the values are
// only compared and parsed as ASCII.
func unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// Day parses the usage day of a date field: RFC 3339 ("2019-04-09T00:00:00.0000000Z"),
// a bare date ("2019-04-09") or the US form Cost Details CSV files use ("04/09/2019").
func Day(date []byte) (time.Time, error) {
	switch {
	case len(date) >= 10 && date[4] == '-' && date[7] == '-':
		return time.Parse(time.DateOnly, string(date[:10]))
	case len(date) >= 10 && date[2] == '/' && date[5] == '/':
		return time.Parse("01/02/2006", string(date[:10]))
	}
	return time.Time{}, fmt.Errorf("unrecognised usage date %q", date)
}

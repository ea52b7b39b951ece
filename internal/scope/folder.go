package scope

import (
	"fmt"
	"strings"
)

// Folder returns the Hive-style partition value that names this scope in blob paths:
// "<kind>-<ids>", the ids joined with '/' and escaped the way Hive and Spark escape partition
// values (ExternalCatalogUtils.escapePathName), so ':' becomes "%3A" and '/' becomes "%2F".
// Spark and Hive unescape the value when they read the partition column, and ParseFolder
// reverses it. The billing-period sub-scope is not part of the folder: the period has its own
// partition column.
func (s Scope) Folder() string {
	return string(s.Kind) + "-" + EscapePathName(strings.Join(s.IDs, "/"))
}

// ParseFolder reverses Folder. The result has no path (it was not configured), so it is only
// good for naming and comparison; Path rebuilds a canonical one.
func ParseFolder(folder string) (Scope, error) {
	kind, ids, ok := strings.Cut(folder, "-")
	if !ok {
		return Scope{}, fmt.Errorf("%w folder %q: want <kind>-<id>", ErrInvalid, folder)
	}
	raw, err := UnescapePathName(ids)
	if err != nil {
		return Scope{}, fmt.Errorf("%w folder %q: %w", ErrInvalid, folder, err)
	}
	parts := strings.Split(raw, "/")
	var p string
	switch Kind(kind) {
	case Subscription:
		p = "/subscriptions/" + raw
	case ManagementGroup:
		p = "/providers/Microsoft.Management/managementGroups/" + raw
	case Department:
		p = "/providers/Microsoft.Billing/departments/" + raw
	case EnrollmentAccount:
		p = "/providers/Microsoft.Billing/enrollmentAccounts/" + raw
	case BillingAccount, MCABillingAccount:
		p = "/providers/Microsoft.Billing/billingAccounts/" + raw
	case BillingProfile, Customer:
		if len(parts) != 2 {
			return Scope{}, fmt.Errorf("%w folder %q: want two ids", ErrInvalid, folder)
		}
		seg := "billingProfiles"
		if Kind(kind) == Customer {
			seg = "customers"
		}
		p = "/providers/Microsoft.Billing/billingAccounts/" + parts[0] + "/" + seg + "/" + parts[1]
	case InvoiceSection:
		switch len(parts) {
		case 2:
			p = "/providers/Microsoft.Billing/billingAccounts/" + parts[0] + "/invoiceSections/" + parts[1]
		case 3:
			p = "/providers/Microsoft.Billing/billingAccounts/" + parts[0] + "/billingProfiles/" + parts[1] + "/invoiceSections/" + parts[2]
		default:
			return Scope{}, fmt.Errorf("%w folder %q: want two or three ids", ErrInvalid, folder)
		}
	default:
		return Scope{}, fmt.Errorf("%w folder %q: unknown kind %q", ErrInvalid, folder, kind)
	}
	return Parse(p)
}

// escapeSet is Hive's FileUtils.charToEscape: control characters and "\"#%'*/:=?\\\x7F{[]^".
func needsEscape(c byte) bool {
	if c < 0x20 || c == 0x7F {
		return true
	}
	return strings.IndexByte("\"#%'*/:=?\\{[]^", c) >= 0
}

// EscapePathName escapes a partition value as Hive and Spark do.
func EscapePathName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UnescapePathName reverses EscapePathName.
func UnescapePathName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape at %d", i)
		}
		var v byte
		if _, err := fmt.Sscanf(s[i+1:i+3], "%02X", &v); err != nil {
			return "", fmt.Errorf("bad escape %q", s[i:i+3])
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), nil
}

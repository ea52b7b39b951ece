package focus

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/usage-export/usage-export/internal/decimal"
)

// Checker checks rows against a FOCUS column table.
type Checker struct {
	spec *Spec
	cols []*Column // per entry of Columns; nil for x_ columns
}

// NewChecker checks the dataset's columns against spec — every column not prefixed x_ is a
// FOCUS column, every Mandatory column is emitted — and returns a checker for its rows.
func NewChecker(spec *Spec) (*Checker, error) {
	c := &Checker{spec: spec, cols: make([]*Column, len(Columns))}
	var errs []error
	for i, name := range Columns {
		if strings.HasPrefix(name, "x_") {
			continue
		}
		col, ok := spec.Column(name)
		if !ok {
			errs = append(errs, fmt.Errorf("column %s is not in FOCUS %s and has no x_ prefix", name, spec.FocusVersion))
			continue
		}
		c.cols[i] = &col
	}
	for _, col := range spec.Columns {
		if col.FeatureLevel == "Mandatory" && !slices.Contains(Columns, col.Name) {
			errs = append(errs, fmt.Errorf("mandatory column %s is not emitted", col.Name))
		}
	}
	return c, errors.Join(errs...)
}

var dateTimeRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`)

// Row returns every way r breaks the column table: a null where the column forbids nulls, a
// value outside the allowed values, a DateTime not in UTC ISO 8601 (YYYY-MM-DDTHH:mm:ssZ), a
// Decimal that is not a decimal number, a JSON column that is not an object.
func (c *Checker) Row(r *Row) []string {
	var bad []string
	for i, col := range c.cols {
		if col == nil {
			continue
		}
		cell := r.cells[i]
		if cell.kind == vNull {
			if !col.AllowsNulls {
				bad = append(bad, col.Name+" is null")
			}
			continue
		}
		if len(col.AllowedValues) > 0 && !slices.Contains(col.AllowedValues, cell.s) {
			bad = append(bad, fmt.Sprintf("%s %q is not an allowed value", col.Name, cell.s))
		}
		switch col.DataType {
		case "DateTime":
			if cell.kind != vString || !dateTimeRe.MatchString(cell.s) {
				bad = append(bad, fmt.Sprintf("%s %q is not YYYY-MM-DDTHH:mm:ssZ", col.Name, cell.s))
			}
		case "Decimal":
			if _, err := decimal.Parse(cell.s); cell.kind != vNumber || err != nil {
				bad = append(bad, fmt.Sprintf("%s %q is not a decimal", col.Name, cell.s))
			}
		case "JSON":
			if cell.kind != vRaw || !strings.HasPrefix(cell.s, "{") {
				bad = append(bad, fmt.Sprintf("%s %q is not a JSON object", col.Name, cell.s))
			}
		}
	}
	return bad
}

// Checked lists the FOCUS columns the checker checks, in Columns order.
func (c *Checker) Checked() []string {
	var out []string
	for _, col := range c.cols {
		if col != nil {
			out = append(out, col.Name)
		}
	}
	return out
}

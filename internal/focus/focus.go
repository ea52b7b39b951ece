// Package focus builds the FOCUS 1.2 dataset of a scope and billing period from its committed
// actualcost and amortizedcost partitions: every amortized row, plus the commitment purchases
// and refunds of the actual partition, one FOCUS row per line, committed like the raw trees.
package focus

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// Version is the FOCUS version the dataset follows.
const Version = "1.2"

// Dataset is the value of the dataset= folder level and of the manifest's dataset field.
const Dataset = "focus"

// Column is one FOCUS column as the specification defines it.
type Column struct {
	Name          string   `json:"name"`
	ColumnType    string   `json:"columnType"`   // Dimension | Metric
	DataType      string   `json:"dataType"`     // String | Decimal | DateTime | JSON
	FeatureLevel  string   `json:"featureLevel"` // Mandatory | Conditional | Recommended
	AllowsNulls   bool     `json:"allowsNulls"`
	IntroducedIn  string   `json:"introducedIn"`
	AllowedValues []string `json:"allowedValues,omitempty"`
}

// Spec is the machine-readable column table of one FOCUS version (columns.json).
type Spec struct {
	FocusVersion   string   `json:"focusVersion"`
	Source         string   `json:"source"`
	DateTimeFormat string   `json:"dateTimeFormat"`
	Columns        []Column `json:"columns"`
}

//go:embed columns.json
var columnsJSON []byte

// LoadSpec returns the column table kept in the repository (columns.json). A new FOCUS version
// is a change of that file.
func LoadSpec() (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(columnsJSON, &s); err != nil {
		return nil, fmt.Errorf("decoding focus column table: %w", err)
	}
	return &s, nil
}

// Column returns the named column, or false.
func (s *Spec) Column(name string) (Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

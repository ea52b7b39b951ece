// Package decimal sums JSON decimal numbers exactly, for the per-currency cost totals.
package decimal

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// fracDigits is the fixed-point precision of the fast path: 18 decimal places, which covers
// every value the APIs document (format: decimal, at most ~15 significant digits) while keeping
// the fraction in an int64.
const fracDigits = 18

const fracScale = 1_000_000_000_000_000_000 // 10^fracDigits

// ErrSyntax is returned for text that is not a JSON number.
var ErrSyntax = errors.New("not a decimal number")

// Sum is an exact sum of decimal numbers. The zero value is 0 and ready to use. A Sum is not
// safe for concurrent use.
type Sum struct {
	hi  int64    // integer part
	lo  int64    // fraction × 10^18, 0 ≤ lo < 10^18
	big *big.Rat // spill-over for values the fast path cannot hold exactly
}

// Add adds the JSON number in s (e.g. "0.000001980949998", "-3", "1.5E-7").
func (s *Sum) Add(b []byte) error {
	neg := false
	i := 0
	if i < len(b) && b[i] == '-' {
		neg, i = true, 1
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	intDigits := b[start:i]
	var frac []byte
	if i < len(b) && b[i] == '.' {
		j := i + 1
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		frac = b[i+1 : j]
		if len(frac) == 0 {
			return fmt.Errorf("%w: %q", ErrSyntax, b)
		}
		i = j
	}
	if len(intDigits) == 0 {
		return fmt.Errorf("%w: %q", ErrSyntax, b)
	}
	if i != len(b) || len(intDigits) > 17 || len(frac) > fracDigits {
		return s.addBig(b) // exponent, huge or very precise values
	}
	ip, err := strconv.ParseInt(string(intDigits), 10, 64)
	if err != nil {
		return s.addBig(b)
	}
	var fp int64
	for k := 0; k < fracDigits; k++ {
		fp *= 10
		if k < len(frac) {
			fp += int64(frac[k] - '0')
		}
	}
	if neg {
		s.hi -= ip
		s.lo -= fp
		if s.lo < 0 {
			s.lo += fracScale
			s.hi--
		}
	} else {
		s.hi += ip
		s.lo += fp
		if s.lo >= fracScale {
			s.lo -= fracScale
			s.hi++
		}
	}
	return nil
}

// AddString is Add for a string.
func (s *Sum) AddString(v string) error { return s.Add([]byte(v)) }

func (s *Sum) addBig(b []byte) error {
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return fmt.Errorf("%w: %q", ErrSyntax, b)
		}
	}
	r, ok := new(big.Rat).SetString(string(b))
	if !ok {
		return fmt.Errorf("%w: %q", ErrSyntax, b)
	}
	if s.big == nil {
		s.big = new(big.Rat)
	}
	s.big.Add(s.big, r)
	return nil
}

// AddSum adds another Sum.
func (s *Sum) AddSum(o Sum) {
	s.hi += o.hi
	s.lo += o.lo
	if s.lo >= fracScale {
		s.lo -= fracScale
		s.hi++
	}
	if o.big != nil {
		if s.big == nil {
			s.big = new(big.Rat)
		}
		s.big.Add(s.big, o.big)
	}
}

// Rat returns the sum as a big.Rat.
func (s Sum) Rat() *big.Rat {
	r := new(big.Rat).SetFrac(big.NewInt(s.lo), big.NewInt(fracScale))
	r.Add(r, new(big.Rat).SetInt64(s.hi))
	if s.big != nil {
		r.Add(r, s.big)
	}
	return r
}

// String formats the sum as a plain decimal: no exponent, trailing zeros trimmed ("0", "12.5",
// "-3.25"). A spill-over value with a non-terminating expansion is rounded to 30 places.
func (s Sum) String() string { return Format(s.Rat()) }

// Format formats r like Sum.String.
func Format(r *big.Rat) string {
	var out string
	if r.IsInt() {
		return r.Num().String()
	}
	out = r.FloatString(30)
	out = strings.TrimRight(out, "0")
	out = strings.TrimSuffix(out, ".")
	if out == "-0" {
		out = "0"
	}
	return out
}

// Parse parses a decimal string into a Sum (for reading totals back from a manifest).
func Parse(v string) (Sum, error) {
	var s Sum
	err := s.AddString(v)
	return s, err
}

// Float returns an approximation of the sum, for ratios and reports only.
func (s Sum) Float() float64 {
	f, _ := s.Rat().Float64()
	return f
}

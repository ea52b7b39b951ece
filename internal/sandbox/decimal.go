package sandbox

import (
	"math/big"
	"math/bits"
	"strings"
)

// dec is a decimal (-1)^neg × m × 10^-s. Most amounts are non-negative; refunds and rounding
// adjustments are not.
type dec struct {
	m   uint64
	s   uint8
	neg bool
}

// maxSig bounds significant digits: the API's decimals have at most 15 (they are doubles on the
// service side), and a value with more digits would not survive a float64 round trip.
const maxSigMantissa = 1_000_000_000_000_000 // 10^15

// maxScale bounds the number of decimals.
const maxScale = 15

var pow10 = func() [20]uint64 {
	var p [20]uint64
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// norm rounds d to at most 15 significant digits and maxScale decimals, then trims trailing
// zeros, so every dec has one canonical text.
func norm(d dec) dec {
	for d.s > 0 && (d.m >= maxSigMantissa || d.s > maxScale) {
		d.m = (d.m + 5) / 10
		d.s--
	}
	for d.s > 0 && d.m%10 == 0 {
		d.m /= 10
		d.s--
	}
	if d.m == 0 {
		d.s, d.neg = 0, false
	}
	return d
}

// mul returns a×b rounded to at most 15 significant digits.
func mul(a, b dec) dec {
	neg := a.neg != b.neg
	hi, lo := bits.Mul64(a.m, b.m)
	s := int(a.s) + int(b.s)
	for hi != 0 {
		// Divide the 128-bit product by 10 with rounding until it fits 64 bits.
		q1, r1 := bits.Div64(0, hi, 10)
		q0, r0 := bits.Div64(r1, lo, 10)
		hi, lo = q1, q0
		if r0 >= 5 {
			lo++
			if lo == 0 {
				hi++
			}
		}
		s--
	}
	for s < 0 { // cannot happen for our magnitudes; keep the value sane
		lo *= 10
		s++
	}
	for s > 255 {
		lo = (lo + 5) / 10
		s--
	}
	return norm(dec{m: lo, s: uint8(s), neg: neg})
}

// negate returns -d.
func negate(d dec) dec {
	d.neg = !d.neg
	return norm(d)
}

// sub returns a-b for non-negative a ≥ b of at most maxScale decimals.
func sub(a, b dec) dec {
	for a.s < b.s {
		a.m *= 10
		a.s++
	}
	for b.s < a.s {
		b.m *= 10
		b.s++
	}
	if b.m > a.m {
		return norm(dec{m: b.m - a.m, s: a.s, neg: true})
	}
	return norm(dec{m: a.m - b.m, s: a.s})
}

// less reports a < b for non-negative a, b.
func less(a, b dec) bool {
	d := sub(b, a)
	return !d.neg && d.m != 0
}

// round returns d rounded to n decimals.
func round(d dec, n uint8) dec {
	for d.s > n {
		d.m = (d.m + 5) / 10
		d.s--
	}
	return norm(d)
}

// appendDec appends the canonical text: no exponent, no trailing zeros, "0" for zero.
func appendDec(dst []byte, d dec) []byte {
	if d.neg && d.m != 0 {
		dst = append(dst, '-')
	}
	if d.s == 0 {
		return appendUint(dst, d.m)
	}
	p := pow10[d.s]
	dst = appendUint(dst, d.m/p)
	frac := d.m % p
	if frac == 0 {
		return dst
	}
	dst = append(dst, '.')
	var tmp [20]byte
	i := len(tmp)
	for k := 0; k < int(d.s); k++ {
		i--
		tmp[i] = byte('0' + frac%10)
		frac /= 10
	}
	digits := tmp[i:]
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	return append(dst, digits...)
}

func appendUint(dst []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}

func (d dec) String() string { return string(appendDec(nil, d)) }

// decSum is an exact sum of decimals at a fixed scale.
type decSum struct{ v big.Int }

func (a *decSum) add(d dec) {
	var t big.Int
	t.SetUint64(d.m)
	if d.s < maxScale {
		t.Mul(&t, new(big.Int).SetUint64(pow10[maxScale-d.s]))
	}
	if d.neg {
		t.Neg(&t)
	}
	a.v.Add(&a.v, &t)
}

// addText adds a decimal text (as found in a CSV cell or JSON number); it reports false when
// the text is not a plain decimal.
func (a *decSum) addText(s string) bool {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" || len(frac) > maxScale {
		return false
	}
	var t big.Int
	if _, ok := t.SetString(intPart+frac+strings.Repeat("0", maxScale-len(frac)), 10); !ok {
		return false
	}
	if neg {
		t.Neg(&t)
	}
	a.v.Add(&a.v, &t)
	return true
}

// String formats the sum as a decimal without exponent, trailing zeros trimmed.
func (a *decSum) String() string {
	neg := a.v.Sign() < 0
	var abs big.Int
	abs.Abs(&a.v)
	digits := abs.String()
	if len(digits) <= maxScale {
		digits = strings.Repeat("0", maxScale-len(digits)+1) + digits
	}
	ip, fp := digits[:len(digits)-maxScale], strings.TrimRight(digits[len(digits)-maxScale:], "0")
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out
}

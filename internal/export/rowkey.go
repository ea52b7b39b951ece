package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
)

// RowKeyField is the member the optional row key is written to, first in the object.
const RowKeyField = "_rowKey"

// envelope members are left out of the row key: they name the query that returned the record
// (a billing-period scope puts the period into id) rather than the usage it describes.
var envelope = map[string]bool{"id": true, "name": true, "etag": true, "type": true}

// RowKey returns the deterministic content key of a compact record: the SHA-256 (hex) of every
// top-level member except id, name, etag and type, each written as name, ':', value, '\n', in
// the order delivered. For usage records that is kind, tags and properties; for Cost Details
// rows every column.
func RowKey(line []byte) (string, error) {
	d := jsontext.NewDecoder(bytes.NewReader(line))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return "", fmt.Errorf("row key: record is not a JSON object")
	}
	h := sha256.New()
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return "", fmt.Errorf("row key: %w", err)
		}
		name := tok.String()
		v, err := d.ReadValue()
		if err != nil {
			return "", fmt.Errorf("row key: %w", err)
		}
		if envelope[name] {
			continue
		}
		h.Write([]byte(name))
		h.Write([]byte{':'})
		h.Write(v)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// withRowKey returns line with "_rowKey":"…" inserted as the first member, appended to dst.
func withRowKey(dst, line []byte) ([]byte, error) {
	key, err := RowKey(line)
	if err != nil {
		return nil, err
	}
	i := bytes.IndexByte(line, '{')
	dst = append(dst, line[:i+1]...)
	dst = append(dst, `"`+RowKeyField+`":"`+key+`"`...)
	if rest := bytes.TrimLeft(line[i+1:], " \t"); len(rest) > 0 && rest[0] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, line[i+1:]...), nil
}

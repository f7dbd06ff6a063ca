package llmsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// JSON values as the schema code handles them: nil, bool, string, jsonNumber,
// []any and *jsonObject. Objects keep their keys in document order, so output
// follows the order in which a schema lists its properties, as the output of a
// model constrained by that schema does.

// jsonObject is a JSON object that keeps its keys in order.
type jsonObject struct {
	keys []string
	vals []any
}

func (o *jsonObject) get(key string) (any, bool) {
	for i, k := range o.keys {
		if k == key {
			return o.vals[i], true
		}
	}
	return nil, false
}

func (o *jsonObject) set(key string, v any) {
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, v)
}

// replace sets key to v; a repeated key keeps its first position and its last
// value, as encoding/json decodes it.
func (o *jsonObject) replace(key string, v any) {
	for i, k := range o.keys {
		if k == key {
			o.vals[i] = v
			return
		}
	}
	o.set(key, v)
}

// jsonNumber is a number kept as its JSON text, so that no precision is lost
// between a schema's bounds and the values checked against them.
type jsonNumber string

func (n jsonNumber) rat() (*big.Rat, bool) {
	// big.Rat expands exponents exactly: 1e999999999 would take minutes
	// and gigabytes, so numbers beyond float64's range are refused.
	if i := strings.IndexAny(string(n), "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(string(n[i+1:]), "+"))
		if err != nil || exp > maxExponent || exp < -maxExponent {
			return nil, false
		}
	}
	return new(big.Rat).SetString(string(n))
}

// maxExponent is the largest decimal exponent accepted in numbers.
const maxExponent = 400

// decodeOrdered decodes one JSON document into ordered values.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// maxDecodeDepth bounds nesting, as encoding/json does, so a hostile schema
// cannot exhaust the stack.
const maxDecodeDepth = 1000

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDecodeDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := &jsonObject{}
			// A repeated key replaces the earlier value; a long object
			// looks keys up in an index, not one by one.
			var index map[string]int
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				switch i, ok := index[key]; {
				case ok:
					obj.vals[i] = v
				case index != nil:
					index[key] = len(obj.keys)
					obj.set(key, v)
				default:
					obj.replace(key, v)
					if len(obj.keys) >= indexMin {
						index = make(map[string]int, 2*len(obj.keys))
						for i, k := range obj.keys {
							index[k] = i
						}
					}
				}
			}
			_, err := dec.Token()
			return obj, err
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
		return nil, errors.New("unexpected delimiter")
	case json.Number:
		return jsonNumber(t), nil
	default:
		return t, nil
	}
}

// appendJSON appends v as compact JSON with ", " and ": " separators, the
// way models usually write JSON.
func appendJSON(buf []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		if t {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	case jsonNumber:
		return append(buf, t...)
	case string:
		return appendJSONString(buf, t)
	case []any:
		buf = append(buf, '[')
		for i, e := range t {
			if i > 0 {
				buf = append(buf, ", "...)
			}
			buf = appendJSON(buf, e)
		}
		return append(buf, ']')
	case *jsonObject:
		buf = append(buf, '{')
		for i, k := range t.keys {
			if i > 0 {
				buf = append(buf, ", "...)
			}
			buf = appendJSONString(buf, k)
			buf = append(buf, ": "...)
			buf = appendJSON(buf, t.vals[i])
		}
		return append(buf, '}')
	}
	panic("llmsim: not a JSON value")
}

func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, `\ufffd`...)
			} else {
				buf = append(buf, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c == '\n':
			buf = append(buf, `\n`...)
		case c == '\r':
			buf = append(buf, `\r`...)
		case c == '\t':
			buf = append(buf, `\t`...)
		case c < 0x20:
			buf = append(buf, `\u00`...)
			buf = append(buf, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			buf = append(buf, c)
		}
		i++
	}
	return append(buf, '"')
}

// jsonEqual is JSON Schema equality: numbers by value, objects regardless of
// key order.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case jsonNumber:
		y, ok := b.(jsonNumber)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		rx, okx := x.rat()
		ry, oky := y.rat()
		return okx && oky && rx.Cmp(ry) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case *jsonObject:
		y, ok := b.(*jsonObject)
		if !ok || len(x.keys) != len(y.keys) {
			return false
		}
		for i, k := range x.keys {
			yv, ok := y.get(k)
			if !ok || !jsonEqual(x.vals[i], yv) {
				return false
			}
		}
		return true
	}
	return false
}

// appendCanonical appends a key for v such that two values have the same key
// exactly when jsonEqual holds: numbers by value, object keys sorted, and
// every part self-delimiting.
func appendCanonical(buf []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(buf, 'n')
	case bool:
		if t {
			return append(buf, 't')
		}
		return append(buf, 'f')
	case jsonNumber:
		if r, ok := t.rat(); ok {
			buf = append(buf, '#')
			buf = append(buf, r.RatString()...)
		} else {
			// jsonEqual compares numbers it cannot parse by their text.
			buf = append(buf, '~')
			buf = append(buf, t...)
		}
		return append(buf, ';')
	case string:
		return appendCanonicalString(buf, t)
	case []any:
		buf = append(buf, '[')
		for _, e := range t {
			buf = appendCanonical(buf, e)
		}
		return append(buf, ']')
	case *jsonObject:
		order := make([]int, len(t.keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(i, j int) int { return strings.Compare(t.keys[i], t.keys[j]) })
		buf = append(buf, '{')
		for _, i := range order {
			buf = appendCanonicalString(buf, t.keys[i])
			buf = appendCanonical(buf, t.vals[i])
		}
		return append(buf, '}')
	}
	panic("llmsim: not a JSON value")
}

func appendCanonicalString(buf []byte, s string) []byte {
	buf = append(buf, 's')
	buf = strconv.AppendInt(buf, int64(len(s)), 10)
	buf = append(buf, ':')
	return append(buf, s...)
}

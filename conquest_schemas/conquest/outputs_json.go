package conquest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The output check's fast path. Outputs are checked by the hundred
// thousand, and encoding/json, with its reflection and the second scan of
// every value, cost more than the schema's validation. jsonDecoder reads
// in one pass what the check needs: the answer's value, as
// jsonschema.UnmarshalJSON would return it, and the few fields of an
// output line that outputLineJSON holds. It gives up (ok false) on
// anything it does not read exactly as encoding/json does (invalid JSON,
// invalid UTF-8, a key in another case than the field's, a field twice,
// a value of the wrong type, deep nesting), and the check then takes
// encoding/json's path, which says what is wrong. FuzzCheckOutputFast
// holds the two paths to agreement.

// maxDepth bounds the nesting jsonDecoder follows (encoding/json's own
// limit is 10,000).
const maxDepth = 512

// Words of eight bytes, for scanning strings eight bytes at a time.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

type jsonDecoder struct {
	b     []byte
	i     int
	depth int
	stack []any
}

func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// at skips space and reports whether the next byte is c, without taking it.
func (d *jsonDecoder) at(c byte) bool {
	d.space()
	return d.i < len(d.b) && d.b[d.i] == c
}

// end reports whether only space is left.
func (d *jsonDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// rawString reads a string: its contents between the quotes, still
// escaped, and whether it holds escapes. ok is false for anything else, or
// a string with control characters, invalid escapes or invalid UTF-8.
func (d *jsonDecoder) rawString() (s []byte, escaped, ok bool) {
	if !d.at('"') {
		return nil, false, false
	}
	b := d.b
	start := d.i + 1
	for i := start; i < len(b); {
		// Eight bytes at a time while none is a quote, a backslash, a
		// control character or part of a multi-byte character. The lowest
		// byte flagged is always one of those (the tests borrow only
		// upwards), so i lands on it.
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			q, bs := w^(ones*'"'), w^(ones*'\\')
			if m := ((q-ones)&^q | (bs-ones)&^bs | (w-ones*0x20)&^w | w) & highs; m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			d.i = i + 1
			return b[start:i], escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return nil, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if getu4(b[i:]) < 0 {
					return nil, false, false
				}
				i += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false, false
			}
			i += n
		}
	}
	return nil, false, false
}

// str reads a string's value.
func (d *jsonDecoder) str() (string, bool) {
	s, escaped, ok := d.rawString()
	if !ok {
		return "", false
	}
	if !escaped {
		return string(s), true
	}
	return unescape(s), true
}

// null reads a null if one is next.
func (d *jsonDecoder) null() bool {
	if d.at('n') && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// number reads a number as it is written.
func (d *jsonDecoder) number() ([]byte, bool) {
	d.space()
	b, i := d.b, d.i
	start := i
	digits := func() bool {
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		digits()
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
	}
	d.i = i
	return b[start:i], true
}

// literal reads true, false or null.
func (d *jsonDecoder) literal(word string) bool {
	if len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	return false
}

// object reads an object, calling field with each key (still escaped) for
// it to read the value.
func (d *jsonDecoder) object(field func(key []byte, escaped bool) bool) bool {
	if !d.at('{') || d.depth == maxDepth {
		return false
	}
	d.i++
	d.depth++
	if d.at('}') {
		d.i++
		d.depth--
		return true
	}
	for {
		key, escaped, ok := d.rawString()
		if !ok || !d.at(':') {
			return false
		}
		d.i++
		if !field(key, escaped) {
			return false
		}
		switch {
		case d.at(','):
			d.i++
		case d.at('}'):
			d.i++
			d.depth--
			return true
		default:
			return false
		}
	}
}

// array reads an array, calling elem for each element.
func (d *jsonDecoder) array(elem func() bool) bool {
	if !d.at('[') || d.depth == maxDepth {
		return false
	}
	d.i++
	d.depth++
	if d.at(']') {
		d.i++
		d.depth--
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch {
		case d.at(','):
			d.i++
		case d.at(']'):
			d.i++
			d.depth--
			return true
		default:
			return false
		}
	}
}

// value reads any value as encoding/json decodes it into an any with
// UseNumber, as jsonschema.UnmarshalJSON does. Elements of the arrays it is
// in wait on d.stack, so that each array is allocated once, at its size.
func (d *jsonDecoder) value() (any, bool) {
	d.space()
	if d.i >= len(d.b) {
		return nil, false
	}
	switch d.b[d.i] {
	case '{':
		if d.depth == maxDepth {
			return nil, false
		}
		d.i++
		d.depth++
		m := map[string]any{}
		if d.at('}') {
			d.i++
			d.depth--
			return m, true
		}
		for {
			key, escaped, ok := d.rawString()
			if !ok || !d.at(':') {
				return nil, false
			}
			d.i++
			v, ok := d.value()
			if !ok {
				return nil, false
			}
			if escaped {
				m[unescape(key)] = v
			} else {
				m[internKey(key)] = v
			}
			switch {
			case d.at(','):
				d.i++
			case d.at('}'):
				d.i++
				d.depth--
				return m, true
			default:
				return nil, false
			}
		}
	case '[':
		if d.depth == maxDepth {
			return nil, false
		}
		d.i++
		d.depth++
		base := len(d.stack)
		if !d.at(']') {
			for {
				v, ok := d.value()
				if !ok {
					return nil, false
				}
				d.stack = append(d.stack, v)
				if d.at(',') {
					d.i++
					continue
				}
				if !d.at(']') {
					return nil, false
				}
				break
			}
		}
		d.i++
		d.depth--
		a := make([]any, len(d.stack)-base)
		copy(a, d.stack[base:])
		clear(d.stack[base:])
		d.stack = d.stack[:base]
		return a, true
	case '"':
		return d.str()
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		n, ok := d.number()
		return json.Number(n), ok
	}
}

// keys caches the keys of answers, which repeat from one answer to the
// next: one string each instead of one per key of every answer. A slot
// holds the last key that hashed to it.
var (
	keys    [512]atomic.Pointer[string]
	keySeed = maphash.MakeSeed()
)

// internKey is string(key), from keys when it is there.
func internKey(key []byte) string {
	if len(key) > 64 {
		return string(key)
	}
	slot := &keys[maphash.Bytes(keySeed, key)%uint64(len(keys))]
	if p := slot.Load(); p != nil && *p == string(key) {
		return *p
	}
	s := string(key)
	slot.Store(&s)
	return s
}

// skip reads any value and drops it.
func (d *jsonDecoder) skip() bool {
	d.space()
	if d.i >= len(d.b) {
		return false
	}
	switch d.b[d.i] {
	case '{':
		return d.object(func([]byte, bool) bool { return d.skip() })
	case '[':
		return d.array(d.skip)
	case '"':
		_, _, ok := d.rawString()
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		_, ok := d.number()
		return ok
	}
}

// decodeAnswer is jsonschema.UnmarshalJSON's result for a valid document,
// or ok false.
func decodeAnswer(doc []byte) (any, bool) {
	d := jsonDecoder{b: doc}
	v, ok := d.value()
	return v, ok && d.end()
}

// fields reads an object into a struct's fields, as encoding/json does for
// a struct of them: read is called with the index of the name a key is
// (-1 for a key of no field, which is skipped). It gives up on an escaped
// key, one that encoding/json would take for a field though it is written
// in another case, and a field given twice, which encoding/json merges.
func (d *jsonDecoder) fields(read func(field int) bool, names ...string) bool {
	var seen uint64
	return d.object(func(key []byte, escaped bool) bool {
		if escaped {
			return false
		}
		f := -1
		for i, n := range names {
			if string(key) == n {
				f = i
				break
			}
		}
		if f < 0 {
			for _, n := range names {
				if foldsTo(key, n) {
					return false
				}
			}
			return d.skip()
		}
		if seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		return read(f)
	})
}

// foldsTo reports whether encoding/json might match key to the field name
// (ASCII, without regard to case): any non-ASCII key might (ſ folds to s,
// K to k).
func foldsTo(key []byte, name string) bool {
	if len(key) < len(name) {
		return false
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	if len(key) != len(name) {
		return false
	}
	for i := range key {
		if lower(key[i]) != lower(name[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// optString reads a string field: null leaves it as it was.
func (d *jsonDecoder) optString(s *string) bool {
	if d.null() {
		return true
	}
	v, ok := d.str()
	*s = v
	return ok
}

// optStringPtr reads a *string field: null makes it nil.
func (d *jsonDecoder) optStringPtr(s **string) bool {
	if d.null() {
		*s = nil
		return true
	}
	v, ok := d.str()
	*s = &v
	return ok
}

// decodeOutputLine reads an output line as json.Unmarshal does into an
// outputLineJSON and into an outputMetaJSON, or reports false.
func decodeOutputLine(line []byte) (l outputLineJSON, m outputMetaJSON, ok bool) {
	d := jsonDecoder{b: line}
	ok = d.fields(func(f int) bool {
		if f == 0 {
			return d.optString(&l.CustomID)
		}
		if d.null() {
			l.Response, m.Response = nil, nil
			return true
		}
		l.Response, m.Response = &responseJSON{}, &responseMetaJSON{}
		return d.response(l.Response, m.Response)
	}, "custom_id", "response")
	return l, m, ok && d.end()
}

// decodeCustomID reads an output line's custom_id as json.Unmarshal does
// into a struct of it alone, or reports false.
func decodeCustomID(line []byte) (id string, ok bool) {
	d := jsonDecoder{b: line}
	ok = d.fields(func(int) bool { return d.optString(&id) }, "custom_id")
	return id, ok && d.end()
}

// int reads a number as encoding/json does into an int64: an integer
// that fits, else ok false.
func (d *jsonDecoder) int() (int64, bool) {
	n, ok := d.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	return v, err == nil
}

func (d *jsonDecoder) response(r *responseJSON, m *responseMetaJSON) bool {
	return d.fields(func(f int) bool {
		switch f {
		case 0:
			code, ok := d.int()
			r.StatusCode = int(code)
			return ok && int64(int(code)) == code
		case 1:
			return d.body(&r.Body, &m.Body)
		}
		if d.null() {
			m.LatencyMS = nil
			return true
		}
		ms, ok := d.int()
		m.LatencyMS = &ms
		return ok
	}, "status_code", "body", "latency_ms")
}

func (d *jsonDecoder) body(b *responseBody, m *bodyMetaJSON) bool {
	return d.fields(func(f int) bool {
		switch f {
		case 5:
			return d.optString(&m.Model)
		case 6:
			if d.null() {
				return true // as encoding/json: a struct is left as it was
			}
			u := &m.Usage
			return d.fields(func(f int) bool {
				if d.null() {
					return true
				}
				v, ok := d.int()
				switch f {
				case 0:
					u.PromptTokens = v
				case 1:
					u.CompletionTokens = v
				case 2:
					u.InputTokens = v
				default:
					u.OutputTokens = v
				}
				return ok
			}, "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
		case 0:
			b.Choices = []choiceJSON{} // as encoding/json: empty, not nil
			return d.array(func() bool {
				b.Choices = append(b.Choices, choiceJSON{})
				c := &b.Choices[len(b.Choices)-1]
				return d.fields(func(f int) bool {
					if f == 1 {
						return d.optString(&c.FinishReason)
					}
					return d.fields(func(f int) bool {
						if f == 0 {
							return d.optStringPtr(&c.Message.Content)
						}
						return d.optStringPtr(&c.Message.Refusal)
					}, "content", "refusal")
				}, "message", "finish_reason")
			})
		case 1:
			return d.optString(&b.Object)
		case 2:
			return d.optString(&b.Status)
		case 3:
			if d.null() {
				b.IncompleteDetails = nil
				return true
			}
			b.IncompleteDetails = &incompleteJSON{}
			return d.fields(func(int) bool { return d.optString(&b.IncompleteDetails.Reason) }, "reason")
		default:
			b.Output = []outputItemJSON{}
			return d.array(func() bool {
				b.Output = append(b.Output, outputItemJSON{})
				item := &b.Output[len(b.Output)-1]
				return d.fields(func(f int) bool {
					if f == 0 {
						return d.optString(&item.Type)
					}
					item.Content = []outputPartJSON{}
					return d.array(func() bool {
						item.Content = append(item.Content, outputPartJSON{})
						p := &item.Content[len(item.Content)-1]
						return d.fields(func(f int) bool {
							switch f {
							case 0:
								return d.optString(&p.Type)
							case 1:
								return d.optString(&p.Text)
							}
							return d.optString(&p.Refusal)
						}, "type", "text", "refusal")
					})
				}, "type", "content")
			})
		}
	}, "choices", "object", "status", "incomplete_details", "output", "model", "usage")
}

// getu4 decodes \uXXXX from the start of s, or returns -1 (as
// encoding/json's getu4).
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// unescape decodes the escapes of a string rawString read (so valid), as
// encoding/json's unquoteBytes does: a lone surrogate becomes U+FFFD.
func unescape(s []byte) string {
	var b strings.Builder
	b.Grow(len(s))
	for r := 0; r < len(s); {
		n := bytes.IndexByte(s[r:], '\\')
		if n < 0 {
			b.Write(s[r:])
			break
		}
		b.Write(s[r : r+n])
		r += n
		switch s[r+1] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			rr := getu4(s[r:])
			r += 6
			if utf16.IsSurrogate(rr) {
				if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
					r += 6
					b.WriteRune(dec)
					continue
				}
				rr = unicode.ReplacementChar
			}
			b.WriteRune(rr)
			continue
		default: // " \ /
			b.WriteByte(s[r+1])
		}
		r += 2
	}
	return b.String()
}

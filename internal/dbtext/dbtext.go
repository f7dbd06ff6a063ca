// Package dbtext checks that strings can be stored as they are: PostgreSQL's
// text holds neither a NUL byte nor invalid UTF-8 (SQLite does, which is why
// the two stores once answered such input differently). Every string that
// reaches the store from outside passes Check at the edge, so that bad input
// is a clear 400 naming its field, never a 500 or a job that retries
// forever.
package dbtext

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Errors of Check.
var (
	ErrNUL         = errors.New("contains a NUL character (\\u0000), which kiln cannot store")
	ErrInvalidUTF8 = errors.New("is not valid UTF-8")
)

// Check reports whether s can be stored: valid UTF-8 without NUL.
func Check(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return ErrNUL
	}
	if !utf8.ValidString(s) {
		return ErrInvalidUTF8
	}
	return nil
}

// CheckJSON finds the first string of a JSON document, key or value, that
// cannot be stored, and returns its path (as OpenAI names params:
// "metadata.key", "part_ids[2]") and why. A document that is not JSON is
// left to the JSON decoder: CheckJSON reports nothing for it.
func CheckJSON(doc []byte) (path string, err error) {
	if utf8.Valid(doc) && !bytes.Contains(doc, []byte(`\u0000`)) {
		return "", nil // the common case: nothing to find
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	// frames of the containers we are in: for an object, the key whose
	// value comes next; for an array, the index of the next element.
	type frame struct {
		object bool
		key    string
		index  int
		// wantKey: in an object, the next string is a key.
		wantKey bool
	}
	var stack []frame
	here := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	// valueDone advances the enclosing container past one value.
	valueDone := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].wantKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	prev := int64(0)
	for {
		tok, terr := dec.Token()
		if terr == io.EOF {
			return "", nil
		}
		if terr != nil {
			return "", nil // not JSON: the decoder's own error says so
		}
		raw := doc[prev:dec.InputOffset()]
		prev = dec.InputOffset()
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			n := len(stack)
			isKey := n > 0 && stack[n-1].object && stack[n-1].wantKey
			if isKey {
				stack[n-1].key, stack[n-1].wantKey = t, false
			}
			bad := Check(t)
			if bad == nil && !utf8.Valid(raw) {
				bad = ErrInvalidUTF8 // the decoder replaced the bytes with U+FFFD
			}
			if bad != nil {
				p := here()
				if isKey {
					p = strings.TrimSuffix(p, t) + strconv.QuoteToASCII(t)
					return p, fmt.Errorf("a key %w", bad)
				}
				return p, bad
			}
			if !isKey {
				valueDone()
			}
		default:
			valueDone()
		}
	}
}

package batchline

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// inputView is what scanInput found in a valid input line: slices of the
// line, valid as long as it is.
type inputView struct {
	customID, body, model []byte
}

// scanInput is ParseInput's fast path: one pass over the line that checks
// its JSON and picks out the few fields kiln reads, without allocating. It
// accepts only a line that is valid for endpoint and whose fields it reads
// exactly as encoding/json would; for anything else (a line with a
// problem, and what it leaves to encoding/json: a key escaped or in another
// case, an escaped custom_id or model, null where a string goes, nesting
// deeper than maxDepth) it reports false, and parseInputJSON, the
// reference, says what the line holds. FuzzParseInput holds the two to
// agreement.
//
// It checks UTF-8 as it goes: outside strings, where scanString checks it,
// only ASCII is valid JSON.
func scanInput(line []byte, endpoint string) (v inputView, ok bool) {
	b := line
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return v, false
	}
	var (
		method, url, input []byte
		bodyObject         bool // the last body was an object
		modelOK, hasInput  bool // in the last body
	)
	for i = skipSpace(b, i+1); ; {
		key, esc, j := scanString(b, i)
		if j < 0 || esc {
			return v, false
		}
		if i = skipSpace(b, j); i >= len(b) || b[i] != ':' {
			return v, false
		}
		i = skipSpace(b, i+1)
		switch matchKey(key, "custom_id", "method", "url", "body") {
		case -2:
			return v, false
		case 0:
			v.customID, esc, j = scanString(b, i)
		case 1:
			method, esc, j = scanString(b, i)
		case 2:
			url, esc, j = scanString(b, i)
		case 3:
			bodyObject = i < len(b) && b[i] == '{'
			if bodyObject {
				j, v.model, modelOK, input, hasInput = scanBody(b, i)
			} else {
				j = skipValue(b, i)
			}
			if j >= 0 {
				v.body = b[i:j]
			}
		default:
			j = skipValue(b, i)
		}
		if j < 0 || esc {
			return v, false
		}
		if i = skipSpace(b, j); i >= len(b) {
			return v, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return v, false
		}
		i = skipSpace(b, i+1)
	}
	if skipSpace(b, i+1) != len(b) {
		return v, false
	}
	// Unescaped JSON strings of valid UTF-8 hold no NUL, so the custom_id
	// and model pass dbtext.Check.
	ok = len(v.customID) > 0 && string(method) == "POST" && string(url) == endpoint &&
		bodyObject && modelOK && len(v.model) > 0
	if ok && endpoint == EndpointResponses {
		ok = hasInput && string(input) != "null" && string(input) != `""` && string(input) != "[]"
	}
	return v, ok
}

// scanBody scans the request body, an object at b[i], and returns the end
// of it, its model (ok when the last "model" is a string without escapes)
// and its last "input" as it is written.
func scanBody(b []byte, i int) (end int, model []byte, modelOK bool, input []byte, hasInput bool) {
	if i = skipSpace(b, i+1); i < len(b) && b[i] == '}' {
		return i + 1, nil, false, nil, false
	}
	for {
		key, esc, j := scanString(b, i)
		if j < 0 || esc {
			return -1, nil, false, nil, false
		}
		if i = skipSpace(b, j); i >= len(b) || b[i] != ':' {
			return -1, nil, false, nil, false
		}
		i = skipSpace(b, i+1)
		switch matchKey(key, "model", "input") {
		case -2:
			return -1, nil, false, nil, false
		case 0:
			model, esc, j = scanString(b, i)
			modelOK = j >= 0 && !esc
			if j < 0 { // not a string: any other value leaves the model invalid
				j = skipValue(b, i)
			}
		case 1:
			j = skipValue(b, i)
			if j >= 0 {
				input, hasInput = b[i:j], true
			}
		default:
			j = skipValue(b, i)
		}
		if j < 0 {
			return -1, nil, false, nil, false
		}
		if i = skipSpace(b, j); i >= len(b) {
			return -1, nil, false, nil, false
		}
		if b[i] == '}' {
			return i + 1, model, modelOK, input, hasInput
		}
		if b[i] != ',' {
			return -1, nil, false, nil, false
		}
		i = skipSpace(b, i+1)
	}
}

// matchKey is the index of the name key is, or -1 for none; -2 when
// encoding/json, which matches keys without regard to case, might take key
// for one of names though it is not written so: scanInput leaves such a
// line to encoding/json.
func matchKey(key []byte, names ...string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return -2 // non-ASCII letters may fold to ASCII ones (ſ to s)
		}
	}
	for _, n := range names {
		if equalFoldASCII(key, n) {
			return -2
		}
	}
	return -1
}

// equalFoldASCII is bytes.EqualFold for ASCII.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// maxDepth bounds the nesting skipValue follows; deeper values are left to
// encoding/json (whose own limit is 10,000).
const maxDepth = 1024

// skipValue returns the end of the JSON value at b[i], or -1 when there is
// none or it is not valid JSON as encoding/json reads it.
func skipValue(b []byte, i int) int {
	var (
		depth  int
		arrays [maxDepth / 64]uint64 // bit set: that level is an array
	)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			_, _, i = scanString(b, i)
			if i < 0 {
				return -1
			}
		case c == '{' || c == '[':
			if depth == maxDepth {
				return -1
			}
			end := byte('}')
			if c == '[' {
				end = ']'
				arrays[depth/64] |= 1 << (depth % 64)
			} else {
				arrays[depth/64] &^= 1 << (depth % 64)
			}
			if i = skipSpace(b, i+1); i < len(b) && b[i] == end {
				i++
				break
			}
			depth++
			if c == '{' {
				if i = skipKey(b, i); i < 0 {
					return -1
				}
			}
			continue
		case c == 't':
			if !bytes.HasPrefix(b[i:], []byte("true")) {
				return -1
			}
			i += 4
		case c == 'f':
			if !bytes.HasPrefix(b[i:], []byte("false")) {
				return -1
			}
			i += 5
		case c == 'n':
			if !bytes.HasPrefix(b[i:], []byte("null")) {
				return -1
			}
			i += 4
		default:
			if i = skipNumber(b, i); i < 0 {
				return -1
			}
		}
		// A value ended before b[i]: go on in its container.
		for {
			if depth == 0 {
				return i
			}
			array := arrays[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			if i = skipSpace(b, i); i >= len(b) {
				return -1
			}
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if !array {
					if i = skipKey(b, i); i < 0 {
						return -1
					}
				}
				break
			}
			if (array && b[i] != ']') || (!array && b[i] != '}') {
				return -1
			}
			i++
			depth--
		}
	}
}

// skipKey skips an object's key and its colon and the space after it.
func skipKey(b []byte, i int) int {
	if _, _, i = scanString(b, i); i < 0 {
		return -1
	}
	if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// Words of eight bytes, for scanning a string's contents eight at a time.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// scanString reads the JSON string at b[i]: its contents between the
// quotes, still escaped, whether it holds escapes, and its end; end is -1
// when b[i] starts no valid string, or one that is not valid UTF-8.
func scanString(b []byte, i int) (s []byte, escaped bool, end int) {
	if i >= len(b) || b[i] != '"' {
		return nil, false, -1
	}
	start := i + 1
	for i = start; ; {
		// Skip eight bytes at a time while none is a quote, a backslash,
		// a control character or part of a multi-byte character. The
		// lowest byte flagged is always one of those (the tests borrow
		// only upwards), so i lands on it.
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			q, bs := w^(ones*'"'), w^(ones*'\\')
			m := ((q-ones)&^q | (bs-ones)&^bs | (w-ones*0x20)&^w | w) & highs
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			return nil, false, -1
		}
		switch c := b[i]; {
		case c == '"':
			return b[start:i], escaped, i + 1
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return nil, false, -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return nil, false, -1
				}
				i += 6
			default:
				return nil, false, -1
			}
		case c < 0x20:
			return nil, false, -1
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false, -1
			}
			i += n
		default:
			i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipNumber returns the end of the JSON number at b[i], or -1.
func skipNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

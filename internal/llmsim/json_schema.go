package llmsim

import (
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file compiles a JSON Schema into the subset the simulator understands
// and checks values against it. The subset is what structured outputs use:
// type, enum, const, properties, required, additionalProperties,
// min/maxProperties, items, prefixItems, min/maxItems, uniqueItems,
// min/maxLength, pattern, format, numeric bounds, multipleOf, allOf, anyOf,
// oneOf, not, and $ref to anywhere in the same document (#/$defs/...,
// #/definitions/...). Other keywords are ignored, as a grammar compiler
// ignores annotations.

// typeSet is a set of JSON Schema types; zero means any type.
type typeSet uint8

const (
	typeNull typeSet = 1 << iota
	typeBoolean
	typeObject
	typeArray
	typeString
	typeInteger
	// typeNumber is always stored with typeInteger, as every integer is a
	// number; intersecting sets then works bitwise.
	typeNumber
)

var typeNames = map[string]typeSet{
	"null":    typeNull,
	"boolean": typeBoolean,
	"object":  typeObject,
	"array":   typeArray,
	"string":  typeString,
	"integer": typeInteger,
	"number":  typeNumber | typeInteger,
}

func typeOf(v any) typeSet {
	switch t := v.(type) {
	case nil:
		return typeNull
	case bool:
		return typeBoolean
	case *jsonObject:
		return typeObject
	case []any:
		return typeArray
	case string:
		return typeString
	case jsonNumber:
		// Without a fraction or an exponent the number is an integer; only
		// 1.0 or 1e3 need parsing.
		if !strings.ContainsAny(string(t), ".eE") {
			return typeInteger
		}
		if r, ok := t.rat(); ok && r.IsInt() {
			return typeInteger
		}
		return typeNumber
	}
	return 0
}

type schemaProperty struct {
	name   string
	schema *schema
}

type pattern struct {
	re  *regexp.Regexp
	syn *syntax.Regexp
}

// schema is a compiled JSON Schema. Integer limits of -1 mean none.
type schema struct {
	never bool    // the false schema, or contradictory constraints
	ref   *schema // $ref target; siblings apply too, as since draft 2019-09

	types    typeSet
	hasEnum  bool
	enum     []any               // enum and const together
	enumKeys map[string]struct{} // canonical keys of a long enum

	props      []schemaProperty
	propIndex  map[string]int // index of a long props list by name
	required   []string
	additional *schema // nil: any additional property is allowed
	minProps   int
	maxProps   int

	prefixItems []*schema
	items       *schema // nil: any item
	minItems    int
	maxItems    int
	uniqueItems bool

	minLength int
	maxLength int
	patterns  []pattern
	format    string

	minimum      *big.Rat
	maximum      *big.Rat
	exclusiveMin bool
	exclusiveMax bool
	multipleOf   []*big.Rat

	allOf []*schema
	anyOf [][]*schema // every group must have a valid branch
	oneOf [][]*schema // every group must have exactly one valid branch
	not   []*schema
}

func newSchema() *schema {
	return &schema{maxProps: -1, maxItems: -1, maxLength: -1}
}

// anySchema accepts every value. Shared and never modified.
var anySchema = newSchema()

// schemaDoc compiles one schema document and resolves references within it.
type schemaDoc struct {
	root any
	refs map[string]*schema
}

// compileSchema compiles a decoded schema document.
func compileSchema(root any) (*schema, error) {
	d := &schemaDoc{root: root, refs: map[string]*schema{}}
	return d.resolve("#")
}

// resolve compiles the target of a reference once; a reference back into a
// schema being compiled gets the same node, so recursive schemas work.
func (d *schemaDoc) resolve(ref string) (*schema, error) {
	if s, ok := d.refs[ref]; ok {
		return s, nil
	}
	target, err := d.pointer(ref)
	if err != nil {
		return nil, err
	}
	s := newSchema()
	d.refs[ref] = s
	compiled, err := d.compile(target, ref)
	if err != nil {
		return nil, err
	}
	*s = *compiled
	return s, nil
}

func (d *schemaDoc) pointer(ref string) (any, error) {
	if ref == "#" || ref == "" {
		return d.root, nil
	}
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q: only references within the schema (#/...) are supported", ref)
	}
	v := d.root
	for tok := range strings.SplitSeq(ref[2:], "/") {
		if t, err := url.PathUnescape(tok); err == nil {
			tok = t
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case *jsonObject:
			next, ok := c.get(tok)
			if !ok {
				return nil, fmt.Errorf("$ref %q: %q not found", ref, tok)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("$ref %q: no item %q", ref, tok)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("$ref %q: %q not found", ref, tok)
		}
	}
	return v, nil
}

// compile compiles the schema v found at path (for error messages).
func (d *schemaDoc) compile(v any, path string) (*schema, error) {
	s := newSchema()
	switch t := v.(type) {
	case bool:
		s.never = !t
		return s, nil
	case *jsonObject:
		for i, key := range t.keys {
			if err := d.keyword(s, t, key, t.vals[i], path); err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("%s: a schema must be an object or a boolean", path)
}

func (d *schemaDoc) keyword(s *schema, obj *jsonObject, key string, v any, path string) error {
	at := path + "/" + key
	sub := func(v any, p string) (*schema, error) { return d.compile(v, p) }
	subs := func(v any) ([]*schema, error) {
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			return nil, fmt.Errorf("%s: must be a non-empty array of schemas", at)
		}
		out := make([]*schema, len(arr))
		for i, e := range arr {
			c, err := sub(e, at+"/"+strconv.Itoa(i))
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	var err error
	switch key {
	case "$ref":
		ref, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: must be a string", at)
		}
		s.ref, err = d.resolve(ref)
	case "type":
		s.types, err = parseTypes(v, at)
		if err == nil && s.types == 0 {
			s.never = true
		}
	case "enum":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: must be an array", at)
		}
		s.intersectEnum(arr)
	case "const":
		s.intersectEnum([]any{v})
	case "properties":
		props, ok := v.(*jsonObject)
		if !ok {
			return fmt.Errorf("%s: must be an object", at)
		}
		list := make([]schemaProperty, 0, len(props.keys))
		for i, name := range props.keys {
			c, err := sub(props.vals[i], at+"/"+name)
			if err != nil {
				return err
			}
			list = append(list, schemaProperty{name: name, schema: c})
		}
		s.setProps(list)
	case "required":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: must be an array of strings", at)
		}
		for _, e := range arr {
			name, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s: must be an array of strings", at)
			}
			s.required = append(s.required, name)
		}
	case "additionalProperties":
		s.additional, err = sub(v, at)
	case "minProperties":
		s.minProps, err = nonNegativeInt(v, at)
	case "maxProperties":
		s.maxProps, err = nonNegativeInt(v, at)
	case "items":
		if arr, ok := v.([]any); ok {
			// Draft 4 to 2019-09 tuples.
			s.prefixItems, err = subs(arr)
			if err == nil {
				if extra, ok := obj.get("additionalItems"); ok {
					s.items, err = sub(extra, path+"/additionalItems")
				}
			}
		} else {
			s.items, err = sub(v, at)
		}
	case "prefixItems":
		s.prefixItems, err = subs(v)
	case "minItems":
		s.minItems, err = nonNegativeInt(v, at)
	case "maxItems":
		s.maxItems, err = nonNegativeInt(v, at)
	case "uniqueItems":
		s.uniqueItems, _ = v.(bool)
	case "minLength":
		s.minLength, err = nonNegativeInt(v, at)
	case "maxLength":
		s.maxLength, err = nonNegativeInt(v, at)
	case "pattern":
		src, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: must be a string", at)
		}
		p, err := compilePattern(src)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		s.patterns = append(s.patterns, p)
	case "format":
		s.format, _ = v.(string)
	case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
		err = d.bound(s, obj, key, v, at)
	case "multipleOf":
		r, ok := ratOf(v)
		if !ok || r.Sign() <= 0 {
			return fmt.Errorf("%s: must be a number greater than 0", at)
		}
		s.multipleOf = append(s.multipleOf, r)
	case "allOf":
		s.allOf, err = subs(v)
	case "anyOf":
		var group []*schema
		group, err = subs(v)
		s.anyOf = append(s.anyOf, group)
	case "oneOf":
		var group []*schema
		group, err = subs(v)
		s.oneOf = append(s.oneOf, group)
	case "not":
		var n *schema
		n, err = sub(v, at)
		s.not = append(s.not, n)
	}
	return err
}

// bound reads a numeric bound. Draft 4 writes exclusive bounds as booleans
// beside minimum and maximum; later drafts as numbers.
func (d *schemaDoc) bound(s *schema, obj *jsonObject, key string, v any, at string) error {
	if flag, ok := v.(bool); ok {
		switch key {
		case "exclusiveMinimum":
			if flag && s.minimum == nil {
				if m, ok := obj.get("minimum"); ok {
					if r, ok := ratOf(m); ok {
						s.setLower(r, true)
					}
				}
			}
		case "exclusiveMaximum":
			if flag && s.maximum == nil {
				if m, ok := obj.get("maximum"); ok {
					if r, ok := ratOf(m); ok {
						s.setUpper(r, true)
					}
				}
			}
		default:
			return fmt.Errorf("%s: must be a number", at)
		}
		return nil
	}
	r, ok := ratOf(v)
	if !ok {
		return fmt.Errorf("%s: must be a number", at)
	}
	switch key {
	case "minimum":
		if e, _ := obj.get("exclusiveMinimum"); e == true {
			s.setLower(r, true)
		} else {
			s.setLower(r, false)
		}
	case "maximum":
		if e, _ := obj.get("exclusiveMaximum"); e == true {
			s.setUpper(r, true)
		} else {
			s.setUpper(r, false)
		}
	case "exclusiveMinimum":
		s.setLower(r, true)
	case "exclusiveMaximum":
		s.setUpper(r, true)
	}
	return nil
}

// setLower tightens the lower bound to r.
func (s *schema) setLower(r *big.Rat, exclusive bool) {
	if s.minimum == nil {
		s.minimum, s.exclusiveMin = r, exclusive
		return
	}
	switch c := r.Cmp(s.minimum); {
	case c > 0:
		s.minimum, s.exclusiveMin = r, exclusive
	case c == 0:
		s.exclusiveMin = s.exclusiveMin || exclusive
	}
}

// setUpper tightens the upper bound to r.
func (s *schema) setUpper(r *big.Rat, exclusive bool) {
	if s.maximum == nil {
		s.maximum, s.exclusiveMax = r, exclusive
		return
	}
	switch c := r.Cmp(s.maximum); {
	case c < 0:
		s.maximum, s.exclusiveMax = r, exclusive
	case c == 0:
		s.exclusiveMax = s.exclusiveMax || exclusive
	}
}

// indexMin is the length from which lists of properties and enum values
// are indexed: looking names and values up one by one would make large
// schemas take quadratic time.
const indexMin = 16

// setProps sets the properties and indexes them by name when there are many.
func (s *schema) setProps(props []schemaProperty) {
	s.props, s.propIndex = props, nil
	if len(props) >= indexMin {
		s.propIndex = make(map[string]int, len(props))
		for i, p := range props {
			if _, ok := s.propIndex[p.name]; !ok {
				s.propIndex[p.name] = i
			}
		}
	}
}

// prop returns the schema of the named property, if s defines one.
func (s *schema) prop(name string) (*schema, bool) {
	if s.propIndex != nil {
		i, ok := s.propIndex[name]
		if !ok {
			return nil, false
		}
		return s.props[i].schema, true
	}
	for _, p := range s.props {
		if p.name == name {
			return p.schema, true
		}
	}
	return nil, false
}

// intersectEnum narrows the allowed values to those also in values.
func (s *schema) intersectEnum(values []any) {
	if s.hasEnum {
		allowed := newValueSet(values)
		var kept []any
		for _, v := range s.enum {
			if allowed.contains(v) {
				kept = append(kept, v)
			}
		}
		values = kept
	}
	s.hasEnum = true
	s.enum, s.enumKeys = values, newValueSet(values).keys
}

// inEnum reports whether v is one of the enum's values.
func (s *schema) inEnum(v any) bool {
	return valueSet{list: s.enum, keys: s.enumKeys}.contains(v)
}

// valueSet is a list of JSON values, indexed by canonical key when long.
type valueSet struct {
	list []any
	keys map[string]struct{}
}

func newValueSet(list []any) valueSet {
	set := valueSet{list: list}
	if len(list) >= indexMin {
		set.keys = make(map[string]struct{}, len(list))
		for _, v := range list {
			set.keys[string(appendCanonical(nil, v))] = struct{}{}
		}
	}
	return set
}

func (set valueSet) contains(v any) bool {
	if set.keys != nil {
		_, ok := set.keys[string(appendCanonical(nil, v))]
		return ok
	}
	return containsJSON(set.list, v)
}

func containsJSON(list []any, v any) bool {
	for _, e := range list {
		if jsonEqual(e, v) {
			return true
		}
	}
	return false
}

func parseTypes(v any, at string) (typeSet, error) {
	var names []any
	switch t := v.(type) {
	case string:
		names = []any{t}
	case []any:
		names = t
	default:
		return 0, fmt.Errorf("%s: must be a string or an array of strings", at)
	}
	var set typeSet
	for _, n := range names {
		name, _ := n.(string)
		ts, ok := typeNames[name]
		if !ok {
			return 0, fmt.Errorf("%s: unknown type %v", at, n)
		}
		set |= ts
	}
	return set, nil
}

func nonNegativeInt(v any, at string) (int, error) {
	if r, ok := ratOf(v); ok && r.IsInt() && r.Sign() >= 0 && r.Num().IsInt64() && r.Num().Int64() <= 1<<31 {
		return int(r.Num().Int64()), nil
	}
	return 0, fmt.Errorf("%s: must be a non-negative integer", at)
}

func ratOf(v any) (*big.Rat, bool) {
	n, ok := v.(jsonNumber)
	if !ok {
		return nil, false
	}
	return n.rat()
}

func compilePattern(src string) (pattern, error) {
	re, err := regexp.Compile(src)
	if err != nil {
		return pattern{}, fmt.Errorf("unsupported pattern %q: %w", src, err)
	}
	syn, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return pattern{}, fmt.Errorf("unsupported pattern %q: %w", src, err)
	}
	return pattern{re: re, syn: syn}, nil
}

// maxValidateDepth bounds recursion through $ref cycles.
const maxValidateDepth = 200

// checker checks values against compiled schemas. Each schema a value is
// checked against costs a step; once the steps run out every check fails, so
// a hostile schema cannot stall a request. Results for schemas that combine
// others ($ref, allOf, anyOf, oneOf, not) are remembered per value: a value
// reaches such a schema along as many paths as the schema graph has, which
// for allOf of two references to allOfs of two references... is
// exponentially many.
type checker struct {
	steps int
	known map[checkKey]bool
}

// checkKey identifies a check: a schema and a value, objects and arrays by
// identity, as generated values are not changed once made. n is an array's
// length, -1 for other values.
type checkKey struct {
	s *schema
	v any
	n int
}

func newCheckKey(s *schema, v any) checkKey {
	switch t := v.(type) {
	case []any:
		if len(t) == 0 {
			return checkKey{s: s} // every empty array is valid or not alike
		}
		return checkKey{s: s, v: &t[0], n: len(t)}
	case *jsonObject, string, jsonNumber, bool, nil:
		return checkKey{s: s, v: v, n: -1}
	}
	panic("llmsim: not a JSON value")
}

// valid reports whether v is valid against s. Formats are not checked: the
// generator produces valid ones and only generated values are checked.
func (c *checker) valid(s *schema, v any, depth int) bool {
	if s.ref == nil && len(s.allOf)+len(s.anyOf)+len(s.oneOf)+len(s.not) == 0 {
		return c.check(s, v, depth, true)
	}
	key := newCheckKey(s, v)
	if ok, found := c.known[key]; found {
		return ok
	}
	ok := c.check(s, v, depth, true)
	if c.known == nil {
		c.known = map[checkKey]bool{}
	}
	c.known[key] = ok
	return ok
}

// check reports whether v is valid against s; with children false it takes
// the values of v's properties and items as valid against the schemas s
// gives them, as they are when the generator made them from those schemas.
// Subschemas applying to v itself ($ref, allOf, anyOf, oneOf, not) are
// always checked in full.
func (c *checker) check(s *schema, v any, depth int, children bool) bool {
	c.steps--
	if c.steps < 0 || s.never || depth > maxValidateDepth {
		return false
	}
	// A check that ran out of steps below may have passed a not or a oneOf
	// it should have failed.
	return c.checkAll(s, v, depth, children) && c.steps >= 0
}

func (c *checker) checkAll(s *schema, v any, depth int, children bool) bool {
	if s.ref != nil && !c.valid(s.ref, v, depth+1) {
		return false
	}
	if s.types != 0 && s.types&typeOf(v) == 0 {
		return false
	}
	if s.hasEnum && !s.inEnum(v) {
		return false
	}
	switch t := v.(type) {
	case *jsonObject:
		if !c.checkObject(s, t, depth, children) {
			return false
		}
	case []any:
		if !c.checkArray(s, t, depth, children) {
			return false
		}
	case string:
		if !validateString(s, t) {
			return false
		}
	case jsonNumber:
		if !validateNumber(s, t) {
			return false
		}
	}
	for _, sub := range s.allOf {
		if !c.valid(sub, v, depth+1) {
			return false
		}
	}
	for _, group := range s.anyOf {
		ok := false
		for _, sub := range group {
			if c.valid(sub, v, depth+1) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, group := range s.oneOf {
		if c.countValid(group, v, depth+1) != 1 {
			return false
		}
	}
	for _, sub := range s.not {
		if c.valid(sub, v, depth+1) {
			return false
		}
	}
	return true
}

// countValid counts the schemas of group v is valid against, stopping at
// two.
func (c *checker) countValid(group []*schema, v any, depth int) int {
	n := 0
	for _, sub := range group {
		if c.valid(sub, v, depth) {
			n++
			if n > 1 {
				break
			}
		}
	}
	return n
}

func (c *checker) checkObject(s *schema, o *jsonObject, depth int, children bool) bool {
	if len(o.keys) < s.minProps || s.maxProps >= 0 && len(o.keys) > s.maxProps {
		return false
	}
	if len(s.required) > 0 {
		var keys map[string]struct{}
		if len(o.keys) >= indexMin && len(s.required) > 1 {
			keys = make(map[string]struct{}, len(o.keys))
			for _, k := range o.keys {
				keys[k] = struct{}{}
			}
		}
		for _, name := range s.required {
			if keys != nil {
				if _, ok := keys[name]; !ok {
					return false
				}
			} else if _, ok := o.get(name); !ok {
				return false
			}
		}
	}
	if !children {
		return true
	}
	for i, k := range o.keys {
		sub, ok := s.prop(k)
		if !ok {
			sub = s.additional
		}
		if sub != nil && !c.valid(sub, o.vals[i], depth+1) {
			return false
		}
	}
	return true
}

func (c *checker) checkArray(s *schema, a []any, depth int, children bool) bool {
	if len(a) < s.minItems || s.maxItems >= 0 && len(a) > s.maxItems {
		return false
	}
	if children {
		for i, e := range a {
			sub := s.items
			if i < len(s.prefixItems) {
				sub = s.prefixItems[i]
			}
			if sub != nil && !c.valid(sub, e, depth+1) {
				return false
			}
		}
	}
	return !s.uniqueItems || allDistinct(a)
}

// allDistinct reports whether no two values of a are equal, in time linear
// in the size of a.
func allDistinct(a []any) bool {
	if len(a) < indexMin {
		for i := range a {
			for j := i + 1; j < len(a); j++ {
				if jsonEqual(a[i], a[j]) {
					return false
				}
			}
		}
		return true
	}
	seen := make(map[string]struct{}, len(a))
	var buf []byte
	for _, v := range a {
		buf = appendCanonical(buf[:0], v)
		if _, ok := seen[string(buf)]; ok {
			return false
		}
		seen[string(buf)] = struct{}{}
	}
	return true
}

func validateString(s *schema, str string) bool {
	if s.minLength > 0 || s.maxLength >= 0 {
		n := utf8.RuneCountInString(str)
		if n < s.minLength || s.maxLength >= 0 && n > s.maxLength {
			return false
		}
	}
	for _, p := range s.patterns {
		if !p.re.MatchString(str) {
			return false
		}
	}
	return true
}

func validateNumber(s *schema, n jsonNumber) bool {
	if s.minimum == nil && s.maximum == nil && len(s.multipleOf) == 0 {
		return true
	}
	r, ok := n.rat()
	if !ok {
		return false
	}
	if s.minimum != nil {
		if c := r.Cmp(s.minimum); c < 0 || c == 0 && s.exclusiveMin {
			return false
		}
	}
	if s.maximum != nil {
		if c := r.Cmp(s.maximum); c > 0 || c == 0 && s.exclusiveMax {
			return false
		}
	}
	for _, m := range s.multipleOf {
		if !new(big.Rat).Quo(r, m).IsInt() {
			return false
		}
	}
	return true
}

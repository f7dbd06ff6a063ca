package llmsim

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file generates values valid against a compiled schema. Generation is
// randomised by the request's seeded source, so it is deterministic; each
// value is checked against its schema and regenerated when a random choice led
// to an invalid one, and oneOf branches are checked for exclusivity.

const (
	// genBudget caps how many values one document may try, so schemas that
	// are unsatisfiable or explode combinatorially fail fast.
	genBudget = 50_000
	// genMinimalDepth is where the generator stops adding optional content:
	// below it objects get only required properties and arrays minItems, so
	// recursive schemas end.
	genMinimalDepth = 8
	// genMaxDepth is where it gives up.
	genMaxDepth = 48
	// genMaxItems caps minItems the generator will honour.
	genMaxItems = 1000
)

type generator struct {
	rng    *rand.Rand
	budget int
}

// generateJSON returns a JSON document valid against s.
func generateJSON(s *schema, rng *rand.Rand) ([]byte, error) {
	g := &generator{rng: rng, budget: genBudget}
	v, ok := g.gen(s, 0)
	if !ok || !validate(s, v, 0) {
		return nil, fmt.Errorf("cannot generate a value for this schema (unsatisfiable, or beyond what kiln sim supports)")
	}
	return appendJSON(nil, v), nil
}

func (g *generator) gen(s *schema, depth int) (any, bool) {
	if depth > genMaxDepth {
		return nil, false
	}
	flat := flatten(s, 0)
	// Scalars are cheap to redraw; a narrow constraint (not, oneOf) may need
	// a few draws.
	attempts := 3
	if flat.types != 0 && flat.types&(typeObject|typeArray) == 0 {
		attempts = 16
	}
	for range attempts {
		g.budget--
		if g.budget < 0 || flat.never {
			return nil, false
		}
		v, ok := g.genOnce(flat, depth)
		if ok && validate(flat, v, 0) {
			return v, true
		}
	}
	return nil, false
}

func (g *generator) genOnce(s *schema, depth int) (any, bool) {
	if len(s.anyOf) > 0 || len(s.oneOf) > 0 {
		return g.genBranch(s, depth)
	}
	if s.hasEnum {
		var valid []any
		for _, v := range s.enum {
			if validate(s, v, 0) {
				valid = append(valid, v)
			}
		}
		if len(valid) == 0 {
			return nil, false
		}
		return valid[g.rng.IntN(len(valid))], true
	}
	switch g.pickType(s, depth) {
	case typeNull:
		return nil, true
	case typeBoolean:
		return g.rng.IntN(2) == 0, true
	case typeObject:
		return g.genObject(s, depth)
	case typeArray:
		return g.genArray(s, depth)
	case typeString:
		return g.genString(s)
	case typeInteger:
		return g.genNumber(s, true)
	case typeNumber:
		return g.genNumber(s, false)
	}
	return nil, false
}

// genBranch picks a branch of the first anyOf or oneOf group, folds it into
// the rest of the schema and generates from that, trying other branches when
// one fails.
func (g *generator) genBranch(s *schema, depth int) (any, bool) {
	rest := *s
	var group []*schema
	exclusive := len(s.anyOf) == 0
	if exclusive {
		group = s.oneOf[0]
		rest.oneOf = s.oneOf[1:]
	} else {
		group = s.anyOf[0]
		rest.anyOf = s.anyOf[1:]
	}
	for _, i := range g.branchOrder(group, depth) {
		v, ok := g.gen(merge(&rest, group[i]), depth)
		if !ok {
			continue
		}
		if exclusive && countValid(group, v, 0) != 1 {
			continue
		}
		return v, true
	}
	return nil, false
}

// branchOrder is a random order of the branches, or, deep in a recursive
// schema, the cheapest first, so recursion ends.
func (g *generator) branchOrder(group []*schema, depth int) []int {
	order := g.rng.Perm(len(group))
	if depth >= genMinimalDepth {
		costs := make([]int, len(group))
		for i, b := range group {
			costs[i] = cost(b, 0)
		}
		// Insertion sort keeps the random order among equal costs.
		for i := 1; i < len(order); i++ {
			for j := i; j > 0 && costs[order[j]] < costs[order[j-1]]; j-- {
				order[j], order[j-1] = order[j-1], order[j]
			}
		}
	}
	return order
}

// cost estimates how large the smallest value of s is.
func cost(s *schema, depth int) int {
	if depth > 3 {
		return 100
	}
	s = flatten(s, 0)
	switch {
	case s.never:
		return 1000
	case s.hasEnum, s.types == 0, s.types&^(typeObject|typeArray) != 0:
		return 0
	case s.types&typeArray != 0:
		if s.minItems == 0 {
			return 1
		}
		return 1 + s.minItems*cost(itemSchema(s, 0), depth+1)
	}
	c := 1
	for _, name := range s.required {
		c += 1 + cost(propertySchema(s, name), depth+1)
	}
	return c
}

// pickType chooses which of the allowed types to generate. Deep in a
// recursive schema it prefers the simplest.
func (g *generator) pickType(s *schema, depth int) typeSet {
	allowed := s.types
	if allowed == 0 {
		allowed = inferTypes(s)
	}
	if depth >= genMinimalDepth {
		for _, t := range [...]typeSet{typeNull, typeBoolean, typeInteger, typeNumber, typeString, typeArray, typeObject} {
			if allowed&t != 0 {
				return t
			}
		}
	}
	var cands [7]typeSet
	n := 0
	for _, t := range [...]typeSet{typeBoolean, typeObject, typeArray, typeString, typeInteger, typeNumber} {
		if allowed&t == 0 || t == typeInteger && allowed&typeNumber != 0 {
			continue
		}
		cands[n] = t
		n++
	}
	// Optional fields are usually written as ["T", "null"]; a model fills
	// them more often than not.
	if allowed&typeNull != 0 && (n == 0 || g.rng.IntN(4) == 0) {
		return typeNull
	}
	if n == 0 {
		return 0
	}
	return cands[g.rng.IntN(n)]
}

// inferTypes guesses the type of a schema without "type" from its keywords.
func inferTypes(s *schema) typeSet {
	var t typeSet
	if len(s.props) > 0 || len(s.required) > 0 || s.additional != nil || s.minProps > 0 {
		t |= typeObject
	}
	if len(s.prefixItems) > 0 || s.items != nil || s.minItems > 0 || s.maxItems >= 0 || s.uniqueItems {
		t |= typeArray
	}
	if s.minLength > 0 || s.maxLength >= 0 || len(s.patterns) > 0 || s.format != "" {
		t |= typeString
	}
	if s.minimum != nil || s.maximum != nil || len(s.multipleOf) > 0 {
		t |= typeNumber | typeInteger
	}
	if t == 0 {
		t = typeString
	}
	return t
}

func propertySchema(s *schema, name string) *schema {
	for _, p := range s.props {
		if p.name == name {
			return p.schema
		}
	}
	if s.additional != nil {
		return s.additional
	}
	return anySchema
}

func itemSchema(s *schema, i int) *schema {
	if i < len(s.prefixItems) {
		return s.prefixItems[i]
	}
	if s.items != nil {
		return s.items
	}
	return anySchema
}

func (g *generator) genObject(s *schema, depth int) (any, bool) {
	minimal := depth >= genMinimalDepth
	required := func(name string) bool {
		for _, r := range s.required {
			if r == name {
				return true
			}
		}
		return false
	}
	include := make([]bool, len(s.props))
	count := 0
	for i, p := range s.props {
		if required(p.name) || !minimal && g.rng.IntN(2) == 0 {
			include[i] = true
			count++
		}
	}
	for i := len(s.props) - 1; i >= 0 && s.maxProps >= 0 && count > s.maxProps; i-- {
		if include[i] && !required(s.props[i].name) {
			include[i] = false
			count--
		}
	}
	for i := 0; i < len(s.props) && count < s.minProps; i++ {
		if !include[i] {
			include[i] = true
			count++
		}
	}

	obj := &jsonObject{}
	for i, p := range s.props {
		if !include[i] {
			continue
		}
		v, ok := g.gen(p.schema, depth+1)
		if !ok {
			if required(p.name) {
				return nil, false
			}
			continue
		}
		obj.set(p.name, v)
	}
	extra := s.additional
	if extra == nil {
		extra = anySchema
	}
	for _, name := range s.required {
		if _, ok := obj.get(name); ok {
			continue
		}
		v, ok := g.gen(propertySchema(s, name), depth+1)
		if !ok {
			return nil, false
		}
		obj.set(name, v)
	}
	for i := 0; len(obj.keys) < s.minProps; i++ {
		if i > s.minProps+len(s.props) {
			return nil, false
		}
		name := vocabulary[g.rng.IntN(len(vocabulary))] + "_" + strconv.Itoa(i)
		if _, ok := obj.get(name); ok {
			continue
		}
		v, ok := g.gen(extra, depth+1)
		if !ok {
			return nil, false
		}
		obj.set(name, v)
	}
	return obj, true
}

func (g *generator) genArray(s *schema, depth int) (any, bool) {
	lo, hi := s.minItems, s.maxItems
	if s.items != nil && s.items.never && (hi < 0 || hi > len(s.prefixItems)) {
		hi = len(s.prefixItems)
	}
	if lo > genMaxItems || hi >= 0 && lo > hi {
		return nil, false
	}
	n := lo
	if depth < genMinimalDepth {
		if lo == 0 && hi != 0 {
			lo = 1
		}
		top := lo + 2
		if hi >= 0 && hi < top {
			top = hi
		}
		n = lo + g.rng.IntN(top-lo+1)
	}
	arr := make([]any, 0, n)
	for i := range n {
		sub := itemSchema(s, i)
		added := false
		for range 20 {
			v, ok := g.gen(sub, depth+1)
			if !ok {
				return nil, false
			}
			if s.uniqueItems && containsJSON(arr, v) {
				continue
			}
			arr = append(arr, v)
			added = true
			break
		}
		if !added {
			return nil, false
		}
	}
	return arr, true
}

func (g *generator) genString(s *schema) (any, bool) {
	for range 8 {
		var str string
		switch {
		case s.format != "" && knownFormat(s.format):
			str = g.genFormat(s.format)
		case len(s.patterns) > 0:
			var sb strings.Builder
			if !g.genRegex(&sb, s.patterns[g.rng.IntN(len(s.patterns))].syn, 0) {
				return nil, false
			}
			str = sb.String()
		default:
			str = g.genWords(s.minLength, s.maxLength)
		}
		if validateString(s, str) {
			return str, true
		}
	}
	return nil, false
}

// genWords returns one to four words, padded or cut to the length bounds.
func (g *generator) genWords(minLen, maxLen int) string {
	var buf []byte
	for i, n := 0, 1+g.rng.IntN(4); i < n || len(buf) < minLen; i++ {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = append(buf, vocabulary[g.rng.IntN(len(vocabulary))]...)
	}
	if maxLen >= 0 && len(buf) > maxLen {
		buf = buf[:maxLen]
	}
	if n := len(buf); n > 0 && buf[n-1] == ' ' {
		buf[n-1] = 's'
	}
	return string(buf)
}

func knownFormat(f string) bool {
	switch f {
	case "date", "date-time", "time", "email", "idn-email", "uri", "iri", "uri-reference",
		"iri-reference", "uuid", "hostname", "idn-hostname", "ipv4", "ipv6", "duration",
		"regex", "json-pointer", "relative-json-pointer", "uri-template":
		return true
	}
	return false
}

func (g *generator) word() string {
	return vocabulary[g.rng.IntN(len(vocabulary))]
}

func (g *generator) genFormat(f string) string {
	r := g.rng
	switch f {
	case "date":
		return fmt.Sprintf("%04d-%02d-%02d", 2000+r.IntN(30), 1+r.IntN(12), 1+r.IntN(28))
	case "date-time":
		return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", 2000+r.IntN(30), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	case "time":
		return fmt.Sprintf("%02d:%02d:%02dZ", r.IntN(24), r.IntN(60), r.IntN(60))
	case "email", "idn-email":
		return g.word() + "." + g.word() + "@example.com"
	case "uri", "iri", "uri-reference", "iri-reference":
		return "https://example.com/" + g.word() + "/" + g.word()
	case "uri-template":
		return "https://example.com/" + g.word() + "/{id}"
	case "uuid":
		hi, lo := r.Uint64(), r.Uint64()
		hi = hi&^0xf000 | 0x4000     // version 4
		lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
		b := appendHex64(appendHex64(nil, hi), lo)
		return string(b[0:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16]) + "-" + string(b[16:20]) + "-" + string(b[20:32])
	case "hostname", "idn-hostname":
		return g.word() + ".example.com"
	case "ipv4":
		return fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))
	case "ipv6":
		return fmt.Sprintf("2001:db8::%x:%x", r.IntN(0x10000), 1+r.IntN(0xffff))
	case "duration":
		return fmt.Sprintf("P%dDT%dH%dM", r.IntN(30), r.IntN(24), r.IntN(60))
	case "regex":
		return "^[a-z]+$"
	case "json-pointer":
		return "/" + g.word() + "/" + strconv.Itoa(r.IntN(10))
	case "relative-json-pointer":
		return strconv.Itoa(r.IntN(3)) + "/" + g.word()
	}
	return g.word()
}

// genNumber picks a multiple of a step within the bounds: the lcm of the
// multipleOf values, or for plain numbers the coarsest of 1/100, 1/10^4, ...
// that fits, so values look like what a model writes (42, 3.75).
func (g *generator) genNumber(s *schema, integer bool) (any, bool) {
	var steps []*big.Rat
	switch {
	case len(s.multipleOf) > 0:
		step := s.multipleOf[0]
		for _, m := range s.multipleOf[1:] {
			step = ratLCM(step, m)
		}
		if integer {
			step = ratLCM(step, big.NewRat(1, 1))
		}
		steps = []*big.Rat{step}
	case integer:
		steps = []*big.Rat{big.NewRat(1, 1)}
	default:
		for d := int64(100); d <= 1e12; d *= 100 {
			steps = append(steps, big.NewRat(1, d))
		}
	}
	for _, step := range steps {
		if v, ok := g.pickMultiple(s, step); ok {
			return v, true
		}
	}
	return nil, false
}

// numberWindow is how wide a range the generator draws from when a bound is
// missing.
var numberWindow = big.NewRat(100, 1)

// maxWindowSteps caps the number of steps drawn from, for tiny steps.
const maxWindowSteps = 1_000_000

func (g *generator) pickMultiple(s *schema, step *big.Rat) (jsonNumber, bool) {
	var kmin, kmax *big.Int
	if s.minimum != nil {
		kmin = ceilRat(new(big.Rat).Quo(s.minimum, step))
		if s.exclusiveMin && new(big.Rat).Mul(new(big.Rat).SetInt(kmin), step).Cmp(s.minimum) == 0 {
			kmin.Add(kmin, big.NewInt(1))
		}
	}
	if s.maximum != nil {
		kmax = floorRat(new(big.Rat).Quo(s.maximum, step))
		if s.exclusiveMax && new(big.Rat).Mul(new(big.Rat).SetInt(kmax), step).Cmp(s.maximum) == 0 {
			kmax.Sub(kmax, big.NewInt(1))
		}
	}
	window := floorRat(new(big.Rat).Quo(numberWindow, step))
	if !window.IsInt64() || window.Int64() > maxWindowSteps {
		window = big.NewInt(maxWindowSteps)
	}
	switch {
	case kmin == nil && kmax == nil:
		kmin, kmax = big.NewInt(0), window
	case kmin == nil:
		kmin = new(big.Int).Sub(kmax, window)
	case kmax == nil:
		kmax = new(big.Int).Add(kmin, window)
	}
	span := new(big.Int).Sub(kmax, kmin)
	if span.Sign() < 0 {
		return "", false
	}
	if !span.IsInt64() || span.Int64() > window.Int64() {
		span = window
	}
	k := new(big.Int).Add(kmin, big.NewInt(g.rng.Int64N(span.Int64()+1)))
	return formatRat(new(big.Rat).Mul(new(big.Rat).SetInt(k), step)), true
}

func ceilRat(r *big.Rat) *big.Int {
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

func floorRat(r *big.Rat) *big.Int {
	// Euclidean division rounds towards minus infinity for positive divisors.
	return new(big.Int).Div(r.Num(), r.Denom())
}

// ratLCM is the least common multiple of two positive rationals:
// lcm(a/b, c/d) = lcm(a, c) / gcd(b, d).
func ratLCM(x, y *big.Rat) *big.Rat {
	a, b, c, d := x.Num(), x.Denom(), y.Num(), y.Denom()
	gac := new(big.Int).GCD(nil, nil, a, c)
	lac := new(big.Int).Mul(a, c)
	lac.Quo(lac, gac)
	return new(big.Rat).SetFrac(lac, new(big.Int).GCD(nil, nil, b, d))
}

// formatRat writes r as an exact JSON number.
func formatRat(r *big.Rat) jsonNumber {
	if r.IsInt() {
		return jsonNumber(r.Num().String())
	}
	ten := big.NewInt(10)
	p := big.NewInt(10)
	for digits := 1; digits <= 40; digits++ {
		if new(big.Int).Mod(p, r.Denom()).Sign() == 0 {
			return jsonNumber(r.FloatString(digits))
		}
		p.Mul(p, ten)
	}
	f, _ := r.Float64()
	return jsonNumber(strconv.FormatFloat(f, 'g', -1, 64))
}

// genRegex writes a string matching the regular expression.
func (g *generator) genRegex(sb *strings.Builder, re *syntax.Regexp, depth int) bool {
	if depth > 100 || sb.Len() > 4096 {
		return false
	}
	switch re.Op {
	case syntax.OpNoMatch:
		return false
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			sb.WriteRune(r)
		}
	case syntax.OpCharClass:
		r, ok := g.pickRune(re.Rune)
		if !ok {
			return false
		}
		sb.WriteRune(r)
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		sb.WriteByte(byte('a' + g.rng.IntN(26)))
	case syntax.OpCapture:
		return g.genRegex(sb, re.Sub[0], depth+1)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := 0, 2
		switch re.Op {
		case syntax.OpPlus:
			lo, hi = 1, 3
		case syntax.OpQuest:
			hi = 1
		case syntax.OpRepeat:
			lo, hi = re.Min, re.Max
			if hi < 0 || hi > lo+3 {
				hi = lo + 3
			}
		}
		for range lo + g.rng.IntN(hi-lo+1) {
			if !g.genRegex(sb, re.Sub[0], depth+1) {
				return false
			}
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !g.genRegex(sb, sub, depth+1) {
				return false
			}
		}
	case syntax.OpAlternate:
		return g.genRegex(sb, re.Sub[g.rng.IntN(len(re.Sub))], depth+1)
	}
	// Empty matches and assertions (^, $, \b) write nothing.
	return true
}

// pickRune picks a rune from a character class, given as pairs of inclusive
// ranges, preferring letters and digits, then printable ASCII.
func (g *generator) pickRune(ranges []rune) (rune, bool) {
	tiers := [...][][2]rune{
		{{'a', 'z'}, {'A', 'Z'}, {'0', '9'}},
		{{' ', '~'}},
		{{0x80, 0xd7ff}, {0xe000, utf8.MaxRune}},
	}
	for _, tier := range tiers {
		var total int
		for i := 0; i+1 < len(ranges); i += 2 {
			for _, t := range tier {
				if lo, hi := max(ranges[i], t[0]), min(ranges[i+1], t[1]); lo <= hi {
					total += int(hi-lo) + 1
				}
			}
		}
		if total == 0 {
			continue
		}
		pick := g.rng.IntN(total)
		for i := 0; i+1 < len(ranges); i += 2 {
			for _, t := range tier {
				if lo, hi := max(ranges[i], t[0]), min(ranges[i+1], t[1]); lo <= hi {
					n := int(hi-lo) + 1
					if pick < n {
						return lo + rune(pick), true
					}
					pick -= n
				}
			}
		}
	}
	return 0, false
}

// flatten folds a schema's $ref and allOf into one schema, so the generator
// sees every constraint on a value in one place.
func flatten(s *schema, depth int) *schema {
	if s.ref == nil && len(s.allOf) == 0 {
		return s
	}
	// Each level can double the work (allOf of two references), so the
	// limit is low; real schemas nest references a few levels at most.
	if depth > 16 {
		return &schema{never: true}
	}
	out := *s
	out.ref, out.allOf = nil, nil
	flat := &out
	if s.ref != nil {
		flat = merge(flat, flatten(s.ref, depth+1))
	}
	for _, sub := range s.allOf {
		flat = merge(flat, flatten(sub, depth+1))
	}
	return flat
}

// merge returns a schema requiring both a and b. It is exact for the
// constraints on the value itself; properties both define are combined with
// allOf, and additionalProperties is merged naively (a property one side
// defines is allowed even if the other side's additionalProperties is false).
func merge(a, b *schema) *schema {
	if b == anySchema {
		return a
	}
	m := *a
	m.never = a.never || b.never
	m.ref = nil
	m.allOf = nil
	if a.ref != nil {
		m.allOf = append(m.allOf, a.ref)
	}
	if b.ref != nil {
		m.allOf = append(m.allOf, b.ref)
	}
	m.allOf = append(append(m.allOf, a.allOf...), b.allOf...)

	switch {
	case a.types == 0:
		m.types = b.types
	case b.types != 0:
		m.types = a.types & b.types
		if m.types == 0 {
			m.never = true
		}
	}
	if b.hasEnum {
		m.enum = nil
		m.hasEnum = false
		if a.hasEnum {
			m.intersectEnum(a.enum)
		}
		m.intersectEnum(b.enum)
	}

	m.props = append([]schemaProperty(nil), a.props...)
	for _, bp := range b.props {
		found := false
		for i, ap := range m.props {
			if ap.name == bp.name {
				both := newSchema()
				both.allOf = []*schema{ap.schema, bp.schema}
				m.props[i].schema = both
				found = true
				break
			}
		}
		if !found {
			m.props = append(m.props, bp)
		}
	}
	m.required = append([]string(nil), a.required...)
	for _, r := range b.required {
		if !containsString(m.required, r) {
			m.required = append(m.required, r)
		}
	}
	m.additional = mergeOptional(a.additional, b.additional)
	m.minProps = max(a.minProps, b.minProps)
	m.maxProps = minLimit(a.maxProps, b.maxProps)

	n := max(len(a.prefixItems), len(b.prefixItems))
	m.prefixItems = nil
	for i := range n {
		m.prefixItems = append(m.prefixItems, mergeOptional(prefixItem(a, i), prefixItem(b, i)))
	}
	m.items = mergeOptional(a.items, b.items)
	m.minItems = max(a.minItems, b.minItems)
	m.maxItems = minLimit(a.maxItems, b.maxItems)
	m.uniqueItems = a.uniqueItems || b.uniqueItems

	m.minLength = max(a.minLength, b.minLength)
	m.maxLength = minLimit(a.maxLength, b.maxLength)
	m.patterns = append(append([]pattern(nil), a.patterns...), b.patterns...)
	if m.format == "" {
		m.format = b.format
	}

	if b.minimum != nil {
		m.setLower(b.minimum, b.exclusiveMin)
	}
	if b.maximum != nil {
		m.setUpper(b.maximum, b.exclusiveMax)
	}
	m.multipleOf = append(append([]*big.Rat(nil), a.multipleOf...), b.multipleOf...)

	m.anyOf = append(append([][]*schema(nil), a.anyOf...), b.anyOf...)
	m.oneOf = append(append([][]*schema(nil), a.oneOf...), b.oneOf...)
	m.not = append(append([]*schema(nil), a.not...), b.not...)
	if len(m.allOf) > 0 {
		return flatten(&m, 0)
	}
	return &m
}

// prefixItem is the schema a applies to item i, nil when it does not
// constrain it.
func prefixItem(s *schema, i int) *schema {
	if i < len(s.prefixItems) {
		return s.prefixItems[i]
	}
	return s.items
}

func mergeOptional(a, b *schema) *schema {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	both := newSchema()
	both.allOf = []*schema{a, b}
	return both
}

func minLimit(a, b int) int {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// GenerateJSON returns a JSON document valid against the JSON Schema
// schema (the subset kiln sim supports for response_format), drawn from
// seed: what the simulator would answer. Tests use it for outputs.
func GenerateJSON(schema []byte, seed uint64) ([]byte, error) {
	root, err := decodeOrdered(schema)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := compileSchema(root)
	if err != nil {
		return nil, err
	}
	return generateJSON(s, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

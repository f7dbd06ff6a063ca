package llmsim

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file generates values valid against a compiled schema. Generation is
// randomised by the request's seeded source, so it is deterministic; each
// value is checked against its schema and regenerated when a random choice led
// to an invalid one, and oneOf branches are checked for exclusivity.
//
// Users send schemas of their own, so the work is bounded whatever the
// schema: $ref and allOf are folded once per schema node, and anyOf and
// oneOf branches once per node and branch; a schema that failed a few times
// at a depth is not tried again there (retries would otherwise multiply down
// a recursive schema); a value is checked once, as its properties and items
// were checked when they were generated; a schema whose smallest value
// cannot fit in what is left of the budget fails at once; and every step
// spends from that one budget.

const (
	// genBudget caps the steps one document may take (values tried, schemas
	// checked, pattern nodes expanded, 64-byte blocks of text), so schemas
	// that are unsatisfiable or explode combinatorially fail fast.
	genBudget = 100_000
	// genMinimalDepth is where the generator stops adding optional content:
	// below it objects get only required properties and arrays minItems, so
	// recursive schemas end.
	genMinimalDepth = 8
	// genMaxDepth is where it gives up.
	genMaxDepth = 48
	// genMaxItems caps minItems and minProperties the generator will honour.
	genMaxItems = 1000
	// genMaxLength caps minLength the generator will honour.
	genMaxLength = 1 << 16
	// genMaxFolds caps the anyOf and oneOf groups folded into one value: a
	// cycle of references through anyOf would fold forever.
	genMaxFolds = 64
	// genMaxFailures is how often a schema may fail at one depth before the
	// generator stops trying it there: as often as a parent retries it, so
	// a narrow constraint gets the same chances, but the work of a subtree
	// that keeps failing does not multiply with the depth.
	genMaxFailures = 3
)

// neverSchema accepts no value. Shared and never modified.
var neverSchema = &schema{never: true, maxProps: -1, maxItems: -1, maxLength: -1}

type generator struct {
	checker // its steps are the budget
	rng     *rand.Rand

	flat    map[*schema]*schema // flatten's results
	folded  map[foldKey]*schema // fold's results
	failed  map[depthKey]int    // how often gen failed
	costs   map[depthKey]int    // cost's results
	sizes   map[*schema]int     // minSize's results
	enums   map[*schema][]any   // the enum values valid against a schema
	numbers map[numberKey]*numberRange
}

type depthKey struct {
	s     *schema
	depth int
}

type foldKey struct {
	s      *schema
	branch int
}

func newGenerator(rng *rand.Rand) *generator {
	return &generator{
		checker: checker{steps: genBudget},
		rng:     rng,
		flat:    map[*schema]*schema{},
		folded:  map[foldKey]*schema{},
		failed:  map[depthKey]int{},
		costs:   map[depthKey]int{},
		sizes:   map[*schema]int{},
		enums:   map[*schema][]any{},
		numbers: map[numberKey]*numberRange{},
	}
}

// spend takes n steps from the budget and reports whether any were left.
func (g *generator) spend(n int) bool {
	g.steps -= n
	return g.steps >= 0
}

// generateJSON returns a JSON document valid against s.
func generateJSON(s *schema, rng *rand.Rand) ([]byte, error) {
	g := newGenerator(rng)
	v, ok := g.gen(s, 0, 0)
	// The generator checks each value once, against the schema folded into
	// one; the document is checked in full against the schema as written,
	// with a budget of its own.
	final := checker{steps: genBudget}
	if !ok || !final.valid(s, v, 0) {
		return nil, fmt.Errorf("cannot generate a value for this schema (unsatisfiable, or beyond what kiln sim supports)")
	}
	return appendJSON(nil, v), nil
}

// gen returns a value valid against s, at depth values below the document's
// root, with folds anyOf and oneOf groups already folded into s.
func (g *generator) gen(s *schema, depth, folds int) (any, bool) {
	key := depthKey{s, depth}
	if g.failed[key] >= genMaxFailures || depth > genMaxDepth || folds > genMaxFolds {
		return nil, false
	}
	v, ok := g.tryGen(s, depth, folds)
	if !ok {
		g.failed[key]++
	}
	return v, ok
}

func (g *generator) tryGen(s *schema, depth, folds int) (any, bool) {
	flat := g.flatten(s)
	// Scalars are cheap to redraw; a narrow constraint (not, oneOf) may need
	// a few draws.
	attempts := 3
	if flat.types != 0 && flat.types&(typeObject|typeArray) == 0 {
		attempts = 16
	}
	// Each value takes a step: a schema whose smallest value has more
	// values than there are steps left fails now rather than at the end.
	if flat.never || g.minSize(flat) > g.steps {
		return nil, false
	}
	for range attempts {
		if !g.spend(1) {
			return nil, false
		}
		v, ok := g.genOnce(flat, depth, folds)
		if ok && g.check(flat, v, 0, false) {
			return v, true
		}
	}
	return nil, false
}

func (g *generator) genOnce(s *schema, depth, folds int) (any, bool) {
	if len(s.anyOf) > 0 || len(s.oneOf) > 0 {
		return g.genBranch(s, depth, folds)
	}
	if s.hasEnum {
		valid := g.validEnum(s)
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

// validEnum returns the values of s's enum that are valid against s.
func (g *generator) validEnum(s *schema) []any {
	if valid, ok := g.enums[s]; ok {
		return valid
	}
	var valid []any
	for _, v := range s.enum {
		if g.valid(s, v, 0) {
			valid = append(valid, v)
		}
	}
	g.enums[s] = valid
	return valid
}

// genBranch picks a branch of the first anyOf or oneOf group, folds it into
// the rest of the schema and generates from that, trying other branches when
// one fails.
func (g *generator) genBranch(s *schema, depth, folds int) (any, bool) {
	group, exclusive := s.anyOf, false
	if len(group) == 0 {
		group, exclusive = s.oneOf, true
	}
	branches := group[0]
	for _, i := range g.branchOrder(branches, depth) {
		v, ok := g.gen(g.fold(s, i), depth, folds+1)
		if !ok {
			continue
		}
		if exclusive && g.countValid(branches, v, 0) != 1 {
			continue
		}
		return v, true
	}
	return nil, false
}

// fold returns s with its first anyOf group, or if it has none its first
// oneOf group, replaced by the group's branch i.
func (g *generator) fold(s *schema, i int) *schema {
	key := foldKey{s, i}
	if m, ok := g.folded[key]; ok {
		return m
	}
	rest := *s
	var branch *schema
	if len(s.anyOf) > 0 {
		branch, rest.anyOf = s.anyOf[0][i], s.anyOf[1:]
	} else {
		branch, rest.oneOf = s.oneOf[0][i], s.oneOf[1:]
	}
	m := g.merge(&rest, g.flatten(branch))
	g.folded[key] = m
	return m
}

// branchOrder is a random order of the branches, or, deep in a recursive
// schema, the cheapest first, so recursion ends.
func (g *generator) branchOrder(group []*schema, depth int) []int {
	order := g.rng.Perm(len(group))
	if depth >= genMinimalDepth {
		costs := make([]int, len(group))
		for i, b := range group {
			costs[i] = g.cost(b, 0)
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

// maxCost is where cost stops counting.
const maxCost = 1 << 20

// cost estimates how large the smallest value of s is.
func (g *generator) cost(s *schema, depth int) int {
	if depth > 3 {
		return 100
	}
	key := depthKey{s, depth}
	if c, ok := g.costs[key]; ok {
		return c
	}
	s = g.flatten(s)
	var c int
	switch {
	case s.never:
		c = 1000
	case s.hasEnum, s.types == 0, s.types&^(typeObject|typeArray) != 0:
		c = 0
	case s.types&typeArray != 0:
		c = 1
		if s.minItems > 0 {
			c += s.minItems * g.cost(itemSchema(s, 0), depth+1)
		}
	default:
		c = 1
		for _, name := range s.required {
			c += 1 + g.cost(propertySchema(s, name), depth+1)
			if c >= maxCost {
				break
			}
		}
	}
	c = min(c, maxCost)
	g.costs[key] = c
	return c
}

// minSize is a lower bound on the number of values (the value, its items,
// its properties' values...) in a value valid against s, up to maxCost.
func (g *generator) minSize(s *schema) int {
	if n, ok := g.sizes[s]; ok {
		return n
	}
	g.sizes[s] = 1 // on a cycle back to s, the least a value can have
	flat := g.flatten(s)
	n := 1
	switch {
	case flat.never:
		n = maxCost
	case flat.hasEnum, flat.types == 0, flat.types&^(typeObject|typeArray) != 0:
	case flat.types == typeArray:
		n = g.arraySize(flat)
	case flat.types == typeObject:
		n = g.objectSize(flat)
	default:
		n = min(g.arraySize(flat), g.objectSize(flat))
	}
	g.sizes[s] = n
	return n
}

func (g *generator) arraySize(s *schema) int {
	n := 1
	for i := range min(s.minItems, len(s.prefixItems)) {
		n += g.minSize(s.prefixItems[i])
	}
	if rest := s.minItems - len(s.prefixItems); rest > 0 && n < maxCost {
		items := s.items
		if items == nil {
			items = anySchema
		}
		n += rest * g.minSize(items) // at most 2^31 * 2^20: no overflow
	}
	return min(n, maxCost)
}

func (g *generator) objectSize(s *schema) int {
	required := newNameSet(nil)
	n := 1
	for _, name := range s.required {
		if n >= maxCost {
			break
		}
		if !required.has(name) {
			required.add(name)
			n += g.minSize(propertySchema(s, name))
		}
	}
	n += max(0, s.minProps-len(required.list))
	return min(n, maxCost)
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

// propertySchema is the schema s applies to the named property: the one
// the checker holds its value to.
func propertySchema(s *schema, name string) *schema {
	if p, ok := s.prop(name); ok {
		return p
	}
	if s.additional != nil {
		return s.additional
	}
	return anySchema
}

// itemSchema is the schema s applies to item i.
func itemSchema(s *schema, i int) *schema {
	if i < len(s.prefixItems) {
		return s.prefixItems[i]
	}
	if s.items != nil {
		return s.items
	}
	return anySchema
}

// nameSet is a set of names: a list while short, indexed once long.
type nameSet struct {
	list  []string
	index map[string]struct{}
}

func newNameSet(names []string) *nameSet {
	n := &nameSet{}
	for _, name := range names {
		n.add(name)
	}
	return n
}

func (n *nameSet) has(name string) bool {
	if n.index != nil {
		_, ok := n.index[name]
		return ok
	}
	return slices.Contains(n.list, name)
}

func (n *nameSet) add(name string) {
	n.list = append(n.list, name)
	switch {
	case n.index != nil:
		n.index[name] = struct{}{}
	case len(n.list) >= indexMin:
		n.index = make(map[string]struct{}, 2*len(n.list))
		for _, e := range n.list {
			n.index[e] = struct{}{}
		}
	}
}

func (g *generator) genObject(s *schema, depth int) (any, bool) {
	if s.minProps > genMaxItems || s.maxProps >= 0 && s.minProps > s.maxProps {
		return nil, false
	}
	minimal := depth >= genMinimalDepth
	required := newNameSet(s.required)
	include := make([]bool, len(s.props))
	count := 0
	for i, p := range s.props {
		if required.has(p.name) || !minimal && g.rng.IntN(2) == 0 {
			include[i] = true
			count++
		}
	}
	for i := len(s.props) - 1; i >= 0 && s.maxProps >= 0 && count > s.maxProps; i-- {
		if include[i] && !required.has(s.props[i].name) {
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
	keys := &nameSet{}
	for i, p := range s.props {
		if !include[i] {
			continue
		}
		v, ok := g.gen(p.schema, depth+1, 0)
		if !ok {
			if required.has(p.name) {
				return nil, false
			}
			continue
		}
		obj.set(p.name, v)
		keys.add(p.name)
	}
	for _, name := range s.required {
		if keys.has(name) {
			continue
		}
		v, ok := g.gen(propertySchema(s, name), depth+1, 0)
		if !ok {
			return nil, false
		}
		obj.set(name, v)
		keys.add(name)
	}
	for i := 0; len(obj.keys) < s.minProps; i++ {
		if i > s.minProps+len(s.props) {
			return nil, false
		}
		name := vocabulary[g.rng.IntN(len(vocabulary))] + "_" + strconv.Itoa(i)
		if keys.has(name) {
			continue
		}
		v, ok := g.gen(propertySchema(s, name), depth+1, 0)
		if !ok {
			return nil, false
		}
		obj.set(name, v)
		keys.add(name)
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
	var seen map[string]struct{} // canonical keys of the items, for uniqueItems
	if s.uniqueItems {
		seen = make(map[string]struct{}, n)
	}
	for i := range n {
		sub := itemSchema(s, i)
		added := false
		for range 20 {
			v, ok := g.gen(sub, depth+1, 0)
			if !ok {
				return nil, false
			}
			if seen != nil {
				key := string(appendCanonical(nil, v))
				if _, dup := seen[key]; dup {
					continue
				}
				seen[key] = struct{}{}
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
	if s.minLength > genMaxLength || s.maxLength >= 0 && s.minLength > s.maxLength {
		return nil, false
	}
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
		if !g.spend(1 + len(str)/64) {
			return nil, false
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
	r := g.numberRange(s, integer)
	if r == nil {
		return nil, false
	}
	k := new(big.Int).Add(r.kmin, big.NewInt(g.rng.Int64N(r.span+1)))
	return formatRat(new(big.Rat).Mul(new(big.Rat).SetInt(k), r.step)), true
}

// numberRange is what genNumber draws from: k*step for k from kmin to
// kmin+span.
type numberRange struct {
	step *big.Rat
	kmin *big.Int
	span int64
}

type numberKey struct {
	s       *schema
	integer bool
}

// numberRange returns the range genNumber draws from for s, nil if there is
// none. It depends only on s, and the rational arithmetic is most of the
// cost of a number, so it is worked out once per schema.
func (g *generator) numberRange(s *schema, integer bool) *numberRange {
	key := numberKey{s, integer}
	if r, ok := g.numbers[key]; ok {
		return r
	}
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
	var found *numberRange
	for _, step := range steps {
		if r, ok := multiples(s, step); ok {
			found = &r
			break
		}
	}
	g.numbers[key] = found
	return found
}

// numberWindow is how wide a range the generator draws from when a bound is
// missing.
var numberWindow = big.NewRat(100, 1)

// maxWindowSteps caps the number of steps drawn from, for tiny steps.
const maxWindowSteps = 1_000_000

// multiples returns the multiples of step within s's bounds, at most
// maxWindowSteps of them.
func multiples(s *schema, step *big.Rat) (numberRange, bool) {
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
		return numberRange{}, false
	}
	if !span.IsInt64() || span.Int64() > window.Int64() {
		span = window
	}
	return numberRange{step: step, kmin: kmin, span: span.Int64()}, true
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
	if depth > 100 || sb.Len() > 4096 || !g.spend(1) {
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
// sees every constraint on a value in one place. Each schema is flattened
// once: a schema reached along many paths (allOf of two references to
// schemas that are allOfs of two references...) would otherwise be flattened
// once per path, exponentially many times.
func (g *generator) flatten(s *schema) *schema {
	if s.ref == nil && len(s.allOf) == 0 {
		return s
	}
	if f, ok := g.flat[s]; ok {
		return f
	}
	// A cycle of $ref and allOf back to s never reaches a value: no value is
	// valid, as the checker finds when it runs out of depth.
	g.flat[s] = neverSchema
	out := *s
	out.ref, out.allOf = nil, nil
	flat := &out
	if s.ref != nil {
		flat = g.merge(flat, g.flatten(s.ref))
	}
	for _, sub := range s.allOf {
		flat = g.merge(flat, g.flatten(sub))
	}
	g.flat[s] = flat
	return flat
}

// merge returns a schema requiring both a and b, which have no $ref or
// allOf. It is exact: what a child value must satisfy is combined with
// allOf (the properties both define, a property one defines and the other
// holds to its additionalProperties, items), so a value valid against the
// merged schema is valid against both, and the generator can check each
// value once, against the schema it was generated from.
func (g *generator) merge(a, b *schema) *schema {
	if b == anySchema || a == b {
		return a
	}
	m := *a
	m.never = a.never || b.never

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
		if a.hasEnum {
			m.intersectEnum(b.enum)
		} else {
			m.hasEnum, m.enum, m.enumKeys = true, b.enum, b.enumKeys
		}
	}

	props := make([]schemaProperty, 0, len(a.props)+len(b.props))
	for _, ap := range a.props {
		sub := ap.schema
		if bs, ok := b.prop(ap.name); ok {
			sub = both(sub, bs)
		} else if b.additional != nil {
			sub = both(sub, b.additional)
		}
		props = append(props, schemaProperty{name: ap.name, schema: sub})
	}
	for _, bp := range b.props {
		if _, ok := a.prop(bp.name); ok {
			continue
		}
		sub := bp.schema
		if a.additional != nil {
			sub = both(sub, a.additional)
		}
		props = append(props, schemaProperty{name: bp.name, schema: sub})
	}
	m.setProps(props)
	if len(b.required) > 0 {
		have := newNameSet(a.required)
		m.required = append([]string(nil), a.required...)
		for _, r := range b.required {
			if !have.has(r) {
				have.add(r)
				m.required = append(m.required, r)
			}
		}
	}
	m.additional = both(a.additional, b.additional)
	m.minProps = max(a.minProps, b.minProps)
	m.maxProps = minLimit(a.maxProps, b.maxProps)

	m.prefixItems = nil
	for i := range max(len(a.prefixItems), len(b.prefixItems)) {
		m.prefixItems = append(m.prefixItems, both(prefixItem(a, i), prefixItem(b, i)))
	}
	m.items = both(a.items, b.items)
	m.minItems = max(a.minItems, b.minItems)
	m.maxItems = minLimit(a.maxItems, b.maxItems)
	m.uniqueItems = a.uniqueItems || b.uniqueItems

	m.minLength = max(a.minLength, b.minLength)
	m.maxLength = minLimit(a.maxLength, b.maxLength)
	m.patterns = appendNew(a.patterns, b.patterns, func(x, y pattern) bool { return x.re == y.re })
	if m.format == "" {
		m.format = b.format
	}

	if b.minimum != nil {
		m.setLower(b.minimum, b.exclusiveMin)
	}
	if b.maximum != nil {
		m.setUpper(b.maximum, b.exclusiveMax)
	}
	m.multipleOf = appendNew(a.multipleOf, b.multipleOf, func(x, y *big.Rat) bool { return x.Cmp(y) == 0 })

	// A schema merged with itself along two paths keeps one copy of each
	// group, so the groups do not double with each merge.
	sameGroup := func(x, y []*schema) bool { return len(x) == len(y) && &x[0] == &y[0] }
	m.anyOf = appendNew(a.anyOf, b.anyOf, sameGroup)
	m.oneOf = appendNew(a.oneOf, b.oneOf, sameGroup)
	m.not = appendNew(a.not, b.not, func(x, y *schema) bool { return x == y })
	return &m
}

// appendNew returns a followed by the elements of b not already in a. It
// copies rather than appending to a, which other schemas share.
func appendNew[T any](a, b []T, same func(x, y T) bool) []T {
	if len(b) == 0 {
		return a
	}
	out := append([]T(nil), a...)
	for _, y := range b {
		if !slices.ContainsFunc(out, func(x T) bool { return same(x, y) }) {
			out = append(out, y)
		}
	}
	return out
}

// prefixItem is the schema a applies to item i, nil when it does not
// constrain it.
func prefixItem(s *schema, i int) *schema {
	if i < len(s.prefixItems) {
		return s.prefixItems[i]
	}
	return s.items
}

// both returns a schema requiring a and b, either of which may be nil
// (no constraint).
func both(a, b *schema) *schema {
	switch {
	case a == nil || a == anySchema:
		return b
	case b == nil || b == anySchema || a == b:
		return a
	}
	s := newSchema()
	s.allOf = []*schema{a, b}
	return s
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

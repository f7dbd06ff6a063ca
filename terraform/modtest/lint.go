// Package modtest checks kiln's OpenTofu/Terraform modules and examples
// (terraform/): a lint of every .tf file (Lint), and tests that render the
// modules' cloud-init user-data with tofu and check it with cloud-init,
// systemd-analyze and shellcheck, and start a rendered host in a throwaway
// root.
package modtest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// secretName matches the names of variables and outputs that must be
// sensitive: a name that matches but holds no secret (an SSH public key, a
// command) says so in a comment starting "not secret" just above its block.
var secretName = regexp.MustCompile(`(?i)secret|password|key|token`)

// A Problem is one rule a file breaks, at a place in it.
type Problem struct {
	Range   hcl.Range
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s", p.Range.Filename, p.Range.Start.Line, p.Message)
}

// LintDir lints every .tf file under dir (skipping .terraform folders),
// checks each folder's references (lintRefs) and its calls of local modules
// (lintModuleCalls), and parses every .tftest.hcl file; it returns the
// problems sorted by place.
func LintDir(dir string) ([]Problem, error) {
	var problems []Problem
	modules := map[string]map[string]*hclsyntax.Body{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".tf") || strings.HasSuffix(path, ".tftest.hcl")) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		problems = append(problems, Lint(path, src)...)
		if strings.HasSuffix(path, ".tf") {
			if f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos); !diags.HasErrors() {
				if modules[filepath.Dir(path)] == nil {
					modules[filepath.Dir(path)] = map[string]*hclsyntax.Body{}
				}
				modules[filepath.Dir(path)][path] = f.Body.(*hclsyntax.Body)
			}
		}
		return nil
	})
	for dir, files := range modules {
		problems = append(problems, lintRefs(files)...)
		problems = append(problems, lintModuleCalls(dir, files, modules)...)
	}
	slices.SortFunc(problems, func(a, b Problem) int {
		return strings.Compare(a.String(), b.String())
	})
	return problems, err
}

// Lint parses one file and checks kiln's rules:
//   - it parses;
//   - every variable has a description and a type, every output a description;
//   - a variable or output whose name matches secret|password|key|token is
//     sensitive, unless a "not secret" comment says why not;
//   - a sensitive variable has no default other than null or empty;
//   - every IAM policy, as an aws_iam_policy_document data source or a
//     jsonencode'd policy document, names its resources in each statement,
//     and a "*" in an action, or a resource "*", has a comment in its
//     statement, or just above it, saying why.
//
// A .tftest.hcl file is only parsed.
func Lint(filename string, src []byte) []Problem {
	f, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		var problems []Problem
		for _, d := range diags.Errs() {
			var rng hcl.Range
			if de, ok := d.(*hcl.Diagnostic); ok && de.Subject != nil {
				rng = *de.Subject
			}
			rng.Filename = filename
			problems = append(problems, Problem{rng, "does not parse: " + d.Error()})
		}
		return problems
	}
	if strings.HasSuffix(filename, ".tftest.hcl") {
		return nil
	}
	l := linter{src: src, comments: commentLines(src, filename)}
	body := f.Body.(*hclsyntax.Body)
	for _, b := range body.Blocks {
		switch {
		case b.Type == "variable" && len(b.Labels) == 1:
			l.variable(b)
		case b.Type == "output" && len(b.Labels) == 1:
			l.output(b)
		case b.Type == "data" && len(b.Labels) == 2 && b.Labels[0] == "aws_iam_policy_document":
			l.policyDocument(b)
		}
		l.jsonPolicies(b.Body)
	}
	return l.problems
}

type linter struct {
	src      []byte
	comments map[int]string // line => the comment text on it
	problems []Problem
}

func (l *linter) add(rng hcl.Range, format string, args ...any) {
	l.problems = append(l.problems, Problem{rng, fmt.Sprintf(format, args...)})
}

func (l *linter) variable(b *hclsyntax.Block) {
	name := b.Labels[0]
	attrs := b.Body.Attributes
	if attrs["description"] == nil {
		l.add(b.DefRange(), "variable %q has no description", name)
	}
	if attrs["type"] == nil {
		l.add(b.DefRange(), "variable %q has no type", name)
	}
	sensitive := isTrue(attrs["sensitive"])
	if !sensitive && secretName.MatchString(name) && !l.notSecret(b) {
		l.add(b.DefRange(), "variable %q looks secret (secret|password|key|token) but is not sensitive; mark it sensitive, or say why not in a \"# not secret: ...\" comment above it", name)
	}
	if sensitive || (secretName.MatchString(name) && !l.notSecret(b)) {
		if d := attrs["default"]; d != nil && !isEmpty(d) {
			l.add(d.SrcRange, "secret variable %q has a default: secrets come from the caller", name)
		}
	}
}

func (l *linter) output(b *hclsyntax.Block) {
	name := b.Labels[0]
	attrs := b.Body.Attributes
	if attrs["description"] == nil {
		l.add(b.DefRange(), "output %q has no description", name)
	}
	if secretName.MatchString(name) && !isTrue(attrs["sensitive"]) && !l.notSecret(b) {
		l.add(b.DefRange(), "output %q looks secret (secret|password|key|token) but is not sensitive; mark it sensitive, or say why not in a \"# not secret: ...\" comment above it", name)
	}
}

// notSecret says whether the comment lines just above b say "not secret".
func (l *linter) notSecret(b *hclsyntax.Block) bool {
	for line := b.Range().Start.Line - 1; line > 0; line-- {
		c, ok := l.comments[line]
		if !ok {
			return false
		}
		if strings.Contains(strings.ToLower(c), "not secret") {
			return true
		}
	}
	return false
}

// justified says whether a comment is in the statement rng, on its lines
// or on the line just above it: the comment that says why a wildcard is
// needed.
func (l *linter) justified(rng hcl.Range) bool {
	for line := rng.Start.Line - 1; line <= rng.End.Line; line++ {
		if _, ok := l.comments[line]; ok {
			return true
		}
	}
	return false
}

func (l *linter) policyDocument(b *hclsyntax.Block) {
	for _, st := range statements(b.Body) {
		attrs := st.Body.Attributes
		// A trust or resource policy (principals) applies to its own resource.
		trust := slices.ContainsFunc(st.Body.Blocks, func(b *hclsyntax.Block) bool { return b.Type == "principals" })
		if !trust && attrs["resources"] == nil && attrs["not_resources"] == nil {
			l.add(st.DefRange(), "IAM statement in %q names no resources", b.Labels[1])
		}
		if attrs["not_actions"] != nil {
			l.add(attrs["not_actions"].SrcRange, "IAM statement in %q uses not_actions: name the actions", b.Labels[1])
		}
		for _, name := range []string{"actions", "resources"} {
			a := attrs[name]
			if a == nil {
				continue
			}
			for _, el := range stringElems(a.Expr) {
				if wildcard(name, el.value) && !l.justified(st.Range()) {
					l.add(el.rng, "IAM %s %q in %q has a wildcard without a comment saying why", name, el.value, b.Labels[1])
				}
			}
		}
	}
}

// statements returns a policy document's statement blocks, those of its
// dynamic "statement" blocks' content included.
func statements(body *hclsyntax.Body) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		switch {
		case b.Type == "statement":
			out = append(out, b)
		case b.Type == "dynamic" && len(b.Labels) == 1 && b.Labels[0] == "statement":
			for _, c := range b.Body.Blocks {
				if c.Type == "content" {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// jsonPolicies finds jsonencode({Version, Statement = [...]}) anywhere in
// body's attributes (policy, assume_role_policy, ...) and checks each
// statement as policyDocument does.
func (l *linter) jsonPolicies(body *hclsyntax.Body) {
	for _, a := range body.Attributes {
		hclsyntax.VisitAll(a.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
			call, ok := n.(*hclsyntax.FunctionCallExpr)
			if !ok || call.Name != "jsonencode" || len(call.Args) != 1 {
				return nil
			}
			doc, ok := call.Args[0].(*hclsyntax.ObjectConsExpr)
			if !ok {
				return nil
			}
			stmts := objectItem(doc, "Statement")
			if stmts == nil {
				return nil
			}
			tuple, ok := stmts.(*hclsyntax.TupleConsExpr)
			if !ok {
				return nil
			}
			for _, s := range tuple.Exprs {
				st, ok := s.(*hclsyntax.ObjectConsExpr)
				if !ok {
					continue
				}
				l.jsonStatement(a.Name, st)
			}
			return nil
		})
	}
	for _, b := range body.Blocks {
		l.jsonPolicies(b.Body)
	}
}

func (l *linter) jsonStatement(attr string, st *hclsyntax.ObjectConsExpr) {
	// A trust policy (assume_role_policy) names a Principal, not resources.
	trust := objectItem(st, "Principal") != nil
	if !trust && objectItem(st, "Resource") == nil {
		l.add(st.SrcRange, "IAM statement in %s names no Resource", attr)
	}
	for _, key := range []string{"Action", "Resource"} {
		e := objectItem(st, key)
		if e == nil {
			continue
		}
		for _, el := range stringElems(e) {
			if wildcard(key, el.value) && !l.justified(st.SrcRange) {
				l.add(el.rng, "IAM %s %q in %s has a wildcard without a comment saying why", key, el.value, attr)
			}
		}
	}
}

// objectItem returns the value of key in an object constructor, or nil.
func objectItem(o *hclsyntax.ObjectConsExpr, key string) hclsyntax.Expression {
	for _, it := range o.Items {
		k, diags := it.KeyExpr.Value(nil)
		if diags.HasErrors() || !k.Type().Equals(cty.String) || k.IsNull() {
			continue
		}
		if k.AsString() == key {
			return it.ValueExpr
		}
	}
	return nil
}

type stringElem struct {
	value string
	rng   hcl.Range
}

// stringElems returns the literal strings of a string or a list of strings;
// the literal parts of templates ("arn:...:${x}/*") count.
func stringElems(e hclsyntax.Expression) []stringElem {
	var exprs []hclsyntax.Expression
	if t, ok := e.(*hclsyntax.TupleConsExpr); ok {
		exprs = t.Exprs
	} else {
		exprs = []hclsyntax.Expression{e}
	}
	var out []stringElem
	for _, x := range exprs {
		var sb strings.Builder
		hclsyntax.VisitAll(x, func(n hclsyntax.Node) hcl.Diagnostics {
			if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type().Equals(cty.String) {
				sb.WriteString(lit.Val.AsString())
			}
			return nil
		})
		if sb.Len() > 0 {
			out = append(out, stringElem{sb.String(), x.Range()})
		}
	}
	return out
}

// commentLines maps each line that holds a comment to its text.
func commentLines(src []byte, filename string) map[int]string {
	tokens, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	lines := map[int]string{}
	for _, tok := range tokens {
		if tok.Type != hclsyntax.TokenComment {
			continue
		}
		text := string(tok.Bytes)
		for line := tok.Range.Start.Line; line <= tok.Range.End.Line; line++ {
			// A line comment's range ends at the start of the next line.
			if line == tok.Range.End.Line && line > tok.Range.Start.Line && tok.Range.End.Column == 1 {
				break
			}
			lines[line] += text
		}
	}
	return lines
}

// wildcard says whether an action holds a "*", or a resource is "*" alone
// (a "*" inside an ARN, such as a bucket's objects, names resources).
func wildcard(attr, value string) bool {
	if strings.EqualFold(attr, "actions") || attr == "Action" {
		return strings.Contains(value, "*")
	}
	return value == "*"
}

func isTrue(a *hclsyntax.Attribute) bool {
	if a == nil {
		return false
	}
	v, diags := a.Expr.Value(nil)
	return !diags.HasErrors() && v.Type().Equals(cty.Bool) && v.IsKnown() && !v.IsNull() && v.True()
}

// isEmpty says whether a is null, or an empty string, list or map: a
// default that holds no secret.
func isEmpty(a *hclsyntax.Attribute) bool {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return false
	}
	if v.IsNull() {
		return true
	}
	if v.Type().Equals(cty.String) {
		return v.AsString() == ""
	}
	return (v.CanIterateElements()) && v.LengthInt() == 0
}

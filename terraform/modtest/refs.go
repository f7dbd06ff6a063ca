package modtest

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// builtinRoots are the reference roots that need no declaration.
var builtinRoots = map[string]bool{
	"path": true, "terraform": true, "count": true, "each": true, "self": true, "tofu": true,
}

// lintRefs checks that every reference in a module's files (one folder's
// .tf files) names something the module declares: var.X a variable,
// local.X a local, module.X a module call, data.T.N a data source, T.N a
// resource. tofu validate checks this too, but cannot run on modules whose
// providers are not installed (kiln-aws here).
func lintRefs(files map[string]*hclsyntax.Body) []Problem {
	decl := map[string]bool{}
	for _, body := range files {
		for _, b := range body.Blocks {
			switch {
			case b.Type == "variable" && len(b.Labels) == 1:
				decl["var."+b.Labels[0]] = true
			case b.Type == "module" && len(b.Labels) == 1:
				decl["module."+b.Labels[0]] = true
			case b.Type == "data" && len(b.Labels) == 2:
				decl["data."+b.Labels[0]+"."+b.Labels[1]] = true
			case b.Type == "resource" && len(b.Labels) == 2:
				decl[b.Labels[0]+"."+b.Labels[1]] = true
			case b.Type == "locals":
				for name := range b.Body.Attributes {
					decl["local."+name] = true
				}
			}
		}
	}
	var problems []Problem
	for _, body := range files {
		walkExprs(body, nil, func(e hclsyntax.Expression, iterators map[string]bool) {
			for _, tr := range e.Variables() {
				root := tr.RootName()
				if builtinRoots[root] || iterators[root] {
					continue
				}
				name := refName(tr)
				if name == "" || decl[name] {
					continue
				}
				problems = append(problems, Problem{tr.SourceRange(), fmt.Sprintf("reference to undeclared %s", name)})
			}
		})
	}
	return problems
}

// refName is the declaration a traversal refers to ("var.x", "data.t.n",
// "t.n"), or "" when it is too short to tell.
func refName(tr hcl.Traversal) string {
	parts := []string{tr.RootName()}
	for _, step := range tr[1:] {
		attr, ok := step.(hcl.TraverseAttr)
		if !ok {
			break
		}
		parts = append(parts, attr.Name)
	}
	n := 2
	if parts[0] == "data" {
		n = 3
	}
	if len(parts) < n {
		return ""
	}
	return strings.Join(parts[:n], ".")
}

// walkExprs calls f with every attribute expression in body, nested blocks
// included, and the iterator names of the dynamic blocks around it.
func walkExprs(body *hclsyntax.Body, iterators map[string]bool, f func(hclsyntax.Expression, map[string]bool)) {
	for _, a := range body.Attributes {
		f(a.Expr, iterators)
	}
	for _, b := range body.Blocks {
		inner := iterators
		if b.Type == "dynamic" && len(b.Labels) == 1 {
			inner = map[string]bool{b.Labels[0]: true}
			for k := range iterators {
				inner[k] = true
			}
			if it := b.Body.Attributes["iterator"]; it != nil {
				if tr, diags := hcl.AbsTraversalForExpr(it.Expr); !diags.HasErrors() {
					inner[tr.RootName()] = true
				}
			}
		}
		walkExprs(b.Body, inner, f)
	}
}

// metaArgs are a module call's arguments that are not the module's variables.
var metaArgs = map[string]bool{"source": true, "version": true, "count": true, "for_each": true, "providers": true, "depends_on": true}

// lintModuleCalls checks each call of a local module (source "./…" or
// "../…") in dir's files against that module: every argument is one of its
// variables, every variable without a default is given, and every
// module.NAME.OUTPUT names one of its outputs.
func lintModuleCalls(dir string, files map[string]*hclsyntax.Body, modules map[string]map[string]*hclsyntax.Body) []Problem {
	var problems []Problem
	outputsOf := map[string]map[string]bool{}
	for _, body := range files {
		for _, b := range body.Blocks {
			if b.Type != "module" || len(b.Labels) != 1 || b.Body.Attributes["source"] == nil {
				continue
			}
			v, diags := b.Body.Attributes["source"].Expr.Value(nil)
			if diags.HasErrors() || !v.Type().Equals(cty.String) {
				continue
			}
			src := v.AsString()
			if !strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "../") {
				continue
			}
			target, ok := modules[filepath.Join(dir, src)]
			if !ok {
				problems = append(problems, Problem{b.DefRange(), fmt.Sprintf("module %q: no module at %s", b.Labels[0], src)})
				continue
			}
			vars, outs := map[string]bool{}, map[string]bool{}
			required := map[string]bool{}
			for _, tb := range target {
				for _, d := range tb.Blocks {
					switch {
					case d.Type == "variable" && len(d.Labels) == 1:
						vars[d.Labels[0]] = true
						if d.Body.Attributes["default"] == nil {
							required[d.Labels[0]] = true
						}
					case d.Type == "output" && len(d.Labels) == 1:
						outs[d.Labels[0]] = true
					}
				}
			}
			outputsOf[b.Labels[0]] = outs
			for name, a := range b.Body.Attributes {
				if !metaArgs[name] && !vars[name] {
					problems = append(problems, Problem{a.SrcRange, fmt.Sprintf("module %q has no variable %q", b.Labels[0], name)})
				}
			}
			for name := range required {
				if b.Body.Attributes[name] == nil {
					problems = append(problems, Problem{b.DefRange(), fmt.Sprintf("module %q needs variable %q", b.Labels[0], name)})
				}
			}
		}
	}
	for _, body := range files {
		walkExprs(body, nil, func(e hclsyntax.Expression, _ map[string]bool) {
			for _, tr := range e.Variables() {
				if tr.RootName() != "module" || len(tr) < 3 {
					continue
				}
				mod, ok1 := tr[1].(hcl.TraverseAttr)
				var out hcl.TraverseAttr
				var ok2 bool
				// module.m.out, or module.m[0].out with count.
				if _, ok := tr[2].(hcl.TraverseIndex); ok && len(tr) >= 4 {
					out, ok2 = tr[3].(hcl.TraverseAttr)
				} else {
					out, ok2 = tr[2].(hcl.TraverseAttr)
				}
				outs, known := outputsOf[mod.Name]
				if ok1 && ok2 && known && !outs[out.Name] {
					problems = append(problems, Problem{tr.SourceRange(), fmt.Sprintf("module %q has no output %q", mod.Name, out.Name)})
				}
			}
		})
	}
	return problems
}

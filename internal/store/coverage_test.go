package store_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEveryExportedFuncIsCalled fails naming each exported function of the
// package, and each exported method of its exported types (*Store's above
// all), that no test of the package calls: the store's own tests, which
// run on every backend, must reach all of it, not only end-to-end tests
// elsewhere. A method counts as called when a test (or storetest) has a
// call x.Name(...) of its name; a package function, store.Name(...) or,
// from inside the package, Name(...).
func TestEveryExportedFuncIsCalled(t *testing.T) {
	t.Parallel()
	decls := exportedFuncs(t, ".")
	must := func(cond bool, format string, args ...any) {
		t.Helper()
		if !cond {
			t.Fatalf(format, args...)
		}
	}
	must(len(decls) > 50, "found only %d exported functions and methods: is the parser looking in the right folder?", len(decls))
	var storeMethods int
	for _, d := range decls {
		if d.recv == "Store" {
			storeMethods++
		}
	}

	called := map[string]bool{}     // method or function names, as x.Name(...)
	calledBare := map[string]bool{} // function names, as Name(...)
	var testFiles []string
	for _, pattern := range []string{"*_test.go", filepath.Join("storetest", "*.go")} {
		files, err := filepath.Glob(pattern)
		must(err == nil, "glob %s: %v", pattern, err)
		testFiles = append(testFiles, files...)
	}
	fset := token.NewFileSet()
	for _, path := range testFiles {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		must(err == nil, "parse %s: %v", path, err)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch fn := ast.Unparen(call.Fun).(type) {
			case *ast.SelectorExpr:
				called[fn.Sel.Name] = true
			case *ast.Ident:
				calledBare[fn.Name] = true
			case *ast.IndexExpr: // a generic function's instance
				if id, ok := fn.X.(*ast.Ident); ok {
					calledBare[id.Name] = true
				}
			}
			return true
		})
	}

	var missing []string
	for _, d := range decls {
		if called[d.name] || (d.recv == "" && calledBare[d.name]) {
			continue
		}
		missing = append(missing, d.String())
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d exported functions and methods are called by no test of the store package; test them on every backend "+
			"(TestConformance):\n\t%s", len(missing), len(decls), strings.Join(missing, "\n\t"))
	}
	t.Logf("%d exported functions and methods (%d of *Store), all called by the store's tests", len(decls), storeMethods)
}

type exportedFunc struct {
	recv, name string // recv is "" for a package function
	pos        token.Position
}

func (f exportedFunc) String() string {
	name := f.name
	if f.recv != "" {
		name = f.recv + "." + f.name
	}
	return fmt.Sprintf("%s (%s:%d)", name, filepath.Base(f.pos.Filename), f.pos.Line)
}

// exportedFuncs lists the exported functions of the package in dir, and the
// exported methods of its exported types, from its non-test files.
func exportedFuncs(t *testing.T, dir string) []exportedFunc {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []exportedFunc
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() {
				continue
			}
			ef := exportedFunc{name: fn.Name.Name, pos: fset.Position(fn.Pos())}
			if fn.Recv != nil {
				ef.recv = receiverType(fn.Recv.List[0].Type)
				if !ast.IsExported(ef.recv) {
					continue // reachable only through an interface of its own
				}
			}
			out = append(out, ef)
		}
	}
	slices.SortFunc(out, func(a, b exportedFunc) int {
		return strings.Compare(a.recv+"."+a.name, b.recv+"."+b.name)
	})
	return out
}

// receiverType is the name of a receiver's type: T of T, *T, T[P] or *T[P].
func receiverType(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

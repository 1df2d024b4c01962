package testkit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoUnusedExportedConstants: every exported constant of the
// repository's production code is used by its production code. staticcheck
// reports unused unexported names only; an exported constant nothing reads
// is a promise (a status, a reason, a header) the code does not keep.
// A use is the name inside its own package (not as a field or method
// selector) or pkg.Name elsewhere, pkg being the package's name.
func TestNoUnusedExportedConstants(t *testing.T) {
	type file struct {
		dir string
		af  *ast.File
	}
	var files []file
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		af, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			return err
		}
		files = append(files, file{filepath.Dir(p), af})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	type constant struct {
		id       *ast.Ident
		dir, pkg string
	}
	var consts []constant
	for _, f := range files {
		for _, d := range f.af.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, s := range g.Specs {
					for _, n := range s.(*ast.ValueSpec).Names {
						if n.IsExported() {
							consts = append(consts, constant{n, f.dir, f.af.Name.Name})
						}
					}
				}
			}
		}
	}
	if len(consts) < 20 {
		t.Fatalf("only %d exported constants found: the walk is broken", len(consts))
	}
	for _, c := range consts {
		used := false
		for _, f := range files {
			same := f.dir == c.dir && f.af.Name.Name == c.pkg
			var walk func(n ast.Node) bool
			walk = func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					if x, ok := n.X.(*ast.Ident); ok && !same && x.Name == c.pkg && n.Sel.Name == c.id.Name {
						used = true
					}
					ast.Inspect(n.X, walk) // n.Sel is a field, a method or another package's name
					return false
				case *ast.Ident:
					if same && n.Name == c.id.Name && n != c.id {
						used = true
					}
				}
				return !used
			}
			ast.Inspect(f.af, walk)
			if used {
				break
			}
		}
		if !used {
			t.Errorf("%s: exported constant %s.%s is used by no production code: use it or remove it", c.dir, c.pkg, c.id.Name)
		}
	}
}

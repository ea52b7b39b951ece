// Command funcstat reports the longest and most deeply nested functions of the module's non-test Go code.
//
//	go run ./internal/tools/funcstat            # summary and the 15 longest functions
//	go run ./internal/tools/funcstat -check     # exit 1 if a function breaks -max-lines or -max-depth
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Func is one function or method declaration.
type Func struct {
	// Name is path:Receiver.Name.
	Name string
	// Lines counts the declaration's lines, signature to closing brace.
	Lines int
	// Depth is the deepest nesting of if, for, switch, select and function literals in the body.
	Depth int
}

func main() {
	root := flag.String("root", ".", "module root")
	maxLines := flag.Int("max-lines", 80, "longest allowed function")
	maxDepth := flag.Int("max-depth", 4, "deepest allowed nesting")
	top := flag.Int("top", 15, "longest functions to list")
	check := flag.Bool("check", false, "exit 1 if a function breaks -max-lines or -max-depth")
	flag.Parse()
	funcs, err := Scan(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "funcstat:", err)
		os.Exit(2)
	}
	bad := Report(os.Stdout, funcs, *maxLines, *maxDepth, *top)
	if *check && bad > 0 {
		os.Exit(1)
	}
}

// Report prints the summary, the top longest functions and every function over a limit, and
// returns how many break a limit.
func Report(w io.Writer, funcs []Func, maxLines, maxDepth, top int) int {
	sort.SliceStable(funcs, func(i, j int) bool { return funcs[i].Lines > funcs[j].Lines })
	var over []Func
	for _, f := range funcs {
		if f.Lines > maxLines || f.Depth > maxDepth {
			over = append(over, f)
		}
	}
	fmt.Fprintf(w, "functions: %d; over %d lines or nesting over %d: %d\n", len(funcs), maxLines, maxDepth, len(over))
	for _, f := range funcs[:min(top, len(funcs))] {
		fmt.Fprintf(w, "%5d lines  depth %d  %s\n", f.Lines, f.Depth, f.Name)
	}
	if len(over) > 0 {
		fmt.Fprintln(w, "over a limit:")
		for _, f := range over {
			fmt.Fprintf(w, "%5d lines  depth %d  %s\n", f.Lines, f.Depth, f.Name)
		}
	}
	return len(over)
}

// Scan parses every non-test .go file below root, skipping hidden folders, node_modules and
// testdata, and measures its function declarations.
func Scan(root string) ([]Func, error) {
	fset := token.NewFileSet()
	var funcs []Func
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != root && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parse %s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		funcs = append(funcs, measure(fset, filepath.ToSlash(rel), f)...)
		return nil
	})
	return funcs, err
}

func measure(fset *token.FileSet, rel string, f *ast.File) []Func {
	var out []Func
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
		out = append(out, Func{Name: rel + ":" + funcName(fd), Lines: lines, Depth: nesting(fd.Body)})
	}
	return out
}

func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// nesting returns the deepest nesting of control-flow statements and function literals in n.
func nesting(n ast.Node) int {
	deepest := 0
	var walk func(n ast.Node, d int)
	walk = func(n ast.Node, d int) {
		ast.Inspect(n, func(c ast.Node) bool {
			if c == n {
				return true
			}
			switch c.(type) {
			case *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt, *ast.SwitchStmt, *ast.TypeSwitchStmt,
				*ast.SelectStmt, *ast.FuncLit:
				deepest = max(deepest, d+1)
				walk(c, d+1)
				return false
			}
			return true
		})
	}
	walk(n, 0)
	return deepest
}

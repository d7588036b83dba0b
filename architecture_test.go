// Package maruta_test keeps ARCHITECTURE.md true. Its package table is the
// import rule: each package of the module may import, of the module's
// packages, only what its row's last column names (`internal/…` for any
// package under internal/), and every package must have a row and a doc
// comment.
// The test also checks where the heavy third-party libraries may appear,
// that the binary links no test package, and that the files and functions
// the map names exist. Imports are read with `go list`
// (the non-test imports of each package); tests may import more.
package maruta_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// listedPackage is what `go list -json` says about one package.
type listedPackage struct {
	ImportPath   string
	Dir          string
	Doc          string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
	Deps         []string
}

// modulePackages lists the module's packages, keyed by their path relative
// to the module root ("" for the root, "sinks/encode", …). go list runs
// once per test binary.
func modulePackages(t *testing.T) (module string, pkgs map[string]*listedPackage) {
	t.Helper()
	listed.once.Do(func() { listed.module, listed.pkgs, listed.err = goList() })
	if listed.err != nil {
		t.Fatal(listed.err)
	}
	return listed.module, listed.pkgs
}

var listed struct {
	once   sync.Once
	module string
	pkgs   map[string]*listedPackage
	err    error
}

func goList() (string, map[string]*listedPackage, error) {
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list -m: %s", exitText(err))
	}
	module := strings.TrimSpace(string(out))
	out, err = exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list -json ./...: %s", exitText(err))
	}
	pkgs := map[string]*listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(listedPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("decode go list output: %w", err)
		}
		pkgs[rel(module, p.ImportPath)] = p
	}
	if len(pkgs) < 10 {
		return "", nil, fmt.Errorf("go list found %d packages of %s; expected the whole module", len(pkgs), module)
	}
	return module, pkgs, nil
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return err.Error() + ": " + string(ee.Stderr)
	}
	return err.Error()
}

// rel returns path relative to module, or "" for the module itself, or
// path unchanged when it is outside the module.
func rel(module, path string) string {
	if path == module {
		return ""
	}
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return path
}

// mapRow is one row of ARCHITECTURE.md's package table.
type mapRow struct {
	line int
	may  []string // allowed module imports: paths, "internal/…" for any internal package
	any  bool     // "everything except the test packages"
}

// readMap parses the package table of ARCHITECTURE.md: rows whose first
// cell is a backquoted package path; the last cell lists what it may import.
func readMap(t *testing.T) map[string]mapRow {
	t.Helper()
	f, err := os.Open("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]mapRow{}
	sc := bufio.NewScanner(f)
	in := false // inside the table
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "| package | owns | may import") {
			in = true
			continue
		}
		if !strings.HasPrefix(line, "|") {
			in = false
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 3 {
			t.Fatalf("ARCHITECTURE.md:%d: a package row has 3 cells (package, owns, may import), this has %d", n, len(cells))
		}
		pkg := strings.Trim(cells[0], "`")
		last := cells[2]
		row := mapRow{line: n, any: strings.HasPrefix(last, "everything")}
		parts := strings.Split(last, "`")
		for i := 1; i < len(parts); i += 2 {
			row.may = append(row.may, parts[i])
		}
		if !row.any && len(row.may) == 0 && last != "nothing" && last != "—" {
			t.Fatalf("ARCHITECTURE.md:%d: cannot read what %s may import: %q", n, pkg, last)
		}
		if _, dup := rows[pkg]; dup {
			t.Fatalf("ARCHITECTURE.md:%d: %s has two rows", n, pkg)
		}
		rows[pkg] = row
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("ARCHITECTURE.md: no package table (a header row starting \"| package | owns | may import\")")
	}
	return rows
}

// testPackages are helpers for tests: no other package's non-test code may
// import them, so the binary never links them.
var testPackages = []string{"internal/testutil", "internal/crashfs", "buffer/buffertest", "sinks/sinktest"}

func allowed(row mapRow, imp string) bool {
	if slices.Contains(testPackages, imp) {
		return false
	}
	if row.any {
		return true
	}
	for _, m := range row.may {
		if m == imp || m == "internal/…" && strings.HasPrefix(imp, "internal/") {
			return true
		}
	}
	return false
}

// TestImportDirection checks every package's module imports against its
// row in ARCHITECTURE.md, and that every package has a row.
func TestImportDirection(t *testing.T) {
	module, pkgs := modulePackages(t)
	rows := readMap(t)
	for r, p := range pkgs {
		if r == "" {
			continue // this test
		}
		row, ok := rows[r]
		if !ok {
			t.Errorf("package %s has no row in ARCHITECTURE.md's package table: add one saying what it owns and what it may import", r)
			continue
		}
		for _, imp := range p.Imports {
			ri := rel(module, imp)
			if ri == imp {
				continue // not the module's
			}
			if !allowed(row, ri) {
				t.Errorf("%s imports %s, which ARCHITECTURE.md (line %d) does not allow: change the code, or the map and its reasons", r, ri, row.line)
			}
		}
	}
	for r := range rows {
		if _, ok := pkgs[r]; !ok {
			t.Errorf("ARCHITECTURE.md lists package %s (line %d), which does not exist", r, rows[r].line)
		}
	}
}

// TestLibrariesConfined checks where the large third-party libraries may
// be imported, and that the stages and their contracts do not reach them.
func TestLibrariesConfined(t *testing.T) {
	module, pkgs := modulePackages(t)
	confined := []struct {
		prefix string
		in     []string // the only packages that may import it directly
	}{
		{"github.com/aws/", []string{"sinks", "athena", "internal/testutil"}},
		{"github.com/parquet-go/", []string{"sinks/encode", "athena"}},
		{"github.com/hanwen/go-fuse/", []string{"internal/crashfs"}},
	}
	for r, p := range pkgs {
		for _, imp := range p.Imports {
			for _, c := range confined {
				if strings.HasPrefix(imp, c.prefix) && !slices.Contains(c.in, r) {
					t.Errorf("%s imports %s; only %s may (ARCHITECTURE.md)", r, imp, strings.Join(c.in, ", "))
				}
			}
		}
	}
	// The stages and the contracts between them build without the heavy
	// libraries, whatever they import.
	for _, r := range []string{"forward", "router", "buffer", "internal/event", "internal/delivery"} {
		p := pkgs[r]
		if p == nil {
			t.Errorf("package %s not found", r)
			continue
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, "github.com/aws/") || strings.HasPrefix(d, "github.com/parquet-go/") {
				t.Errorf("%s depends on %s (through its imports); it must not", r, d)
			}
		}
	}
	bin := pkgs["cmd/maruta"]
	if bin == nil {
		t.Fatal("package cmd/maruta not found")
	}
	for _, d := range bin.Deps {
		if slices.Contains(testPackages, rel(module, d)) || strings.HasPrefix(d, "github.com/hanwen/go-fuse/") {
			t.Errorf("the binary links %s, a test package", d)
		}
	}
}

// TestPackageDocs checks that every package has a doc comment (the
// convention: in doc.go, saying what the package owns, its lifecycle and
// concurrency contract, what it may import; test-only packages: in a test
// file).
func TestPackageDocs(t *testing.T) {
	_, pkgs := modulePackages(t)
	for r, p := range pkgs {
		name := r
		if name == "" {
			name = "the module root"
		}
		if len(p.GoFiles) == 0 {
			if !hasDocComment(t, p.Dir, append(p.TestGoFiles, p.XTestGoFiles...)) {
				t.Errorf("%s (tests only) has no package doc comment", name)
			}
			continue
		}
		if !hasDocComment(t, p.Dir, p.GoFiles) {
			t.Errorf("%s has no package doc comment: add a doc.go saying what it owns, its lifecycle and concurrency contract, what it may import", name)
		}
	}
}

func hasDocComment(t *testing.T, dir string, files []string) bool {
	t.Helper()
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
			return true
		}
	}
	return false
}

// TestMapNamesExist checks that the files, folders and functions
// ARCHITECTURE.md names exist: every backquoted path (buffer/FORMAT.md,
// sinks/encode), every `file.go: Type.method`, and every `Type.method`,
// `pkg.Name` or `pkg.Type.Method` — so that a rename updates the map.
func TestMapNamesExist(t *testing.T) {
	_, pkgs := modulePackages(t)
	data, err := os.ReadFile("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	decls := moduleDecls(t, pkgs)
	parts := strings.Split(string(data), "`")
	for i := 1; i < len(parts); i += 2 {
		tok := parts[i]
		line := 1 + strings.Count(strings.Join(parts[:i], "`"), "\n")
		if file, sym, ok := strings.Cut(tok, ".go: "); ok && !strings.ContainsAny(file, " *<") {
			file += ".go"
			if !decls.inFile(file, sym) {
				t.Errorf("ARCHITECTURE.md:%d: %s has no %s", line, file, sym)
			}
			continue
		}
		switch {
		case strings.Contains(tok, "/") && !strings.ContainsAny(tok, " *<>…$") && !strings.HasPrefix(tok, ".") && !strings.HasPrefix(tok, "/"):
			if _, err := os.Stat(tok); err != nil {
				t.Errorf("ARCHITECTURE.md:%d: %s does not exist", line, tok)
			}
		case qualified(tok):
			if !decls.resolve(tok) {
				t.Errorf("ARCHITECTURE.md:%d: no declaration %s in the module", line, tok)
			}
		}
	}
}

// qualified reports whether tok looks like X.Y or X.Y.Z of Go identifiers.
func qualified(tok string) bool {
	ids := strings.Split(tok, ".")
	if len(ids) < 2 || len(ids) > 3 {
		return false
	}
	for _, id := range ids {
		if !token.IsIdentifier(id) {
			return false
		}
	}
	return true
}

// declIndex holds the top-level names of the module's non-test files:
// "Name" and "Type.Method", per file (relative path) and per package name.
type declIndex struct {
	byFile map[string]map[string]bool
	byPkg  map[string]map[string]bool // package name → names
	all    map[string]bool            // "Type.Method" anywhere
}

func moduleDecls(t *testing.T, pkgs map[string]*listedPackage) *declIndex {
	t.Helper()
	x := &declIndex{byFile: map[string]map[string]bool{}, byPkg: map[string]map[string]bool{}, all: map[string]bool{}}
	for r, p := range pkgs {
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{}
			for _, d := range af.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil {
						names[d.Name.Name] = true
						continue
					}
					typ := d.Recv.List[0].Type
					if s, ok := typ.(*ast.StarExpr); ok {
						typ = s.X
					}
					if g, ok := typ.(*ast.IndexExpr); ok {
						typ = g.X
					}
					if id, ok := typ.(*ast.Ident); ok {
						names[id.Name+"."+d.Name.Name] = true
						x.all[id.Name+"."+d.Name.Name] = true
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							names[s.Name.Name] = true
						case *ast.ValueSpec:
							for _, n := range s.Names {
								names[n.Name] = true
							}
						}
					}
				}
			}
			x.byFile[filepath.ToSlash(filepath.Join(r, f))] = names
			pn := af.Name.Name
			if x.byPkg[pn] == nil {
				x.byPkg[pn] = map[string]bool{}
			}
			for n := range names {
				x.byPkg[pn][n] = true
			}
		}
	}
	return x
}

func (x *declIndex) inFile(file, sym string) bool { return x.byFile[file][sym] }

// resolve finds pkg.Name, pkg.Type.Method, or Type.Method in any package.
func (x *declIndex) resolve(tok string) bool {
	first, rest, _ := strings.Cut(tok, ".")
	if names, ok := x.byPkg[first]; ok && names[rest] {
		return true
	}
	return x.all[tok]
}

package webhook

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// guardedPackage is a directory whose non-test Go files must not execute
// anything or write files, with what it may not import on top of that.
type guardedPackage struct {
	dir string
	// forbidden imports, by path prefix, beyond the ones every guarded
	// package is denied.
	forbidden []string
}

// guarded are the packages an admission request, or the translation it
// triggers, runs through.
var guarded = []guardedPackage{
	// The handler: no file system, no API client, no outbound network.
	{dir: ".", forbidden: []string{"os", "k8s.io/client-go", "net/rpc", "net/smtp"}},
	// Certificates: reads files and talks to the API server, writes no file.
	{dir: "certs"},
	// The translator is pure: no file system, no network, no client.
	{dir: "../translate", forbidden: []string{"os", "net/http", "k8s.io/client-go", "io/fs"}},
}

// forbiddenEverywhere can run code or bypass the type system.
var forbiddenEverywhere = []string{"os/exec", "syscall", "unsafe", "plugin", "golang.org/x/sys"}

// writers are the functions that create, change or remove files, and start
// processes, by package path.
var writers = map[string][]string{
	"os": {"WriteFile", "Create", "CreateTemp", "OpenFile", "Mkdir", "MkdirAll", "MkdirTemp", "Remove", "RemoveAll",
		"Rename", "Symlink", "Link", "Chmod", "Chown", "Lchown", "Chtimes", "Truncate", "StartProcess", "NewFile", "CopyFS"},
	"io/ioutil": {"WriteFile", "TempFile", "TempDir"},
	"net":       {"Dial", "DialTCP", "DialUDP", "DialIP", "DialUnix", "DialTimeout"},
	"net/http":  {"Get", "Post", "PostForm", "Head", "DefaultClient", "DefaultTransport", "NewRequest", "NewRequestWithContext"},
}

// TestGuardNoExecNoFileWrites proves, from the source, that the webhook and
// the translator import nothing that runs programs and call nothing that
// writes files; the handler and the translator also make no outbound
// network calls. It is what makes an ingress-nginx style webhook exploit
// (configuration text executed by a proxy) impossible to reintroduce
// without this test failing.
func TestGuardNoExecNoFileWrites(t *testing.T) {
	for _, pkg := range guarded {
		files, err := filepath.Glob(filepath.Join(pkg.dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			checked++
			checkFile(t, file, append(slices.Clone(forbiddenEverywhere), pkg.forbidden...))
		}
		if checked == 0 {
			t.Errorf("%s: no Go files found to check", pkg.dir)
		}
	}
}

func checkFile(t *testing.T, file string, forbidden []string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	for _, finding := range findings(fset, f, forbidden) {
		t.Error(finding)
	}
}

// findings lists the forbidden imports and calls of one file.
func findings(fset *token.FileSet, f *ast.File, forbidden []string) []string {
	var out []string
	// local name -> import path, for the packages with guarded functions.
	names := map[string]string{}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		for _, bad := range forbidden {
			if path == bad || strings.HasPrefix(path, bad+"/") {
				out = append(out, fmt.Sprintf("%s: imports %q", fset.Position(imp.Pos()), path))
				break
			}
		}
		if _, ok := writers[path]; !ok {
			continue
		}
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name == "_" || name == "." {
			out = append(out, fmt.Sprintf("%s: imports %q as %s, which hides its calls from this check", fset.Position(imp.Pos()), path, name))
			continue
		}
		names[name] = path
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		if path, ok := names[id.Name]; ok && slices.Contains(writers[path], sel.Sel.Name) {
			out = append(out, fmt.Sprintf("%s: uses %s.%s", fset.Position(sel.Pos()), path, sel.Sel.Name))
		}
		return true
	})
	return out
}

// TestGuardCatches makes sure the guard is not vacuous: aliases do not hide
// an import or a call.
func TestGuardCatches(t *testing.T) {
	const src = `package x

import (
	fs "os"
	run "os/exec"
	h "net/http"
	. "io/ioutil"
)

func f() { fs.WriteFile("a", nil, 0); run.Command("sh"); h.Get("http://x"); fs.ReadFile("ok") }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := findings(fset, f, append(slices.Clone(forbiddenEverywhere), "os"))
	want := []string{
		`x.go:4:2: imports "os"`,
		`x.go:5:2: imports "os/exec"`,
		`x.go:7:2: imports "io/ioutil" as ., which hides its calls from this check`,
		`x.go:10:12: uses os.WriteFile`,
		`x.go:10:58: uses net/http.Get`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings\n got %q\nwant %q", got, want)
	}
}

// transitiveForbidden may not be reachable at all, through any dependency,
// from the handler and the translator: nothing that runs programs or loads
// code, no RPC or mail client, no Kubernetes client.
var transitiveForbidden = []string{"os/exec", "plugin", "net/rpc", "net/smtp", "net/http/cgi", "net/http/fcgi", "k8s.io/client-go"}

// execImporters are the only packages the certificate code may reach
// os/exec through: client-go (its REST transport links the exec credential
// plugins a kubeconfig can name) and the OpenAPI compiler client-go
// imports (its extension plugins). Torii never configures either from a
// request; the kubeconfig is the operator's, or the in-cluster config.
var execImporters = []string{"k8s.io/client-go/plugin/pkg/client/auth/exec", "github.com/google/gnostic-models/compiler"}

// TestGuardTransitiveImports checks the compiled import graph, which the
// source-level guard above cannot see: `go list -deps` of the handler and
// the translator reaches none of transitiveForbidden, and the certificate
// code reaches os/exec only through execImporters and never "plugin".
// (Running `go list` from a test uses os/exec, in a test file only: tests
// are not part of the binary.)
func TestGuardTransitiveImports(t *testing.T) {
	goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		t.Fatalf("the go command is needed to list the dependencies: %v", err)
	}
	imports := func(pkg string) map[string][]string {
		t.Helper()
		cmd := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pkg)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
		}
		deps := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fields := strings.Fields(line)
			deps[fields[0]] = fields[1:]
		}
		return deps
	}
	forbidden := func(path string, list []string) bool {
		return slices.ContainsFunc(list, func(bad string) bool { return path == bad || strings.HasPrefix(path, bad+"/") })
	}

	for _, pkg := range []string{".", "../translate"} {
		deps := imports(pkg)
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s: only %d packages; the check would be vacuous", pkg, len(deps))
		}
		for dep := range deps {
			if forbidden(dep, transitiveForbidden) {
				var via []string
				for importer, list := range deps {
					if slices.Contains(list, dep) {
						via = append(via, importer)
					}
				}
				slices.Sort(via)
				t.Errorf("%s reaches %s (imported by %v)", pkg, dep, via)
			}
		}
	}

	deps := imports("./certs")
	if _, ok := deps["k8s.io/client-go/kubernetes"]; !ok {
		t.Fatal("./certs does not reach client-go: the check below would be vacuous")
	}
	for dep, direct := range deps {
		if dep == "plugin" || slices.Contains(direct, "plugin") {
			t.Errorf("./certs reaches package plugin through %s", dep)
		}
		if slices.Contains(direct, "os/exec") && !slices.Contains(execImporters, dep) {
			t.Errorf("./certs reaches os/exec through %s, which is not one of %v", dep, execImporters)
		}
	}
}

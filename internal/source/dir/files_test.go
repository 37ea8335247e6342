package dir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// writeFile writes content to dir/name, failing the test on error.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func serviceYAML(name string, port int) string {
	return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n  ports:\n  - port: " + strconv.Itoa(port) + "\n"
}

func TestListManifests(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.yaml", "a.yml", "c.json", "D.YAML", ".hidden.yaml", "notes.txt", "x.yaml~"} {
		writeFile(t, dir, name, "")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub.yaml"), "nested.yaml", "")
	other := t.TempDir()
	target := writeFile(t, other, "target.txt", "")
	if err := os.Symlink(target, filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "missing"), filepath.Join(dir, "dangling.yaml")); err != nil {
		t.Fatal(err)
	}

	got, err := ListManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		if filepath.Dir(p) != dir {
			t.Errorf("path %q is not in %q", p, dir)
		}
		names = append(names, filepath.Base(p))
	}
	want := []string{"D.YAML", "a.yml", "b.yaml", "c.json", "link.yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("ListManifests = %q, want %q", names, want)
	}

	if _, err := ListManifests(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: err = %v, want not-exist", err)
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	const (
		deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\n"
		oldIngress = "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: old, namespace: shop}\n"
		configMap  = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
	)
	a := writeFile(t, dir, "a.yaml", serviceYAML("web", 80)+"---\n"+serviceYAML("only-a", 81)+"---\n"+deployment)
	b := writeFile(t, dir, "b.yaml", oldIngress+"---\n"+serviceYAML("web", 90)+"---\n"+serviceYAML("only-b", 91)+"---\n"+deployment)
	bad := writeFile(t, dir, "bad.yaml", serviceYAML("fine", 1)+"---\n"+configMap+"---\nkind: [\n")
	missing := filepath.Join(dir, "missing.yaml")

	c := ReadFiles([]string{a, bad, b, missing, a})
	objs, errs := c.Objects, c.Errors

	// In file order, the Deployment repeated in b.yaml once, nothing from
	// the file that failed.
	if got, want := ignoredStrings(c.Ignored), []string{"apps/v1 Deployment shop/api", "networking.k8s.io/v1beta1 Ingress shop/old"}; !slices.Equal(got, want) {
		t.Errorf("ignored = %q, want %q", got, want)
	}
	if got, want := keys(objs), []string{"Service default/only-a", "Service default/only-b", "Service default/web"}; !slices.Equal(got, want) {
		t.Errorf("objects = %q, want %q", got, want)
	}
	for _, s := range objs.Services {
		if s.Name == "web" && s.Spec.Ports[0].Port != 80 {
			t.Errorf("web port = %d, want 80 from the file given first", s.Spec.Ports[0].Port)
		}
		if !s.CreationTimestamp.IsZero() {
			t.Errorf("%s creationTimestamp = %v, want zero for one-shot reads", s.Name, s.CreationTimestamp)
		}
	}

	var paths []string
	for _, e := range errs {
		paths = append(paths, e.Path)
		if !strings.HasPrefix(e.Error(), e.Path+": ") {
			t.Errorf("Error() = %q, want it to start with the path", e.Error())
		}
	}
	if want := []string{bad, b, missing}; !slices.Equal(paths, want) {
		t.Fatalf("error paths = %q, want %q (errors: %v)", paths, want, errs)
	}
	if !strings.Contains(errs[0].Err.Error(), "invalid YAML") {
		t.Errorf("bad file error = %v", errs[0].Err)
	}
	if msg := errs[1].Err.Error(); !strings.Contains(msg, "Service default/web") || !strings.Contains(msg, a) {
		t.Errorf("duplicate error = %q, want it to name the object and the winning file", msg)
	}
	if !errors.Is(errs[2], fs.ErrNotExist) {
		t.Errorf("missing file error = %v, want not-exist", errs[2])
	}
}

func TestReadFilesNothing(t *testing.T) {
	c := ReadFiles(nil)
	if c.Objects == nil || count(c.Objects) != 0 || c.Ignored != nil || c.Errors != nil {
		t.Errorf("ReadFiles(nil) = %+v, want empty non-nil objects and nothing else", c)
	}
}

func TestReadFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "big.yaml", strings.Repeat("#", 1025))
	if _, err := readFile(p, 1024); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("readFile over the cap: err = %v, want a size error", err)
	}
	if data, err := readFile(p, 1025); err != nil || len(data) != 1025 {
		t.Errorf("readFile at the cap: %d bytes, err = %v", len(data), err)
	}
}

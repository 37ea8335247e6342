package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the expected sections of the golden files")

// expected are the golden sections Build's result is compared with.
var expected = []string{"model.json", "problems.txt", "owned.txt"}

// testConfig is the Config golden cases run with unless config.yaml says
// otherwise.
var testConfig = Config{
	ControllerName: "torii.dev/ingress-controller",
	IngressClass:   "torii",
}

// goldenConfig is config.yaml: any field set overrides testConfig.
type goldenConfig struct {
	ControllerName           *string `json:"controllerName"`
	IngressClass             *string `json:"ingressClass"`
	WatchIngressWithoutClass *bool   `json:"watchIngressWithoutClass"`
}

// TestGolden runs every testdata/golden/*.txtar case: input.yaml (and an
// optional config.yaml) through Build, compared with the whole Result: the
// snapshot as model.json, the problems as problems.txt and the owned Ingresses
// as owned.txt. Run with -update to rewrite them, then review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			runGolden(t, file)
		})
	}
}

func runGolden(t *testing.T, file string) {
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sections := make(map[string]*txtar.File)
	for i := range ar.Files {
		f := &ar.Files[i]
		switch f.Name {
		case "config.yaml", "input.yaml", "model.json", "problems.txt", "owned.txt":
		default:
			t.Fatalf("unknown section %q", f.Name)
		}
		sections[f.Name] = f
	}

	cfg := testConfig
	if f := sections["config.yaml"]; f != nil {
		var gc goldenConfig
		if err := yaml.UnmarshalStrict(f.Data, &gc); err != nil {
			t.Fatalf("config.yaml: %v", err)
		}
		if gc.ControllerName != nil {
			cfg.ControllerName = *gc.ControllerName
		}
		if gc.IngressClass != nil {
			cfg.IngressClass = *gc.IngressClass
		}
		if gc.WatchIngressWithoutClass != nil {
			cfg.WatchIngressWithoutClass = *gc.WatchIngressWithoutClass
		}
	}
	in := sections["input.yaml"]
	if in == nil {
		t.Fatal("missing input.yaml")
	}
	objs, err := decodeObjects(in.Data, true)
	if err != nil {
		t.Fatalf("input.yaml: %v", err)
	}

	before := deepCopy(objs)
	res := Build(cfg, objs)
	if !reflect.DeepEqual(before, objs) {
		t.Error("Build modified its input")
	}
	if err := res.Snapshot.Validate(); err != nil {
		t.Errorf("Snapshot.Validate: %v", err)
	}
	if again := Build(cfg, reversed(objs)); !reflect.DeepEqual(res, again) {
		t.Error("Build depends on the order of its input")
	}

	got := map[string][]byte{
		"model.json":   modelJSON(t, res),
		"problems.txt": problemsText(res),
		"owned.txt":    ownedText(res),
	}
	if *update {
		for _, name := range expected {
			if f := sections[name]; f != nil {
				f.Data = got[name]
			} else {
				ar.Files = append(ar.Files, txtar.File{Name: name, Data: got[name]})
			}
		}
		if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, name := range expected {
		f := sections[name]
		if f == nil {
			t.Errorf("missing %s; run with -update", name)
			continue
		}
		if !bytes.Equal(f.Data, got[name]) {
			t.Errorf("%s differs; got:\n%s\nwant:\n%s", name, got[name], f.Data)
		}
	}
}

func modelJSON(t *testing.T, res Result) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Paths may hold '&', '<' and '>'; keep them readable.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res.Snapshot); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// problemsText renders one problem per line, prefixed by severity and
// reason so that the golden file pins them too.
func problemsText(res Result) []byte {
	var b bytes.Buffer
	for _, p := range res.Problems {
		b.WriteString(string(p.Severity) + " " + p.Reason + " " + p.String() + "\n")
	}
	return b.Bytes()
}

// ownedText renders Result.Owned one reference per line.
func ownedText(res Result) []byte {
	var b bytes.Buffer
	for _, r := range res.Owned {
		b.WriteString(r.String() + "\n")
	}
	return b.Bytes()
}

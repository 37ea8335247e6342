package translate

import (
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/tools/txtar"
)

// TestBackendEndpointsAgreesWithBuild recomputes every backend of every
// golden case through the endpoint lane and requires exactly Build's
// endpoints, or ok=false where Build could not resolve the backend cleanly.
func TestBackendEndpointsAgreesWithBuild(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("golden files: %v (%d)", err, len(files))
	}
	checked := 0
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range ar.Files {
			if f.Name != "input.yaml" {
				continue
			}
			objs, err := decodeObjects(f.Data, true)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			res := Build(testConfig, objs)
			for _, b := range res.Snapshot.Backends {
				eps, ok := BackendEndpoints(objs, b)
				switch {
				case b.ExternalName != "":
					if ok {
						t.Errorf("%s: %s is ExternalName but the lane took it", file, b.ID)
					}
				case ok && !reflect.DeepEqual(eps, b.Endpoints):
					t.Errorf("%s: %s: lane endpoints %v, Build %v", file, b.ID, eps, b.Endpoints)
				case !ok && len(b.Endpoints) > 0:
					t.Errorf("%s: %s: lane refused a backend Build resolved with endpoints", file, b.ID)
				}
				if ok {
					checked++
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d backends compared; the golden inputs no longer exercise the lane", checked)
	}
}

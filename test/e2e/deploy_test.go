package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/torii-dev/torii/test/e2e/harness"
)

// cfDeployDir is deploy/ seen from this package's directory.
const cfDeployDir = "../../deploy"

// TestDeployManifestsDryRun applies deploy/torii.yaml and the Helm
// renderings deploy/testdata/chart-*.yaml to a real API server with
// server-side dry-run: every object, whatever its kind, must pass the API
// server's defaulting, validation (strict field validation: no unknown or
// duplicate fields) and admission (including Pod Security, which the
// torii-system Namespace enforces at "restricted"), without a warning.
// Namespaces the files declare are created for real first, and so are the
// namespaces they only refer to (Helm's release namespace, watched
// namespaces), since a dry run into a missing namespace fails. Nothing else
// may be persisted.
func TestDeployManifestsDryRun(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	warnings := &cfWarnings{}
	cfg := c.RESTConfig()
	cfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := cfRESTMapper(t, cfg)

	files := []string{filepath.Join(cfDeployDir, "torii.yaml")} // first: it declares torii-system
	charts, err := filepath.Glob(filepath.Join(cfDeployDir, "testdata", "chart-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(charts) == 0 {
		t.Fatalf("no Helm renderings %s/testdata/chart-*.yaml", cfDeployDir)
	}
	slices.Sort(charts)
	files = append(files, charts...)

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			objs, err := cfReadObjects(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatalf("%s holds no objects", file)
			}
			d := &cfDryRun{t: t, ctx: ctx, dyn: dyn, cs: c.Client(), mapper: mapper, warnings: warnings}
			d.apply(objs)
			t.Logf("%s: %d objects accepted by server-side dry-run, %d rejected (%s)", filepath.Base(file), d.accepted, d.rejected, strings.Join(d.kinds, ", "))
		})
	}

	// The test proves something only if each check can fail: the dry run
	// must refuse unknown fields and invalid values, and the warnings of
	// admission (here Pod Security) must be caught.
	for _, tc := range []struct {
		name, doc string
		want      string // "invalid", "bad request" or "warning"
	}{
		{"unknown field", `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cf-bad"},
			"spec": {"ports": [{"port": 80}], "bogusField": true}}`, "bad request"},
		{"invalid value", `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cf-bad"},
			"spec": {"ports": [{"port": 0}]}}`, "invalid"},
		{"pod security violation", `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cf-bad"},
			"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}},
			"spec": {"containers": [{"name": "x", "image": "x"}]}}}}`, "warning"}, // no securityContext: not "restricted"
	} {
		t.Run("dry run catches "+tc.name, func(t *testing.T) {
			var obj unstructured.Unstructured
			if err := obj.UnmarshalJSON([]byte(tc.doc)); err != nil {
				t.Fatal(err)
			}
			obj.SetNamespace("torii-system")
			gvk := obj.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatal(err)
			}
			warnings.take()
			_, err = dyn.Resource(m.Resource).Namespace("torii-system").Create(ctx, &obj, metav1.CreateOptions{
				DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict,
			})
			w := warnings.take()
			switch tc.want {
			case "bad request":
				if !apierrors.IsBadRequest(err) {
					t.Fatalf("got %v, want BadRequest", err)
				}
			case "invalid":
				if !apierrors.IsInvalid(err) {
					t.Fatalf("got %v, want Invalid", err)
				}
			case "warning":
				if err != nil || len(w) == 0 {
					t.Fatalf("got error %v and warnings %q, want acceptance with a warning", err, w)
				}
			}
			t.Logf("caught as expected: error %v, warnings %q", err, w)
		})
	}
}

// cfDryRun applies one file's objects.
type cfDryRun struct {
	t        *testing.T
	ctx      context.Context
	dyn      dynamic.Interface
	cs       kubernetes.Interface
	mapper   meta.RESTMapper
	warnings *cfWarnings

	accepted, rejected int
	kinds              []string
}

// cfMapped is an object with its REST mapping.
type cfMapped struct {
	obj     *unstructured.Unstructured
	mapping *meta.RESTMapping
}

func (d *cfDryRun) apply(objs []*unstructured.Unstructured) {
	t := d.t
	var mapped []cfMapped
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		d.kinds = append(d.kinds, gvk.Kind+"/"+obj.GetName())
		m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			d.fail(obj, fmt.Errorf("no resource for %s in the API server's discovery: %w", gvk, err))
			continue
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace && obj.GetNamespace() == "" {
			// As kubectl would: the namespace of the current context.
			obj.SetNamespace(metav1.NamespaceDefault)
		}
		if m.Scope.Name() == meta.RESTScopeNameRoot && obj.GetNamespace() != "" {
			d.fail(obj, fmt.Errorf("cluster-scoped %s sets metadata.namespace %q", gvk.Kind, obj.GetNamespace()))
			continue
		}
		mapped = append(mapped, cfMapped{obj, m})
	}

	// 1. The Namespaces the file declares, for real.
	for _, m := range mapped {
		if m.mapping.GroupVersionKind.GroupKind() == corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind() {
			d.createNamespace(m)
		}
	}
	// 2. Namespaces the file only refers to must exist before anything
	// is put into them, as a user would have created them.
	var refs []string
	for _, m := range mapped {
		if ns := m.obj.GetNamespace(); ns != "" && !slices.Contains(refs, ns) {
			refs = append(refs, ns)
		}
	}
	for _, ns := range refs {
		_, err := d.dyn.Resource(corev1.SchemeGroupVersion.WithResource("namespaces")).Get(d.ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			t.Logf("namespace %s is referred to but not declared: creating it as its user would", ns)
			err = cfCreateNamespace(d.ctx, d.cs, ns)
		}
		if err != nil {
			t.Fatalf("namespace %s: %v", ns, err)
		}
	}
	// 3. Everything else, in file order, with server-side dry-run.
	var created []cfMapped
	for _, m := range mapped {
		if m.mapping.GroupVersionKind.Kind == "Namespace" && m.mapping.GroupVersionKind.Group == "" {
			continue
		}
		d.warnings.take()
		_, err := d.resource(m).Create(d.ctx, m.obj, metav1.CreateOptions{
			DryRun:          []string{metav1.DryRunAll},
			FieldValidation: metav1.FieldValidationStrict,
		})
		if err == nil {
			if w := d.warnings.take(); len(w) > 0 {
				err = fmt.Errorf("accepted with warnings: %s", strings.Join(w, "; "))
			}
		}
		if err != nil {
			d.fail(m.obj, err)
			continue
		}
		d.accepted++
		created = append(created, m)
	}
	// 4. A dry run persists nothing.
	for _, m := range created {
		_, err := d.resource(m).Get(d.ctx, m.obj.GetName(), metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s after its dry run: got %v, want NotFound (the dry run persisted it?)", cfObjectName(m.obj), err)
		}
	}
}

// createNamespace creates a declared Namespace for real, or, when an
// earlier file created it, validates this declaration with a dry-run
// update.
func (d *cfDryRun) createNamespace(m cfMapped) {
	res := d.resource(m)
	_, err := res.Create(d.ctx, m.obj, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	if apierrors.IsAlreadyExists(err) {
		var cur *unstructured.Unstructured
		if cur, err = res.Get(d.ctx, m.obj.GetName(), metav1.GetOptions{}); err == nil {
			upd := m.obj.DeepCopy()
			upd.SetResourceVersion(cur.GetResourceVersion())
			_, err = res.Update(d.ctx, upd, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict})
		}
	}
	if err != nil {
		d.fail(m.obj, err)
		return
	}
	d.accepted++
}

func (d *cfDryRun) resource(m cfMapped) dynamic.ResourceInterface {
	r := d.dyn.Resource(m.mapping.Resource)
	if m.mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.Namespace(m.obj.GetNamespace())
	}
	return r
}

func (d *cfDryRun) fail(obj *unstructured.Unstructured, err error) {
	d.t.Helper()
	d.rejected++
	d.t.Errorf("%s: %v", cfObjectName(obj), err)
}

// cfObjectName is "Kind namespace/name" or "Kind name".
func cfObjectName(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return obj.GetKind() + " " + ns + "/" + obj.GetName()
	}
	return obj.GetKind() + " " + obj.GetName()
}

// cfReadObjects decodes every object in a multi-document YAML file,
// skipping empty documents (comments only). A List is expanded.
func cfReadObjects(file string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
		}
		var m map[string]any
		if err := utilyaml.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetAPIVersion() == "" || obj.GetKind() == "" {
			return nil, fmt.Errorf("%s: document %d has no apiVersion or kind", file, doc)
		}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
			continue
		}
		out = append(out, obj)
	}
}

// cfRESTMapper maps kinds to resources from the API server's discovery.
func cfRESTMapper(t *testing.T, cfg *rest.Config) meta.RESTMapper {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return restmapper.NewDiscoveryRESTMapper(groups)
}

// cfWarnings collects the API server's warnings (client-go's
// rest.WarningHandler).
type cfWarnings struct {
	mu   sync.Mutex
	list []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *cfWarnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns and forgets the warnings collected so far.
func (w *cfWarnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/source/dir"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
	"github.com/torii-dev/torii/internal/webhook"
)

// fileList is a repeatable -f flag.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// reasonRemovedAPIVersion is the Reason of the problem reported for an
// Ingress of an API version clusters no longer serve.
const reasonRemovedAPIVersion = "RemovedAPIVersion"

// checkCommand validates manifests with the same translate code the
// controller runs.
//
// On stdout, one line per problem, sorted by object: a file that does not
// parse as "<path>: <error>", an invalid object as "<Kind>
// <namespace>/<name>: <message>", a warning as "<Kind> <namespace>/<name>:
// warning: <message>". An object is invalid exactly when the admission
// webhook would deny it (webhook.Verdicts decides for both); an Ingress of a
// removed API version (networking.k8s.io/v1beta1, extensions/v1beta1) is
// invalid too.
//
// On stderr, notes that explain what was not checked: the IngressClass
// assumed when the input does not define --ingress-class, each Ingress
// skipped because its class is not Torii's, and (in one line) the objects of
// kinds Torii does not use; then a summary when nothing is invalid.
//
// It exits 1 when a file does not parse or any object is invalid, 0
// otherwise, and 2 on a usage error.
func checkCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("torii check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var files fileList
	fs.Var(&files, "f", "manifest file to check (repeatable)")
	var cfg translate.Config
	fs.StringVar(&cfg.ControllerName, "controller-name", "torii.dev/ingress-controller", "IngressClass spec.controller value this controller owns")
	fs.StringVar(&cfg.IngressClass, "ingress-class", "torii", "IngressClass name (and legacy kubernetes.io/ingress.class value) this controller owns; assumed to exist when the input does not define it")
	fs.BoolVar(&cfg.WatchIngressWithoutClass, "watch-ingress-without-class", false, "also check Ingresses that name no class")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: torii check [flags] DIR | torii check [flags] -f FILE [-f FILE...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	paths := append([]string(nil), files...)
	for _, d := range fs.Args() {
		found, err := dir.ListManifests(d)
		if err != nil {
			fmt.Fprintf(stderr, "torii check: %v\n", err)
			return 2
		}
		paths = append(paths, found...)
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}

	in := dir.ReadFiles(paths)
	failed := len(in.Errors) > 0
	for _, e := range in.Errors {
		fmt.Fprintln(stdout, e.Error())
	}

	objs := in.Objects
	// App manifests rarely carry the cluster's IngressClass; without it no
	// Ingress naming the class would be owned and nothing would be checked.
	if assumeIngressClass(cfg, objs) {
		fmt.Fprintf(stderr, "torii check: no IngressClass %q in the input; assuming it is Torii's\n", cfg.IngressClass)
	}

	var lines []checkLine
	var ignored []string
	for _, ig := range in.Ignored {
		if p, ok := removedIngress(ig); ok {
			lines = append(lines, checkLine{ref: p.Object, text: p.String(), invalid: true})
			continue
		}
		ignored = append(ignored, ig.String())
	}

	res := translate.Build(cfg, objs)
	skipped := skippedIngresses(objs.Ingresses, res.Owned)
	for _, s := range skipped {
		fmt.Fprintln(stderr, s)
	}
	if len(ignored) > 0 {
		fmt.Fprintf(stderr, "torii check: ignored %d object(s) of kinds Torii does not use: %s\n", len(ignored), strings.Join(ignored, ", "))
	}

	// The admission webhook's verdicts: an Ingress it would deny is
	// invalid here, and its warnings are warnings here.
	for _, v := range webhook.Verdicts(res) {
		for _, p := range v.Denials {
			lines = append(lines, checkLine{ref: p.Object, text: p.String(), invalid: true})
		}
		for _, p := range v.Warnings {
			lines = append(lines, checkLine{ref: p.Object, text: p.Object.String() + ": warning: " + p.Message})
		}
	}
	// By object; within one, the invalid findings first, each kind in the
	// translator's (message) order.
	slices.SortStableFunc(lines, func(a, b checkLine) int {
		return cmp.Or(cmp.Compare(a.ref.Kind, b.ref.Kind), cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Name, b.ref.Name))
	})
	for _, l := range lines {
		failed = failed || l.invalid
		fmt.Fprintln(stdout, l.text)
	}
	if failed {
		return 1
	}
	fmt.Fprintf(stderr, "torii check: %d file(s), %d Ingress(es) checked, %d skipped, no invalid objects\n",
		len(paths), len(res.Owned), len(skipped))
	return 0
}

// checkLine is one line of `torii check` output about an object.
type checkLine struct {
	ref  model.ObjectRef
	text string
	// invalid marks what the admission webhook would deny.
	invalid bool
}

// assumeIngressClass adds to objs, when it holds no IngressClass named
// cfg.IngressClass, one of that name whose controller is
// cfg.ControllerName, as the cluster Torii runs in would have. It reports
// whether it did.
func assumeIngressClass(cfg translate.Config, objs *store.Objects) bool {
	if cfg.IngressClass == "" || cfg.ControllerName == "" {
		return false
	}
	for _, c := range objs.IngressClasses {
		if c.Name == cfg.IngressClass {
			return false
		}
	}
	objs.IngressClasses = append(objs.IngressClasses, &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.IngressClass},
		Spec:       networkingv1.IngressClassSpec{Controller: cfg.ControllerName},
	})
	return true
}

// removedIngress returns the problem of an Ingress of an API version that
// Kubernetes 1.22 stopped serving, which a cluster would refuse outright.
func removedIngress(ig dir.Ignored) (translate.Problem, bool) {
	if ig.Kind != "Ingress" || (ig.APIVersion != "networking.k8s.io/v1beta1" && ig.APIVersion != "extensions/v1beta1") {
		return translate.Problem{}, false
	}
	// Named as a served Ingress would be: the namespace defaulted.
	ref := model.ObjectRef{Kind: "Ingress", Namespace: cmp.Or(ig.Namespace, metav1.NamespaceDefault), Name: cmp.Or(ig.Name, "(unnamed)")}
	return translate.Problem{
		Object:   ref,
		Severity: translate.SeverityError,
		Reason:   reasonRemovedAPIVersion,
		Message:  "apiVersion " + ig.APIVersion + " is no longer served; use " + networkingv1.SchemeGroupVersion.String(),
	}, true
}

// skippedIngresses returns, sorted by namespace/name, a line for each of
// ingresses that the translator did not own (and so did not check),
// stating the class that made it so. Ownership itself is the translator's
// decision; this only explains it.
func skippedIngresses(ingresses []*networkingv1.Ingress, owned []model.ObjectRef) []string {
	isOwned := make(map[model.ObjectRef]bool, len(owned))
	for _, r := range owned {
		isOwned[r] = true
	}
	var out []string
	for _, ing := range ingresses {
		ref := model.ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name}
		if isOwned[ref] {
			continue
		}
		// The same precedence as the translator: the field, then the
		// legacy annotation; empty counts as unset.
		class := ""
		if n := ing.Spec.IngressClassName; n != nil {
			class = *n
		}
		if class == "" {
			class = ing.Annotations["kubernetes.io/ingress.class"]
		}
		reason := fmt.Sprintf("class %q is not Torii's", class)
		if class == "" {
			reason = "it names no class and no IngressClass of Torii's is the default (see --watch-ingress-without-class)"
		}
		out = append(out, "skipped "+ref.String()+": "+reason)
	}
	return out
}

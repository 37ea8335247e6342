// Package deploy holds Torii's Kubernetes manifests (torii.yaml) and Helm
// chart (chart/torii). Its tests decode every object with the Kubernetes
// decoders, in strict mode, and check the properties the deployment promises:
// non-root, read-only root filesystem, probes, shutdown budget, and RBAC that
// writes only Ingress status, Events and the leader-election Lease.
//
// testdata/chart-*.yaml are Helm renderings of the chart, kept current by
// hack/helm-template.sh --check; the chart's default rendering must equal
// torii.yaml object for object.
//
// Server-side dry-run against a real API server belongs to the e2e suite.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const (
	manifestFile    = "torii.yaml"
	chartDir        = "chart/torii"
	chartDefault    = "testdata/chart-default.yaml"
	chartWatchNS    = "testdata/chart-watch-namespaces.yaml"
	imageRepository = "ghcr.io/torii-dev/torii"
	nonRootUID      = 65532
)

// strict fails on unknown and duplicate fields, so a misspelt
// readOnlyRootFileSystem cannot silently disappear.
var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// install is one decoded installation.
type install struct {
	file string
	objs []runtime.Object

	namespaces          []*corev1.Namespace
	serviceAccounts     []*corev1.ServiceAccount
	services            []*corev1.Service
	deployments         []*appsv1.Deployment
	pdbs                []*policyv1.PodDisruptionBudget
	ingressClasses      []*networkingv1.IngressClass
	clusterRoles        []*rbacv1.ClusterRole
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
	roles               []*rbacv1.Role
	roleBindings        []*rbacv1.RoleBinding
}

func load(t *testing.T, file string) *install {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	in := &install{file: file}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		if probe == nil {
			continue // only comments
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		in.objs = append(in.objs, obj)
		switch o := obj.(type) {
		case *corev1.Namespace:
			in.namespaces = append(in.namespaces, o)
		case *corev1.ServiceAccount:
			in.serviceAccounts = append(in.serviceAccounts, o)
		case *corev1.Service:
			in.services = append(in.services, o)
		case *appsv1.Deployment:
			in.deployments = append(in.deployments, o)
		case *policyv1.PodDisruptionBudget:
			in.pdbs = append(in.pdbs, o)
		case *networkingv1.IngressClass:
			in.ingressClasses = append(in.ingressClasses, o)
		case *rbacv1.ClusterRole:
			in.clusterRoles = append(in.clusterRoles, o)
		case *rbacv1.ClusterRoleBinding:
			in.clusterRoleBindings = append(in.clusterRoleBindings, o)
		case *rbacv1.Role:
			in.roles = append(in.roles, o)
		case *rbacv1.RoleBinding:
			in.roleBindings = append(in.roleBindings, o)
		default:
			t.Fatalf("%s: document %d: unexpected %s", file, i, gvk)
		}
	}
	return in
}

// key names an object: Kind namespace/name.
func key(obj runtime.Object) string {
	o, ok := obj.(interface {
		GetNamespace() string
		GetName() string
	})
	if !ok {
		return fmt.Sprintf("%T", obj)
	}
	kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*")
	if o.GetNamespace() == "" {
		return kind + " " + o.GetName()
	}
	return kind + " " + o.GetNamespace() + "/" + o.GetName()
}

func TestManifests(t *testing.T) {
	in := load(t, manifestFile)

	// Apply order: kubectl apply creates in file order, so the namespace and
	// the identity come before what uses them.
	var order []string
	for _, o := range in.objs {
		order = append(order, key(o))
	}
	want := []string{
		"v1.Namespace torii-system",
		"v1.ServiceAccount torii-system/torii",
		"v1.ClusterRole torii",
		"v1.ClusterRoleBinding torii",
		"v1.Role torii-system/torii",
		"v1.RoleBinding torii-system/torii",
		"v1.IngressClass torii",
		"v1.Service torii-system/torii",
		"v1.Deployment torii-system/torii",
		"v1.PodDisruptionBudget torii-system/torii",
	}
	if !slices.Equal(order, want) {
		t.Errorf("objects\n got %q\nwant %q", order, want)
	}

	ns := in.namespaces[0]
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace %s: pod-security enforce = %q, want restricted", ns.Name, got)
	}
	for _, o := range in.objs[1:] {
		if m, ok := o.(interface{ GetNamespace() string }); ok && m.GetNamespace() != "" && m.GetNamespace() != ns.Name {
			t.Errorf("%s: not in namespace %s", key(o), ns.Name)
		}
	}
	checkInstall(t, in, nil)
}

func TestChartDefaultMatchesManifests(t *testing.T) {
	plain := load(t, manifestFile)
	chart := load(t, chartDefault)
	checkInstall(t, chart, nil)

	rendered := map[string]runtime.Object{}
	for _, o := range chart.objs {
		stripHelmLabels(o)
		rendered[key(o)] = o
	}
	for _, o := range plain.objs {
		k := key(o)
		if _, ok := o.(*corev1.Namespace); ok {
			continue // helm install --create-namespace, or created beforehand
		}
		r, ok := rendered[k]
		if !ok {
			t.Errorf("%s: in %s, not rendered by the chart", k, manifestFile)
			continue
		}
		delete(rendered, k)
		if !equality.Semantic.DeepEqual(o, r) {
			a, _ := yaml.Marshal(o)
			b, _ := yaml.Marshal(r)
			t.Errorf("%s differs\n--- %s\n%s\n--- %s\n%s", k, manifestFile, a, chartDefault, b)
		}
	}
	for k := range rendered {
		t.Errorf("%s: rendered by the chart, not in %s", k, manifestFile)
	}
}

// stripHelmLabels removes the labels only Helm adds.
func stripHelmLabels(obj runtime.Object) {
	m, ok := obj.(interface {
		GetLabels() map[string]string
	})
	if !ok {
		return
	}
	for _, l := range []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"} {
		delete(m.GetLabels(), l)
	}
}

func TestChartWatchNamespaces(t *testing.T) {
	in := load(t, chartWatchNS)
	watched := []string{"team-a", "team-b"}
	checkInstall(t, in, watched)

	args := in.deployments[0].Spec.Template.Spec.Containers[0].Args
	for _, ns := range watched {
		if !slices.Contains(args, "--watch-namespace="+ns) {
			t.Errorf("args %q: no --watch-namespace=%s", args, ns)
		}
	}
	// Namespaced mode grants nothing namespaced cluster-wide: in particular
	// no Secret outside the watched namespaces is readable.
	for _, cr := range in.clusterRoles {
		for _, r := range cr.Rules {
			for _, res := range r.Resources {
				if res != "ingressclasses" && res != "nodes" {
					t.Errorf("ClusterRole %s: grants %v on %q cluster-wide with watchNamespaces set", cr.Name, r.Verbs, res)
				}
			}
		}
	}
	if len(in.ingressClasses) != 1 || in.ingressClasses[0].Annotations[networkingv1.AnnotationIsDefaultIngressClass] != "true" {
		t.Errorf("ingressClass.default: the IngressClass is not marked default")
	}
	svc := in.services[0]
	if svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass != "service.k8s.aws/nlb" {
		t.Errorf("Service: loadBalancerClass = %v", svc.Spec.LoadBalancerClass)
	}
}

// TestImageVersion keeps the image tag of torii.yaml on the chart's
// appVersion, and the Dockerfile's user on the pods' runAsUser.
func TestImageVersion(t *testing.T) {
	data, err := os.ReadFile(chartDir + "/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		APIVersion string `json:"apiVersion"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.APIVersion != "v2" || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml: apiVersion %q, appVersion %q", chart.APIVersion, chart.AppVersion)
	}
	want := imageRepository + ":" + chart.AppVersion
	for _, file := range []string{manifestFile, chartDefault} {
		in := load(t, file)
		for _, c := range in.deployments[0].Spec.Template.Spec.Containers {
			if c.Image != want {
				t.Errorf("%s: container %s: image %q, want %q", file, c.Name, c.Image, want)
			}
		}
	}

	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^FROM gcr\.io/distroless/static-debian12:nonroot\b`,
		fmt.Sprintf(`(?m)^USER %d:%d$`, nonRootUID, nonRootUID),
		`(?m)^ENTRYPOINT \["/torii"\]$`,
		`CGO_ENABLED=0`,
		`-trimpath`,
		`-X main\.version=`,
	} {
		if !regexp.MustCompile(re).Match(dockerfile) {
			t.Errorf("Dockerfile: no match for %s", re)
		}
	}
}

// checkInstall checks the promises of one installation. watched lists the
// namespaces of --watch-namespace; nil means cluster-wide.
func checkInstall(t *testing.T, in *install, watched []string) {
	t.Helper()
	if len(in.deployments) != 1 || len(in.services) != 1 || len(in.serviceAccounts) != 1 ||
		len(in.ingressClasses) != 1 || len(in.pdbs) != 1 {
		t.Fatalf("%s: want one Deployment, Service, ServiceAccount, IngressClass, PodDisruptionBudget; got %d, %d, %d, %d, %d",
			in.file, len(in.deployments), len(in.services), len(in.serviceAccounts), len(in.ingressClasses), len(in.pdbs))
	}
	d := in.deployments[0]
	checkDeployment(t, in, d)
	checkService(t, in, d)
	checkRBAC(t, in, d, watched)

	pdb := in.pdbs[0]
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) || pdb.Spec.MinAvailable != nil {
		t.Errorf("%s: PodDisruptionBudget: want maxUnavailable 1 only", in.file)
	}
	if !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) || len(pdb.Spec.Selector.MatchExpressions) > 0 {
		t.Errorf("%s: PodDisruptionBudget selector %v does not select the pods %v", in.file, pdb.Spec.Selector, d.Spec.Template.Labels)
	}

	sa := in.serviceAccounts[0]
	if sa.Name != d.Spec.Template.Spec.ServiceAccountName || sa.Namespace != d.Namespace {
		t.Errorf("%s: ServiceAccount %s/%s is not the pods' (%s)", in.file, sa.Namespace, sa.Name, d.Spec.Template.Spec.ServiceAccountName)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("%s: ServiceAccount: automountServiceAccountToken should be false (the pod opts in)", in.file)
	}
}

func checkDeployment(t *testing.T, in *install, d *appsv1.Deployment) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: Deployment %s: %s", in.file, d.Name, fmt.Sprintf(format, args...))
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		errorf("want at least 2 replicas")
	}
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		errorf("selector does not select its own pods")
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		errorf("rolling update must keep every replica serving (maxUnavailable 0)")
	}
	pod := d.Spec.Template.Spec
	if len(pod.TopologySpreadConstraints) == 0 && pod.Affinity == nil {
		errorf("no topology spread: both replicas may land on one node")
	}

	// Pod security: everything the "restricted" Pod Security Standard asks.
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		errorf("uses host namespaces")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			errorf("hostPath volume %s", v.Name)
		}
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		errorf("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != nonRootUID {
		errorf("pod securityContext.runAsUser is not %d", nonRootUID)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		errorf("pod seccompProfile is not RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		errorf("the pod needs its service account token for the API server")
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) > 0 {
		errorf("want exactly one container")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		errorf("container %s: no securityContext", c.Name)
	default:
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			errorf("container %s: privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			errorf("container %s: capabilities must drop ALL and add none", c.Name)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 || sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
			errorf("container %s: overrides the pod's non-root user", c.Name)
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			errorf("container %s: overrides the pod's seccomp profile", c.Name)
		}
	}

	// Ports, and the listener flags that must agree with them.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	wantPorts := map[string]int32{"http": 8080, "https": 8443, "admin": 10254}
	if !maps.Equal(ports, wantPorts) {
		errorf("container ports %v, want %v", ports, wantPorts)
	}
	flags := parseFlags(c.Args[min(1, len(c.Args)):])
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		errorf("args %q do not start with serve", c.Args)
	}
	for flag, port := range map[string]string{"http-addr": "http", "https-addr": "https", "admin-addr": "admin"} {
		if v, ok := flags[flag]; ok && v != fmt.Sprintf(":%d", ports[port]) {
			errorf("--%s=%s, but container port %s is %d", flag, v, port, ports[port])
		}
	}
	for _, f := range []string{"kubeconfig", "manifests"} {
		if _, ok := flags[f]; ok {
			errorf("--%s must not be used in a cluster", f)
		}
	}
	if flags["election-id"] == "" {
		errorf("no --election-id: every replica would write status")
	}
	if got, want := flags["controller-name"], in.ingressClasses[0].Spec.Controller; got != want {
		errorf("--controller-name=%q, IngressClass controller %q", got, want)
	}
	if got, want := flags["ingress-class"], in.ingressClasses[0].Name; got != want {
		errorf("--ingress-class=%q, IngressClass %q", got, want)
	}
	if ps := flags["publish-service"]; ps != "" && ps != in.services[0].Namespace+"/"+in.services[0].Name {
		errorf("--publish-service=%s is not the Service %s/%s", ps, in.services[0].Namespace, in.services[0].Name)
	}

	// Downward API for leader election.
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["POD_NAME"] != "metadata.name" || env["POD_NAMESPACE"] != "metadata.namespace" {
		errorf("POD_NAME/POD_NAMESPACE not from the downward API: %v", env)
	}

	// Probes on the admin port.
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			errorf("no HTTP %s probe", p.name)
			continue
		}
		g := p.probe.HTTPGet
		port := g.Port.IntVal
		if g.Port.Type == intstr.String {
			port = ports[g.Port.StrVal]
		}
		if g.Path != p.path || port != wantPorts["admin"] {
			errorf("%s probe on %s port %s, want %s on the admin port", p.name, g.Path, g.Port.String(), p.path)
		}
	}

	// Resources: requests for scheduling, a memory limit against leaks.
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		errorf("want cpu and memory requests and a memory limit, got %v", c.Resources)
	}

	// The kubelet must not SIGKILL a pod that is still draining.
	grace, drain := 5*time.Second, 20*time.Second
	for name, dst := range map[string]*time.Duration{"shutdown-grace-period": &grace, "drain-timeout": &drain} {
		if v, ok := flags[name]; ok {
			var err error
			if *dst, err = time.ParseDuration(v); err != nil {
				errorf("--%s=%s: %v", name, v, err)
			}
		}
	}
	const margin = 10 * time.Second
	if pod.TerminationGracePeriodSeconds == nil ||
		time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second < grace+drain+margin {
		errorf("terminationGracePeriodSeconds must cover --shutdown-grace-period %v + --drain-timeout %v + %v", grace, drain, margin)
	}
}

func checkService(t *testing.T, in *install, d *appsv1.Deployment) {
	t.Helper()
	s := in.services[0]
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: Service %s: %s", in.file, s.Name, fmt.Sprintf(format, args...))
	}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		errorf("type %s, want LoadBalancer", s.Spec.Type)
	}
	if s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		errorf("externalTrafficPolicy %q, want Local", s.Spec.ExternalTrafficPolicy)
	}
	if s.Namespace != d.Namespace || !selects(s.Spec.Selector, d.Spec.Template.Labels) {
		errorf("does not select the Deployment's pods")
	}
	got := map[int32]string{}
	for _, p := range s.Spec.Ports {
		got[p.Port] = p.TargetPort.String()
	}
	if want := map[int32]string{80: "http", 443: "https"}; !maps.Equal(got, want) {
		errorf("ports %v, want %v (and never the admin port)", got, want)
	}
}

// rbacRule is one allowed (group, resource) and its verbs.
type rbacRule struct{ group, resource string }

// allowedVerbs is everything Torii may do. Writes: Ingress status, Events
// and the Lease; nothing else. Secrets have no get: informers list and watch.
var allowedVerbs = map[rbacRule][]string{
	{"networking.k8s.io", "ingressclasses"}:   {"get", "list", "watch"},
	{"networking.k8s.io", "ingresses"}:        {"get", "list", "watch"},
	{"networking.k8s.io", "ingresses/status"}: {"update", "patch"},
	{"", "services"}:                          {"get", "list", "watch"},
	{"", "secrets"}:                           {"list", "watch"},
	{"discovery.k8s.io", "endpointslices"}:    {"get", "list", "watch"},
	{"", "nodes"}:                             {"get", "list", "watch"},
	{"", "pods"}:                              {"get", "list", "watch"},
	{"events.k8s.io", "events"}:               {"create", "patch"},
	{"", "events"}:                            {"create", "patch"},
	{"coordination.k8s.io", "leases"}:         {"get", "create", "update"},
}

// needed is what the controller cannot run without, per scope.
var (
	neededClusterScoped = map[rbacRule][]string{
		{"networking.k8s.io", "ingressclasses"}: {"list", "watch"},
		{"", "nodes"}:                           {"get", "list", "watch"},
	}
	neededPerNamespace = map[rbacRule][]string{
		{"networking.k8s.io", "ingresses"}:        {"list", "watch"},
		{"networking.k8s.io", "ingresses/status"}: {"update", "patch"},
		{"", "services"}:                          {"list", "watch"},
		{"", "secrets"}:                           {"list", "watch"},
		{"discovery.k8s.io", "endpointslices"}:    {"list", "watch"},
		{"events.k8s.io", "events"}:               {"create", "patch"},
	}
	neededOwnNamespace = map[rbacRule][]string{
		{"coordination.k8s.io", "leases"}: {"get", "create", "update"},
		{"", "pods"}:                      {"get", "list", "watch"},
		{"", "services"}:                  {"get", "list", "watch"}, // --publish-service
	}
)

func checkRBAC(t *testing.T, in *install, d *appsv1.Deployment, watched []string) {
	t.Helper()
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: d.Namespace}
	electionID := parseFlags(d.Spec.Template.Spec.Containers[0].Args)["election-id"]

	checkRules := func(where string, rules []rbacv1.PolicyRule, namespaced bool) {
		t.Helper()
		for _, r := range rules {
			if len(r.NonResourceURLs) > 0 {
				t.Errorf("%s: %s: non-resource URLs %v", in.file, where, r.NonResourceURLs)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					allowed, ok := allowedVerbs[rbacRule{g, res}]
					if !ok {
						t.Errorf("%s: %s: access to %q in group %q is not needed", in.file, where, res, g)
						continue
					}
					for _, v := range r.Verbs {
						if !slices.Contains(allowed, v) {
							t.Errorf("%s: %s: verb %q on %q is not allowed (only %v)", in.file, where, v, res, allowed)
						}
					}
					if res == "leases" || res == "pods" {
						if !namespaced || where != "Role "+d.Namespace+"/"+roleName(in, d) {
							t.Errorf("%s: %s: %s only in Torii's own namespace", in.file, where, res)
						}
					}
					if res == "leases" && slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "create" }) &&
						!slices.Equal(r.ResourceNames, []string{electionID}) {
						t.Errorf("%s: %s: lease %v not limited to the election lease %q", in.file, where, r.Verbs, electionID)
					}
				}
			}
		}
	}
	for _, cr := range in.clusterRoles {
		checkRules("ClusterRole "+cr.Name, cr.Rules, false)
		if cr.AggregationRule != nil {
			t.Errorf("%s: ClusterRole %s: aggregation would grant unknown rules", in.file, cr.Name)
		}
	}
	for _, r := range in.roles {
		checkRules("Role "+r.Namespace+"/"+r.Name, r.Rules, true)
	}

	// Bindings bind only Torii's account, only to the roles defined here.
	boundCluster := map[string]bool{}
	boundNS := map[string]bool{} // "ns/role"
	for _, b := range in.clusterRoleBindings {
		if !slices.Equal(b.Subjects, []rbacv1.Subject{sa}) {
			t.Errorf("%s: ClusterRoleBinding %s: subjects %v, want only %v", in.file, b.Name, b.Subjects, sa)
		}
		if b.RoleRef.Kind != "ClusterRole" || findClusterRole(in, b.RoleRef.Name) == nil {
			t.Errorf("%s: ClusterRoleBinding %s: binds %s %s, not defined here", in.file, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		boundCluster[b.RoleRef.Name] = true
	}
	for _, b := range in.roleBindings {
		if !slices.Equal(b.Subjects, []rbacv1.Subject{sa}) {
			t.Errorf("%s: RoleBinding %s/%s: subjects %v, want only %v", in.file, b.Namespace, b.Name, b.Subjects, sa)
		}
		if b.RoleRef.Kind != "Role" || findRole(in, b.Namespace, b.RoleRef.Name) == nil {
			t.Errorf("%s: RoleBinding %s/%s: binds %s %s, not a Role defined here", in.file, b.Namespace, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		boundNS[b.Namespace+"/"+b.RoleRef.Name] = true
	}

	// Effective permissions: what the controller needs, where it needs it.
	can := func(ns string, rr rbacRule, verb string) bool {
		grants := func(rules []rbacv1.PolicyRule) bool {
			return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.APIGroups, rr.group) && slices.Contains(r.Resources, rr.resource) &&
					slices.Contains(r.Verbs, verb) &&
					(len(r.ResourceNames) == 0 || rr.resource == "leases" && slices.Contains(r.ResourceNames, electionID))
			})
		}
		for _, cr := range in.clusterRoles {
			if boundCluster[cr.Name] && grants(cr.Rules) {
				return true
			}
		}
		for _, r := range in.roles {
			if ns != "" && r.Namespace == ns && boundNS[r.Namespace+"/"+r.Name] && grants(r.Rules) {
				return true
			}
		}
		return false
	}
	need := func(ns string, m map[rbacRule][]string) {
		t.Helper()
		for rr, verbs := range m {
			for _, v := range verbs {
				if !can(ns, rr, v) {
					t.Errorf("%s: service account %s/%s cannot %s %q (group %q) in %q", in.file, sa.Namespace, sa.Name, v, rr.resource, rr.group, ns)
				}
			}
		}
	}
	need("", neededClusterScoped)
	need(d.Namespace, neededOwnNamespace)
	if watched == nil {
		need("", neededPerNamespace) // "": granted cluster-wide
	}
	for _, ns := range watched {
		need(ns, neededPerNamespace)
	}
}

func roleName(in *install, d *appsv1.Deployment) string {
	for _, b := range in.roleBindings {
		if b.Namespace == d.Namespace {
			return b.RoleRef.Name
		}
	}
	return ""
}

func findClusterRole(in *install, name string) *rbacv1.ClusterRole {
	for _, r := range in.clusterRoles {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func findRole(in *install, ns, name string) *rbacv1.Role {
	for _, r := range in.roles {
		if r.Namespace == ns && r.Name == name {
			return r
		}
	}
	return nil
}

// parseFlags reads --name=value and --name arguments.
func parseFlags(args []string) map[string]string {
	flags := map[string]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		flags[name] = value
	}
	return flags
}

// selects reports whether selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

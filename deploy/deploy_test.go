// Package deploy holds Torii's Kubernetes manifests (torii.yaml) and Helm
// chart (chart/torii). Its tests decode every object with the Kubernetes
// decoders, in strict mode, and check the properties the deployment promises:
// non-root, read-only root filesystem, probes, shutdown budget, RBAC that
// writes only Ingress status, Events, the leader-election Lease and (for the
// admission webhook's certificate) one Secret and one
// ValidatingWebhookConfiguration, and a webhook that sees only Ingress
// creates and updates.
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

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	chartWebhookCM  = "testdata/chart-webhook-cert-manager.yaml"
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
	webhookConfigs      []*admissionregistrationv1.ValidatingWebhookConfiguration
	networkPolicies     []*networkingv1.NetworkPolicy
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
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			in.webhookConfigs = append(in.webhookConfigs, o)
		case *networkingv1.NetworkPolicy:
			in.networkPolicies = append(in.networkPolicies, o)
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
		"v1.Service torii-system/torii-webhook",
		"v1.Deployment torii-system/torii",
		"v1.PodDisruptionBudget torii-system/torii",
		// Last: it refuses Ingress writes until Torii answers.
		"v1.ValidatingWebhookConfiguration torii",
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
				if res != "ingressclasses" && res != "nodes" && res != "validatingwebhookconfigurations" {
					t.Errorf("ClusterRole %s: grants %v on %q cluster-wide with watchNamespaces set", cr.Name, r.Verbs, res)
				}
			}
		}
	}
	if len(in.ingressClasses) != 1 || in.ingressClasses[0].Annotations[networkingv1.AnnotationIsDefaultIngressClass] != "true" {
		t.Errorf("ingressClass.default: the IngressClass is not marked default")
	}
	svc := controllerService(in, in.deployments[0])
	if svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass != "service.k8s.aws/nlb" {
		t.Errorf("Service: loadBalancerClass = %v", svc.Spec.LoadBalancerClass)
	}
	// The webhook judges only the watched namespaces.
	sel := in.webhookConfigs[0].Webhooks[0].NamespaceSelector
	want := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: watched,
	}}}
	if !equality.Semantic.DeepEqual(sel, want) {
		t.Errorf("webhook namespaceSelector %v, want %v", sel, want)
	}
}

// TestChartWebhookCertManager renders the webhook with a certificate
// managed elsewhere: it is mounted and read from files, and Torii gets no
// access to Secrets or to the webhook configuration.
func TestChartWebhookCertManager(t *testing.T) {
	in := load(t, chartWebhookCM)
	checkInstall(t, in, nil)
	d := in.deployments[0]
	flags := parseFlags(d.Spec.Template.Spec.Containers[0].Args)
	for _, f := range []string{"webhook-cert-secret", "webhook-config-name", "webhook-service"} {
		if _, ok := flags[f]; ok {
			t.Errorf("--%s with a certificate managed elsewhere", f)
		}
	}
	vwc := in.webhookConfigs[0]
	if vwc.Annotations["cert-manager.io/inject-ca-from"] != "torii-system/torii-webhook" {
		t.Errorf("annotations %v: no CA injection", vwc.Annotations)
	}
	wh := vwc.Webhooks[0]
	if *wh.FailurePolicy != admissionregistrationv1.Ignore {
		t.Errorf("failurePolicy %s, want the value's Ignore", *wh.FailurePolicy)
	}
	if !equality.Semantic.DeepEqual(wh.NamespaceSelector, &metav1.LabelSelector{MatchLabels: map[string]string{"torii.dev/validate": "true"}}) {
		t.Errorf("namespaceSelector %v", wh.NamespaceSelector)
	}
	vols := d.Spec.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].Secret == nil || vols[0].Secret.SecretName != "torii-webhook-tls" {
		t.Errorf("volumes %v, want the Secret torii-webhook-tls", vols)
	}
}

// TestChartWebhookNetworkPolicy: webhook.networkPolicy (rendered with the
// cert-manager values) lets only the given CIDRs reach the webhook port,
// and keeps every other port of Torii's pods open to all, as without a
// policy. By default no NetworkPolicy is rendered.
func TestChartWebhookNetworkPolicy(t *testing.T) {
	for _, file := range []string{manifestFile, chartDefault, chartWatchNS} {
		if n := len(load(t, file).networkPolicies); n != 0 {
			t.Errorf("%s: %d NetworkPolicies, want none by default", file, n)
		}
	}
	in := load(t, chartWebhookCM)
	if len(in.networkPolicies) != 1 {
		t.Fatalf("%s: %d NetworkPolicies, want 1", in.file, len(in.networkPolicies))
	}
	np, d := in.networkPolicies[0], in.deployments[0]
	if np.Namespace != d.Namespace || !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) || len(np.Spec.PodSelector.MatchExpressions) > 0 {
		t.Errorf("podSelector %v in %s: want Torii's pods", np.Spec.PodSelector, np.Namespace)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Egress) > 0 {
		t.Errorf("policyTypes %v: want Ingress only", np.Spec.PolicyTypes)
	}
	// Which sources each container port is open to: "*" for all.
	open := map[string][]string{}
	for _, r := range np.Spec.Ingress {
		var from []string
		for _, peer := range r.From {
			if peer.IPBlock == nil || len(peer.IPBlock.Except) > 0 || peer.PodSelector != nil || peer.NamespaceSelector != nil {
				t.Errorf("peer %+v: want plain ipBlocks", peer)
				continue
			}
			from = append(from, peer.IPBlock.CIDR)
		}
		if len(r.From) == 0 {
			from = []string{"*"}
		}
		if len(r.Ports) == 0 {
			t.Errorf("a rule for every port: %+v", r)
		}
		for _, p := range r.Ports {
			if p.Port == nil || p.Port.Type != intstr.String || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || p.EndPort != nil {
				t.Errorf("port %+v: want a named TCP container port", p)
				continue
			}
			open[p.Port.StrVal] = append(open[p.Port.StrVal], from...)
		}
	}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		want := []string{"*"}
		if p.Name == "webhook" {
			want = []string{"10.0.0.0/24", "fd00:10::/64"}
		}
		if !slices.Equal(open[p.Name], want) {
			t.Errorf("port %s open to %q, want %q", p.Name, open[p.Name], want)
		}
		delete(open, p.Name)
	}
	for name := range open {
		t.Errorf("the policy names port %s, which the container does not have", name)
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
	if len(in.deployments) != 1 || len(in.serviceAccounts) != 1 || len(in.ingressClasses) != 1 || len(in.pdbs) != 1 {
		t.Fatalf("%s: want one Deployment, ServiceAccount, IngressClass, PodDisruptionBudget; got %d, %d, %d, %d",
			in.file, len(in.deployments), len(in.serviceAccounts), len(in.ingressClasses), len(in.pdbs))
	}
	d := in.deployments[0]
	wh := webhookOf(d)
	if want := 1 + min(len(in.webhookConfigs), 1); len(in.services) != want {
		t.Fatalf("%s: %d Services, want %d", in.file, len(in.services), want)
	}
	checkDeployment(t, in, d)
	checkService(t, in, d)
	checkWebhook(t, in, d, wh)
	checkRBAC(t, in, d, watched, wh)

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
	if _, ok := parseFlags(c.Args)["webhook-addr"]; ok {
		wantPorts["webhook"] = 9443
	}
	if !maps.Equal(ports, wantPorts) {
		errorf("container ports %v, want %v", ports, wantPorts)
	}
	flags := parseFlags(c.Args[min(1, len(c.Args)):])
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		errorf("args %q do not start with serve", c.Args)
	}
	for flag, port := range map[string]string{"http-addr": "http", "https-addr": "https", "admin-addr": "admin", "webhook-addr": "webhook"} {
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
	if svc := controllerService(in, d); svc != nil && flags["publish-service"] != "" && flags["publish-service"] != svc.Namespace+"/"+svc.Name {
		errorf("--publish-service=%s is not the Service %s/%s", flags["publish-service"], svc.Namespace, svc.Name)
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

// controllerService is the Service in front of the proxy: the one named
// like the Deployment.
func controllerService(in *install, d *appsv1.Deployment) *corev1.Service {
	for _, s := range in.services {
		if s.Namespace == d.Namespace && s.Name == d.Name {
			return s
		}
	}
	return nil
}

func checkService(t *testing.T, in *install, d *appsv1.Deployment) {
	t.Helper()
	s := controllerService(in, d)
	if s == nil {
		t.Fatalf("%s: no Service %s/%s", in.file, d.Namespace, d.Name)
	}
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
// and the Lease, and for the webhook's certificate one Secret and one
// ValidatingWebhookConfiguration; nothing else. Secrets have no get except
// the webhook's own, by name: informers list and watch.
var allowedVerbs = map[rbacRule][]string{
	{"networking.k8s.io", "ingressclasses"}:   {"get", "list", "watch"},
	{"networking.k8s.io", "ingresses"}:        {"get", "list", "watch"},
	{"networking.k8s.io", "ingresses/status"}: {"update", "patch"},
	{"", "services"}:                          {"get", "list", "watch"},
	{"", "secrets"}:                           {"list", "watch", "create", "get", "update"},
	{"discovery.k8s.io", "endpointslices"}:    {"get", "list", "watch"},
	{"", "nodes"}:                             {"get", "list", "watch"},
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations"}: {"get", "patch"},
	{"", "pods"}:                      {"get", "list", "watch"},
	{"events.k8s.io", "events"}:       {"create", "patch"},
	{"", "events"}:                    {"create", "patch"},
	{"coordination.k8s.io", "leases"}: {"get", "create", "update"},
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

func checkRBAC(t *testing.T, in *install, d *appsv1.Deployment, watched []string, wh webhookFlags) {
	t.Helper()
	sa := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: d.Namespace}
	electionID := parseFlags(d.Spec.Template.Spec.Containers[0].Args)["election-id"]
	// named is the one object of a resource a rule may be limited to.
	named := map[string]string{"leases": electionID, "secrets": wh.secret, "validatingwebhookconfigurations": wh.config}
	ownRole := "Role " + d.Namespace + "/" + roleName(in, d)

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
						if !namespaced || where != ownRole {
							t.Errorf("%s: %s: %s only in Torii's own namespace", in.file, where, res)
						}
					}
					if res == "leases" && slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "create" }) &&
						!slices.Equal(r.ResourceNames, []string{electionID}) {
						t.Errorf("%s: %s: lease %v not limited to the election lease %q", in.file, where, r.Verbs, electionID)
					}
					checkWebhookRule(t, in.file, where, where == ownRole, r, res, wh)
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
					(len(r.ResourceNames) == 0 || named[rr.resource] != "" && slices.Contains(r.ResourceNames, named[rr.resource]))
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
	if wh.bootstrap {
		need("", map[rbacRule][]string{{"admissionregistration.k8s.io", "validatingwebhookconfigurations"}: {"get", "patch"}})
		need(d.Namespace, map[rbacRule][]string{{"", "secrets"}: {"create", "get", "update"}})
	}
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

// webhookFlags is the webhook configuration of a Deployment's flags.
type webhookFlags struct {
	enabled bool
	// bootstrap: Torii makes its certificate (--webhook-cert-secret)
	// rather than reading files.
	bootstrap bool
	port      string // of --webhook-addr
	// secret (in Torii's namespace), config and service are named by the
	// bootstrap flags.
	secret, config, service string
}

func webhookOf(d *appsv1.Deployment) webhookFlags {
	flags := parseFlags(d.Spec.Template.Spec.Containers[0].Args)
	addr, enabled := flags["webhook-addr"]
	wh := webhookFlags{enabled: enabled, config: flags["webhook-config-name"], service: flags["webhook-service"]}
	_, wh.port, _ = strings.Cut(addr, ":")
	if ref := flags["webhook-cert-secret"]; ref != "" {
		wh.bootstrap = true
		ns, name, _ := strings.Cut(ref, "/")
		if ns == d.Namespace {
			wh.secret = name // a Secret elsewhere fails checkWebhook
		}
	}
	return wh
}

// checkWebhookRule checks one RBAC rule on resource res against what the
// webhook needs: Secrets beyond list/watch and webhook configurations only
// for certificate bootstrap, only in Torii's own namespace (Secrets) and,
// except for create, only by name.
func checkWebhookRule(t *testing.T, file, where string, own bool, r rbacv1.PolicyRule, res string, wh webhookFlags) {
	t.Helper()
	switch res {
	case "secrets":
		for _, v := range r.Verbs {
			if v == "list" || v == "watch" {
				continue
			}
			switch {
			case !wh.bootstrap:
				t.Errorf("%s: %s: %s on Secrets without webhook certificate bootstrap", file, where, v)
			case !own:
				t.Errorf("%s: %s: %s on Secrets outside Torii's own namespace", file, where, v)
			case v != "create" && !slices.Equal(r.ResourceNames, []string{wh.secret}):
				t.Errorf("%s: %s: %s on Secrets %v, want only the webhook's %q", file, where, v, r.ResourceNames, wh.secret)
			}
		}
		if len(r.ResourceNames) > 0 && slices.ContainsFunc(r.Verbs, func(v string) bool { return v == "list" || v == "watch" }) {
			t.Errorf("%s: %s: list/watch of Secrets limited by name", file, where)
		}
	case "validatingwebhookconfigurations":
		if !wh.bootstrap || !slices.Equal(r.ResourceNames, []string{wh.config}) {
			t.Errorf("%s: %s: webhook configurations %v, want only %q and only for certificate bootstrap", file, where, r.ResourceNames, wh.config)
		}
	}
}

// checkWebhook checks the ValidatingWebhookConfiguration, its Service and
// the Deployment's webhook flags against each other.
func checkWebhook(t *testing.T, in *install, d *appsv1.Deployment, wh webhookFlags) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: webhook: %s", in.file, fmt.Sprintf(format, args...))
	}
	if !wh.enabled {
		if len(in.webhookConfigs) > 0 {
			errorf("a ValidatingWebhookConfiguration without --webhook-addr")
		}
		return
	}
	if len(in.webhookConfigs) != 1 || len(in.webhookConfigs[0].Webhooks) != 1 {
		t.Fatalf("%s: want one ValidatingWebhookConfiguration with one webhook", in.file)
	}
	vwc := in.webhookConfigs[0]
	w := vwc.Webhooks[0]
	if w.FailurePolicy == nil || w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
		errorf("failurePolicy %v, sideEffects %v: both must be set, sideEffects None", w.FailurePolicy, w.SideEffects)
	}
	if w.TimeoutSeconds == nil || *w.TimeoutSeconds < 2 || *w.TimeoutSeconds > 30 {
		errorf("timeoutSeconds %v, want 2 to 30", w.TimeoutSeconds)
	} else if timeout, err := time.ParseDuration(parseFlags(d.Spec.Template.Spec.Containers[0].Args)["webhook-timeout"]); err != nil ||
		timeout <= 0 || timeout >= time.Duration(*w.TimeoutSeconds)*time.Second {
		// Torii must give up first, so that the API server hears why.
		errorf("--webhook-timeout %v (%v), want it below timeoutSeconds %d", timeout, err, *w.TimeoutSeconds)
	}
	if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
		errorf("admissionReviewVersions %v, want [v1] (the only one Torii answers)", w.AdmissionReviewVersions)
	}
	if w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent {
		errorf("matchPolicy %v, want Equivalent", w.MatchPolicy)
	}
	if w.ObjectSelector != nil {
		errorf("an objectSelector would let an Ingress opt out")
	}
	// Only Ingress creates and updates: no other resource, no deletes, no
	// status, nothing by wildcard.
	scope := admissionregistrationv1.NamespacedScope
	wantRule := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"},
			Resources: []string{"ingresses"}, Scope: &scope},
	}
	if len(w.Rules) != 1 || !equality.Semantic.DeepEqual(w.Rules[0], wantRule) {
		got, _ := yaml.Marshal(w.Rules)
		want, _ := yaml.Marshal([]admissionregistrationv1.RuleWithOperations{wantRule})
		errorf("rules\n%swant exactly\n%s", got, want)
	}
	ref := w.ClientConfig.Service
	if ref == nil || w.ClientConfig.URL != nil || len(w.ClientConfig.CABundle) > 0 {
		t.Fatalf("%s: webhook clientConfig must name a Service, with no URL and no caBundle (set at run time)", in.file)
	}
	if ref.Namespace != d.Namespace || ref.Path == nil || *ref.Path != "/validate/ingress" {
		errorf("clientConfig.service %s/%s path %v, want Torii's namespace and /validate/ingress", ref.Namespace, ref.Name, ref.Path)
	}
	var svc *corev1.Service
	for _, s := range in.services {
		if s.Namespace == ref.Namespace && s.Name == ref.Name {
			svc = s
		}
	}
	if svc == nil {
		t.Fatalf("%s: webhook Service %s/%s not defined", in.file, ref.Namespace, ref.Name)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
		errorf("Service %s: type %s, selector %v: want a ClusterIP selecting Torii's pods", svc.Name, svc.Spec.Type, svc.Spec.Selector)
	}
	if ref.Port == nil || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != *ref.Port || svc.Spec.Ports[0].TargetPort != intstr.FromString("webhook") {
		errorf("Service %s ports %v: want one port, the configuration's, to the container port named webhook", svc.Name, svc.Spec.Ports)
	}
	if wh.port != "9443" {
		errorf("--webhook-addr port %q, want the webhook container port 9443", wh.port)
	}
	if wh.bootstrap {
		switch {
		case wh.secret == "":
			errorf("--webhook-cert-secret must name a Secret in Torii's namespace %s", d.Namespace)
		case wh.config != vwc.Name:
			errorf("--webhook-config-name=%s, configuration %s", wh.config, vwc.Name)
		case wh.service != svc.Name:
			errorf("--webhook-service=%s, Service %s: the certificate would not cover it", wh.service, svc.Name)
		}
		if *w.FailurePolicy != admissionregistrationv1.Fail {
			errorf("failurePolicy %s, want Fail by default", *w.FailurePolicy)
		}
		if *w.TimeoutSeconds != 5 {
			errorf("timeoutSeconds %d, want 5 by default", *w.TimeoutSeconds)
		}
		return
	}
	// Certificate files: from a read-only Secret volume.
	c := d.Spec.Template.Spec.Containers[0]
	flags := parseFlags(c.Args)
	for _, f := range []string{"webhook-cert-file", "webhook-key-file"} {
		mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.ReadOnly && strings.HasPrefix(flags[f], strings.TrimSuffix(m.MountPath, "/")+"/")
		})
		if !mounted {
			errorf("--%s=%s is not on a read-only mount", f, flags[f])
		}
	}
}

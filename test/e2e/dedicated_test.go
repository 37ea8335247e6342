package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/torii-dev/torii/internal/dedicated"
	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/translate"
	"github.com/torii-dev/torii/test/e2e/harness"
)

const (
	dedDeployDir = "../../deploy"
	dedCRDFile   = "crds/ingressclassconfigs.torii.dev.yaml"
	dedImage     = "registry.example.test/torii:e2e"
	dedShared    = "203.0.113.7" // the shared load balancer's address
	dedNS        = "shop"
	dedClass     = "torii-dedicated"
	dedCtrlName  = "torii.dev/ingress-controller"
)

// dedGVRs maps the kinds the deploy files hold to their resources
// (namespaced or not).
var dedGVRs = map[string]struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}{
	"Namespace":                {schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false},
	"ServiceAccount":           {schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true},
	"ClusterRole":              {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, false},
	"ClusterRoleBinding":       {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, false},
	"Role":                     {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, true},
	"RoleBinding":              {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, true},
	"CustomResourceDefinition": {schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}, false},
	// The ValidatingAdmissionPolicy of deploy/dedicated.yaml, so that the
	// reconciler runs under it.
	"ValidatingAdmissionPolicy":        {schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}, false},
	"ValidatingAdmissionPolicyBinding": {schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"}, false},
}

var dedConfigGVR = schema.GroupVersionResource{Group: "torii.dev", Version: "v1alpha1", Resource: "ingressclassconfigs"}

// TestDedicatedMode runs the controller with --enable-dedicated against the
// real API server, as the service account of deploy/torii.yaml plus
// deploy/dedicated.yaml (so RBAC is what a cluster would grant), with the
// CRD from deploy/crds. It checks the CRD's validation, the children of a
// dedicated Ingress (owner references, args, RBAC), the Ingress status from
// the Service's load-balancer address, drift repair, the scoped proxy
// process serving its one Ingress with its own RBAC, grouping, deletion,
// and that the shared proxies keep serving their own Ingresses only.
func TestDedicatedMode(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cs := c.Client()
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// The CRD and the RBAC, from the files users apply.
	t0 := time.Now()
	dedApplyFile(t, ctx, dyn, filepath.Join(dedDeployDir, dedCRDFile))
	dedWaitEstablished(t, ctx, dyn, "ingressclassconfigs.torii.dev")
	t.Logf("timing: CRD established in %v", time.Since(t0).Round(time.Millisecond))
	dedApplyFile(t, ctx, dyn, filepath.Join(dedDeployDir, "torii.yaml"), "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
	dedApplyFile(t, ctx, dyn, filepath.Join(dedDeployDir, "dedicated.yaml"))

	t.Run("CRD validation", func(t *testing.T) { dedCheckValidation(t, ctx, dyn) })

	configs := dyn.Resource(dedConfigGVR)
	dedCreateConfig(t, ctx, configs, "dedicated", map[string]any{
		"mode": "Dedicated",
		"dedicated": map[string]any{
			"replicas": int64(2),
			"service": map[string]any{
				"annotations": map[string]any{"metallb.io/address-pool": "pool-a"},
			},
			"tolerations": []any{map[string]any{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}},
		},
	})
	dedCreateConfig(t, ctx, configs, "shared", map[string]any{"mode": "Shared"})
	for _, ic := range []*networkingv1.IngressClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "torii"}, Spec: networkingv1.IngressClassSpec{Controller: dedCtrlName}},
		dedIngressClass(dedClass, "dedicated"),
		dedIngressClass("torii-shared-param", "shared"),
		dedIngressClass("torii-broken", "no-such-config"),
	} {
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().IngressClasses().Create(ctx, ic, metav1.CreateOptions{})
			return err
		})
	}
	createNamespaceAndService(t, ctx, c, dedNS, "web", echoBackend(t, "web"))

	srv := dedStartController(t, c)
	addr := srv.HTTPAddr().String()

	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses(dedNS).Create(ctx, hostIngress(dedNS, "shared", "torii", "shared.example", "web"), metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses(dedNS).Create(ctx, hostIngress(dedNS, "shared-param", "torii-shared-param", "shared-param.example", "web"), metav1.CreateOptions{})
		return err
	})
	created := time.Now()
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses(dedNS).Create(ctx, hostIngress(dedNS, "web", dedClass, "web.example", "web"), metav1.CreateOptions{})
		return err
	})
	web, err := cs.NetworkingV1().Ingresses(dedNS).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unit := dedicated.IngressUnitName(dedNS, "web")

	var kids dedKids
	t.Run("children", func(t *testing.T) {
		eventually(t, "the children of the dedicated Ingress", func() bool {
			kids = dedGetKids(ctx, cs, dedNS, unit)
			return kids.complete()
		})
		t.Logf("timing: Ingress created -> Deployment, Service, PDB, ServiceAccount, Role, RoleBinding: %v", time.Since(created).Round(time.Millisecond))
		if !strings.HasPrefix(unit, "torii-web-") || len(unit) != len("torii-web-")+8 {
			t.Errorf("unit name %q, want torii-web-<hash8>", unit)
		}
		kids.checkOwners(t, []*networkingv1.Ingress{web})
		d := kids.deploy
		if *d.Spec.Replicas != 2 {
			t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
		}
		pod := d.Spec.Template.Spec
		ctr := pod.Containers[0]
		if ctr.Image != dedImage {
			t.Errorf("image %q, want %q", ctr.Image, dedImage)
		}
		for _, a := range []string{"serve", "--only-ingress=shop/web", "--only-ingress-class=" + dedClass, "--controller-name=" + dedCtrlName} {
			if !slices.Contains(ctr.Args, a) {
				t.Errorf("args %q lack %q", ctr.Args, a)
			}
		}
		if pod.ServiceAccountName != unit || len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "dedicated" {
			t.Errorf("pod: serviceAccountName %q, tolerations %v", pod.ServiceAccountName, pod.Tolerations)
		}
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("pod securityContext %v: not non-root", sc)
		}
		svc := kids.svc
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
			svc.Annotations["metallb.io/address-pool"] != "pool-a" {
			t.Errorf("Service: type %s, externalTrafficPolicy %s, annotations %v", svc.Spec.Type, svc.Spec.ExternalTrafficPolicy, svc.Annotations)
		}
		for k, v := range svc.Spec.Selector {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
			}
		}
		if mu := kids.pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() != 1 {
			t.Errorf("PDB maxUnavailable %v, want 1", mu)
		}
		if r := kids.role.Rules[0]; !slices.Equal(r.Resources, []string{"ingresses"}) || !slices.Equal(r.ResourceNames, []string{"web"}) {
			t.Errorf("Role: first rule %+v, want ingresses limited to web", r)
		}
		if s := kids.binding.Subjects; len(s) != 1 || s[0].Name != unit || kids.binding.RoleRef.Name != unit {
			t.Errorf("RoleBinding: subjects %v roleRef %v", s, kids.binding.RoleRef)
		}
	})

	t.Run("shared proxies keep to their own Ingresses", func(t *testing.T) {
		eventually(t, "shared Ingresses served, the dedicated one not", func() bool {
			s1, b1 := get(addr, "shared.example", "/")
			s2, b2 := get(addr, "shared-param.example", "/")
			s3, _ := get(addr, "web.example", "/")
			return s1 == 200 && b1 == "web" && s2 == 200 && b2 == "web" && s3 == 404
		})
		stWaitStatus(t, ctx, cs, dedNS, "shared", []string{dedShared})
		stWaitStatus(t, ctx, cs, dedNS, "shared-param", []string{dedShared})
	})

	t.Run("status follows the dedicated Service", func(t *testing.T) {
		// --publish-cluster-ip: the ClusterIP, which the API server
		// allocates at once, is published before any load-balancer address.
		clusterIP := kids.svc.Spec.ClusterIP
		stWaitStatus(t, ctx, cs, dedNS, "web", []string{clusterIP})
		dedWaitEvent(t, ctx, cs, dedNS, "web", "WaitingForLoadBalancer", corev1.EventTypeNormal)

		// Simulate the load-balancer implementation (MetalLB, a cloud).
		for _, ip := range []string{"198.51.100.20", "198.51.100.21"} {
			start := time.Now()
			stSetServiceLB(t, ctx, cs, dedNS, unit, corev1.LoadBalancerIngress{IP: ip})
			took := stWaitStatus(t, ctx, cs, dedNS, "web", []string{ip, clusterIP})
			t.Logf("timing: Service load-balancer address %s -> Ingress status: %v", ip, time.Since(start).Round(time.Millisecond))
			if took > 2*time.Second {
				t.Errorf("the Ingress status took %v to show %s, want under 2s", took, ip)
			}
		}
		stSetServiceLB(t, ctx, cs, dedNS, unit, corev1.LoadBalancerIngress{Hostname: "lb-1.example.net"})
		stWaitStatus(t, ctx, cs, dedNS, "web", []string{"lb-1.example.net", clusterIP})
		// The shared status never moved.
		if got := stStatus(t, ctx, cs, dedNS, "shared"); !slices.Equal(got, []string{dedShared}) {
			t.Errorf("shared Ingress status %q", got)
		}
	})

	t.Run("drift is repaired", func(t *testing.T) {
		// A deleted Deployment comes back (a new object).
		old := kids.deploy.UID
		start := time.Now()
		if err := cs.AppsV1().Deployments(dedNS).Delete(ctx, unit, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the Deployment recreated", func() bool {
			d, err := cs.AppsV1().Deployments(dedNS).Get(ctx, unit, metav1.GetOptions{})
			return err == nil && d.UID != old
		})
		t.Logf("timing: Deployment deleted -> recreated: %v", time.Since(start).Round(time.Millisecond))
		for _, del := range []func() error{
			func() error { return cs.RbacV1().Roles(dedNS).Delete(ctx, unit, metav1.DeleteOptions{}) },
			func() error {
				return cs.PolicyV1().PodDisruptionBudgets(dedNS).Delete(ctx, unit, metav1.DeleteOptions{})
			},
			func() error { return cs.CoreV1().ServiceAccounts(dedNS).Delete(ctx, unit, metav1.DeleteOptions{}) },
		} {
			if err := del(); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "Role, PDB and ServiceAccount recreated", func() bool { return dedGetKids(ctx, cs, dedNS, unit).complete() })

		// Edits to what Torii sets are undone; the load balancer and its
		// address stay (the Service is updated in place).
		d, err := cs.AppsV1().Deployments(dedNS).Get(ctx, unit, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Replicas = dedPtr(int32(7))
		d.Spec.Template.Spec.Containers[0].Args = append(d.Spec.Template.Spec.Containers[0].Args, "--only-ingress=shop/shared")
		if _, err := cs.AppsV1().Deployments(dedNS).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		svc, err := cs.CoreV1().Services(dedNS).Get(ctx, unit, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svcUID := svc.UID
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		delete(svc.Annotations, "metallb.io/address-pool")
		delete(svc.Labels, dedicated.LabelManagedBy) // drops out of Torii's informer
		if _, err := cs.CoreV1().Services(dedNS).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		eventually(t, "edits undone", func() bool {
			k := dedGetKids(ctx, cs, dedNS, unit)
			return k.complete() && *k.deploy.Spec.Replicas == 2 && !slices.Contains(k.deploy.Spec.Template.Spec.Containers[0].Args, "--only-ingress=shop/shared") &&
				k.svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal &&
				k.svc.Annotations["metallb.io/address-pool"] == "pool-a" && k.svc.Labels[dedicated.LabelManagedBy] == "torii"
		})
		t.Logf("timing: Deployment and Service edited -> repaired: %v", time.Since(start).Round(time.Millisecond))
		kids = dedGetKids(ctx, cs, dedNS, unit)
		if kids.svc.UID != svcUID {
			t.Errorf("the Service was replaced, not repaired: its address would change")
		}
		kids.checkOwners(t, []*networkingv1.Ingress{web})
	})

	t.Run("scoped proxy serves its Ingress and nothing else", func(t *testing.T) {
		// The proxy as the Deployment runs it: its args, with loopback
		// listeners, and its own ServiceAccount's permissions (the Role the
		// controller made), through impersonation.
		kubeconfig := filepath.Join(t.TempDir(), "proxy.kubeconfig")
		if err := harness.WriteKubeconfig(kubeconfig, c.ImpersonatingConfig(
			"system:serviceaccount:"+dedNS+":"+unit, "system:serviceaccounts", "system:serviceaccounts:"+dedNS, "system:authenticated")); err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range kids.deploy.Spec.Template.Spec.Containers[0].Args {
			switch {
			case strings.HasPrefix(a, "--http-addr="):
				a = "--http-addr=127.0.0.1:0"
			case strings.HasPrefix(a, "--https-addr="):
				a = "--https-addr=127.0.0.1:0"
			case strings.HasPrefix(a, "--admin-addr="):
				a = "--admin-addr=127.0.0.1:0"
			}
			args = append(args, a)
		}
		args = append(args, "--kubeconfig="+kubeconfig, "--shutdown-grace-period=0s")
		bin := stToriiBinary(t)
		start := time.Now()
		p := stStartProc(t, bin, "dedicated-proxy", args...)
		p.waitServing(t)
		eventually(t, "the scoped proxy serving web.example", func() bool {
			code, body := get(p.http, "web.example", "/")
			return code == 200 && body == "web"
		})
		t.Logf("timing: scoped proxy start -> first request served: %v", time.Since(start).Round(time.Millisecond))
		for _, host := range []string{"shared.example", "shared-param.example"} {
			if code, body := get(p.http, host, "/"); code != 404 {
				t.Errorf("scoped proxy answered %s with %d %q, want 404: it must serve only its own Ingress", host, code, body)
			}
		}
		// It follows its Ingress: a new path appears.
		ing, err := cs.NetworkingV1().Ingresses(dedNS).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ing.Spec.Rules = append(ing.Spec.Rules, hostIngress(dedNS, "web", dedClass, "web2.example", "web").Spec.Rules...)
		if _, err := cs.NetworkingV1().Ingresses(dedNS).Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the scoped proxy serving the new host", func() bool {
			code, body := get(p.http, "web2.example", "/")
			return code == 200 && body == "web"
		})
		scrape, err := stScrape(p.admin)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := stParseMetric(scrape, "torii_leader"); ok && v != 0 {
			t.Errorf("scoped proxy reports torii_leader %v", v)
		}
	})

	t.Run("grouping", func(t *testing.T) {
		for _, name := range []string{"a", "b"} {
			ing := hostIngress(dedNS, name, dedClass, name+".example", "web")
			ing.Annotations = map[string]string{dedicated.AnnotationGroup: "storefront"}
			mustCreate(t, func() error {
				_, err := cs.NetworkingV1().Ingresses(dedNS).Create(ctx, ing, metav1.CreateOptions{})
				return err
			})
		}
		group := dedicated.GroupUnitName(dedNS, dedClass, "storefront")
		var gk dedKids
		eventually(t, "one set of children for the group", func() bool {
			gk = dedGetKids(ctx, cs, dedNS, group)
			return gk.complete() && gk.ownerCounts(2)
		})
		a, err := cs.NetworkingV1().Ingresses(dedNS).Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := cs.NetworkingV1().Ingresses(dedNS).Get(ctx, "b", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gk.checkOwners(t, []*networkingv1.Ingress{a, b})
		for _, arg := range []string{"--only-ingress=shop/a", "--only-ingress=shop/b"} {
			if !slices.Contains(gk.deploy.Spec.Template.Spec.Containers[0].Args, arg) {
				t.Errorf("group Deployment args %q lack %s", gk.deploy.Spec.Template.Spec.Containers[0].Args, arg)
			}
		}
		if n := dedCountDeployments(t, ctx, cs, dedNS); n != 2 {
			t.Errorf("%d dedicated Deployments in %s, want 2 (web, and the group's)", n, dedNS)
		}
		stSetServiceLB(t, ctx, cs, dedNS, group, corev1.LoadBalancerIngress{IP: "198.51.100.30"})
		clusterIP := gk.svc.Spec.ClusterIP
		stWaitStatus(t, ctx, cs, dedNS, "a", []string{"198.51.100.30", clusterIP})
		stWaitStatus(t, ctx, cs, dedNS, "b", []string{"198.51.100.30", clusterIP})

		// a leaves: the group's proxies serve b alone, owned by b alone.
		if err := cs.NetworkingV1().Ingresses(dedNS).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the group down to b", func() bool {
			gk = dedGetKids(ctx, cs, dedNS, group)
			return gk.complete() && gk.ownerCounts(1) && !slices.Contains(gk.deploy.Spec.Template.Spec.Containers[0].Args, "--only-ingress=shop/a")
		})
		gk.checkOwners(t, []*networkingv1.Ingress{b})

		// b moves to the shared class: the group's children go, the
		// shared proxies serve it and publish their address.
		b, err = cs.NetworkingV1().Ingresses(dedNS).Get(ctx, "b", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.Spec.IngressClassName = dedPtr("torii")
		if _, err := cs.NetworkingV1().Ingresses(dedNS).Update(ctx, b, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		dedWaitGone(t, ctx, cs, dedNS, group)
		eventually(t, "b served by the shared proxies", func() bool { code, body := get(addr, "b.example", "/"); return code == 200 && body == "web" })
		stWaitStatus(t, ctx, cs, dedNS, "b", []string{dedShared})
	})

	t.Run("problems of dedicated Ingresses become Events", func(t *testing.T) {
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().Ingresses(dedNS).Create(ctx, hostIngress(dedNS, "nosvc", dedClass, "nosvc.example", "missing"), metav1.CreateOptions{})
			return err
		})
		dedWaitEvent(t, ctx, cs, dedNS, "nosvc", "ServiceNotFound", corev1.EventTypeWarning)
		if err := cs.NetworkingV1().Ingresses(dedNS).Delete(ctx, "nosvc", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		dedWaitGone(t, ctx, cs, dedNS, dedicated.IngressUnitName(dedNS, "nosvc"))
	})

	t.Run("a refused child becomes an Event", func(t *testing.T) {
		// A ResourceQuota that allows no load-balancer Service: the API
		// server refuses the dedicated Service, and the user should learn
		// why from the Ingress, not from the controller's log.
		lbs := corev1.ResourceList{corev1.ResourceServicesLoadBalancers: resource.MustParse("0")}
		quota, err := cs.CoreV1().ResourceQuotas(dedNS).Create(ctx, &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "no-load-balancers"},
			Spec:       corev1.ResourceQuotaSpec{Hard: lbs},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// No kube-controller-manager runs here to compute the quota's
		// usage; write it as that controller would, so that admission
		// enforces the limit rather than refusing for an unknown status.
		quota.Status = corev1.ResourceQuotaStatus{Hard: lbs, Used: lbs}
		if _, err := cs.CoreV1().ResourceQuotas(dedNS).UpdateStatus(ctx, quota, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Gone before the next subtest even if this one fails (a second
		// delete is a harmless NotFound).
		defer cs.CoreV1().ResourceQuotas(dedNS).Delete(ctx, quota.Name, metav1.DeleteOptions{})
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().Ingresses(dedNS).Create(ctx, hostIngress(dedNS, "quota", dedClass, "quota.example", "web"), metav1.CreateOptions{})
			return err
		})
		dedWaitEvent(t, ctx, cs, dedNS, "quota", dedicated.ReasonApplyFailed, corev1.EventTypeWarning)
		unit := dedicated.IngressUnitName(dedNS, "quota")
		eventually(t, "the children other than the Service applied", func() bool {
			k := dedGetKids(ctx, cs, dedNS, unit)
			return k.deploy != nil && k.pdb != nil && k.sa != nil && k.role != nil && k.binding != nil
		})
		if dedGetKids(ctx, cs, dedNS, unit).svc != nil {
			t.Fatal("the Service exists although the quota allows no load balancer")
		}

		// The quota lifted, the Service follows. The reconciler retries
		// with backoff (up to 30 s); a change to the Ingress starts a
		// pass at once.
		if err := cs.CoreV1().ResourceQuotas(dedNS).Delete(ctx, quota.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		ing, err := cs.NetworkingV1().Ingresses(dedNS).Get(ctx, "quota", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ing.Annotations = map[string]string{"example.com/touched": "after the quota"}
		if _, err := cs.NetworkingV1().Ingresses(dedNS).Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the Service created once the quota is gone", func() bool { return dedGetKids(ctx, cs, dedNS, unit).complete() })
		if err := cs.NetworkingV1().Ingresses(dedNS).Delete(ctx, "quota", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		dedWaitGone(t, ctx, cs, dedNS, unit)
	})

	t.Run("class with a missing IngressClassConfig", func(t *testing.T) {
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().Ingresses(dedNS).Create(ctx, hostIngress(dedNS, "broken", "torii-broken", "broken.example", "web"), metav1.CreateOptions{})
			return err
		})
		dedWaitEvent(t, ctx, cs, dedNS, "broken", "IngressClassConfigNotFound", corev1.EventTypeWarning)
		if code, _ := get(addr, "broken.example", "/"); code != 404 {
			t.Errorf("the shared proxies serve an Ingress whose class names a missing IngressClassConfig: %d", code)
		}
		if n := len(stStatus(t, ctx, cs, dedNS, "broken")); n != 0 {
			t.Errorf("status written on an Ingress of a broken class")
		}
	})

	t.Run("a deleted IngressClassConfig holds the children", func(t *testing.T) {
		// A mistake in the configuration must not cost the load balancer
		// its address: the children stay, untouched, and the Ingress is
		// served by no one else until the IngressClassConfig is back.
		before := dedGetKids(ctx, cs, dedNS, unit)
		status := stStatus(t, ctx, cs, dedNS, "web")
		if err := configs.Delete(ctx, "dedicated", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		dedWaitEvent(t, ctx, cs, dedNS, "web", "IngressClassConfigNotFound", corev1.EventTypeWarning)
		time.Sleep(stHold)
		after := dedGetKids(ctx, cs, dedNS, unit)
		if !after.complete() || after.svc.UID != before.svc.UID || after.deploy.UID != before.deploy.UID {
			t.Fatalf("children changed while the IngressClassConfig was missing")
		}
		if got := stStatus(t, ctx, cs, dedNS, "web"); !slices.Equal(got, status) {
			t.Errorf("status %q -> %q while the IngressClassConfig was missing", status, got)
		}
		if code, _ := get(addr, "web.example", "/"); code != 404 {
			t.Errorf("the shared proxies serve web.example (%d) while its IngressClassConfig is missing", code)
		}
		dedCreateConfig(t, ctx, configs, "dedicated", map[string]any{
			"mode": "Dedicated",
			"dedicated": map[string]any{
				"replicas": int64(2),
				"service": map[string]any{
					"annotations": map[string]any{"metallb.io/address-pool": "pool-a"},
				},
				"tolerations": []any{map[string]any{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}},
			},
		})
		time.Sleep(stHold)
		again := dedGetKids(ctx, cs, dedNS, unit)
		if !again.complete() || again.svc.UID != before.svc.UID || again.deploy.Generation != before.deploy.Generation {
			t.Errorf("children replaced or changed after the same IngressClassConfig came back")
		}
	})

	t.Run("deleting the Ingress deletes its children", func(t *testing.T) {
		start := time.Now()
		if err := cs.NetworkingV1().Ingresses(dedNS).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		dedWaitGone(t, ctx, cs, dedNS, unit)
		t.Logf("timing: Ingress deleted -> children deleted: %v", time.Since(start).Round(time.Millisecond))
		// The shared Ingresses are untouched.
		if code, _ := get(addr, "shared.example", "/"); code != 200 {
			t.Errorf("shared.example: %d after the dedicated Ingress was deleted", code)
		}
	})
}

// dedStartController runs the controller in this process, as the service
// account of deploy/torii.yaml (impersonated), with dedicated mode on.
func dedStartController(t *testing.T, c *harness.Cluster) *server.Server {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "controller.kubeconfig")
	if err := harness.WriteKubeconfig(kubeconfig, c.ImpersonatingConfig(
		"system:serviceaccount:torii-system:torii", "system:serviceaccounts", "system:serviceaccounts:torii-system", "system:authenticated")); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			t.Logf("=== last lines of the controller log (%s):\n%s", logPath, stTail(logPath, 60))
		}
	})
	srv, err := server.New(server.Config{
		HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Version: "e2e",
		Logger:  slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Kube: server.KubeConfig{
			Kubeconfig:           kubeconfig,
			PublishStatusAddress: []string{dedShared},
			ElectionID:           "torii-leader", ElectionNamespace: "torii-system",
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
			Dedicated: server.DedicatedConfig{Enabled: true, Image: dedImage, PublishClusterIP: true},
		},
		Translate:         translate.Config{ControllerName: dedCtrlName, IngressClass: "torii"},
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 75 * time.Second, MaxHeaderBytes: 60 << 10,
		DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Torii did not stop")
		}
	})
	return srv
}

// dedCheckValidation creates invalid IngressClassConfigs, which the CRD's
// schema and CEL rules must refuse, and a minimal valid one, which the
// schema defaults.
func dedCheckValidation(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	configs := dyn.Resource(dedConfigGVR)
	for _, tc := range []struct {
		name string
		spec map[string]any
		want string // in the error
	}{
		{"bad-mode", map[string]any{"mode": "Exclusive"}, "Unsupported value"},
		{"dedicated-when-shared", map[string]any{"mode": "Shared", "dedicated": map[string]any{}}, "only allowed with mode Dedicated"},
		{"zero-replicas", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"replicas": int64(0)}}, "should be greater than or equal to 1"},
		{"clusterip", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"type": "ClusterIP"}}}, "Unsupported value"},
		{"class-with-nodeport", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"type": "NodePort", "loadBalancerClass": "x"}}}, "only allowed with type LoadBalancer"},
		{"ranges-with-nodeport", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"type": "NodePort", "loadBalancerSourceRanges": []any{"10.0.0.0/8"}}}}, "only allowed with type LoadBalancer"},
		{"bad-cidr", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"loadBalancerSourceRanges": []any{"10.0.0.300/8"}}}}, "must be a CIDR"},
		{"pdb-zero", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": int64(0)}}}, "would block every node drain"},
		{"pdb-percent", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "0%"}}}, "would block every node drain"},
	} {
		_, err := configs.Create(ctx, dedConfigObject(tc.name, tc.spec), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want Invalid mentioning %q", tc.name, err, tc.want)
		}
	}
	got, err := configs.Create(ctx, dedConfigObject("defaults", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{}}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := got.Object["spec"].(map[string]any)["dedicated"].(map[string]any)
	svc, _ := spec["service"].(map[string]any)
	pdb, _ := spec["podDisruptionBudget"].(map[string]any)
	if spec["replicas"] != int64(2) || svc["type"] != "LoadBalancer" || svc["externalTrafficPolicy"] != "Local" || pdb["enabled"] != true || pdb["maxUnavailable"] != int64(1) {
		t.Errorf("defaults not applied: %v", spec)
	}
	if err := configs.Delete(ctx, "defaults", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func dedConfigObject(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "torii.dev/v1alpha1", "kind": "IngressClassConfig",
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}}
}

func dedCreateConfig(t *testing.T, ctx context.Context, r dynamic.NamespaceableResourceInterface, name string, spec map[string]any) {
	t.Helper()
	if _, err := r.Create(ctx, dedConfigObject(name, spec), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create IngressClassConfig %s: %v", name, err)
	}
}

func dedIngressClass(name, config string) *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.IngressClassSpec{
			Controller: dedCtrlName,
			Parameters: &networkingv1.IngressClassParametersReference{
				APIGroup: dedPtr("torii.dev"), Kind: "IngressClassConfig", Name: config,
				Scope: dedPtr(networkingv1.IngressClassParametersReferenceScopeCluster),
			},
		},
	}
}

// dedKids are the children of one unit; nil where missing.
type dedKids struct {
	deploy  *appsv1.Deployment
	svc     *corev1.Service
	pdb     *policyv1.PodDisruptionBudget
	sa      *corev1.ServiceAccount
	role    *rbacv1.Role
	binding *rbacv1.RoleBinding
}

func (k dedKids) complete() bool {
	return k.deploy != nil && k.svc != nil && k.pdb != nil && k.sa != nil && k.role != nil && k.binding != nil
}

func (k dedKids) none() bool {
	return k.deploy == nil && k.svc == nil && k.pdb == nil && k.sa == nil && k.role == nil && k.binding == nil
}

func (k dedKids) objects() []metav1.Object {
	return []metav1.Object{k.deploy, k.svc, k.pdb, k.sa, k.role, k.binding}
}

// ownerCounts reports whether every child has n owner references. The
// controller updates the children one after another (the Deployment before
// its PodDisruptionBudget), so a test waits for all of them.
func (k dedKids) ownerCounts(n int) bool {
	for _, o := range k.objects() {
		if len(o.GetOwnerReferences()) != n {
			return false
		}
	}
	return true
}

// checkOwners asserts that every child is owned by exactly the Ingresses,
// the first one as controller, all with blockOwnerDeletion, and carries
// Torii's labels.
func (k dedKids) checkOwners(t *testing.T, owners []*networkingv1.Ingress) {
	t.Helper()
	for _, o := range k.objects() {
		refs := o.GetOwnerReferences()
		if len(refs) != len(owners) {
			t.Errorf("%s: %d owner references, want %d", o.GetName(), len(refs), len(owners))
			continue
		}
		controllers := 0
		for _, r := range refs {
			i := slices.IndexFunc(owners, func(ing *networkingv1.Ingress) bool { return ing.UID == r.UID })
			if i < 0 || r.Kind != "Ingress" || r.APIVersion != "networking.k8s.io/v1" || r.Name != owners[i].Name {
				t.Errorf("%s: owner reference %+v is not one of the Ingresses", o.GetName(), r)
			}
			if r.BlockOwnerDeletion == nil || !*r.BlockOwnerDeletion {
				t.Errorf("%s: owner reference %s without blockOwnerDeletion", o.GetName(), r.Name)
			}
			if r.Controller != nil && *r.Controller {
				controllers++
			}
		}
		if controllers != 1 {
			t.Errorf("%s: %d controller owner references, want 1", o.GetName(), controllers)
		}
		if l := o.GetLabels(); l[dedicated.LabelManagedBy] != "torii" || l[dedicated.LabelController] != dedicated.ControllerHash(dedCtrlName) {
			t.Errorf("%s: labels %v", o.GetName(), l)
		}
	}
}

func dedGetKids(ctx context.Context, cs kubernetes.Interface, ns, name string) dedKids {
	var k dedKids
	if d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		k.deploy = d
	}
	if s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		k.svc = s
	}
	if p, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		k.pdb = p
	}
	if s, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		k.sa = s
	}
	if r, err := cs.RbacV1().Roles(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		k.role = r
	}
	if b, err := cs.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		k.binding = b
	}
	return k
}

// dedWaitGone waits until no child of the unit is left. No garbage
// collector runs in the harness: Torii's reconciler deletes them.
func dedWaitGone(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	eventually(t, "the children of "+name+" deleted", func() bool { return dedGetKids(ctx, cs, ns, name).none() })
}

func dedCountDeployments(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns string) int {
	t.Helper()
	list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: dedicated.LabelManagedBy + "=torii"})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// dedWaitEvent waits for an events.k8s.io Event about Ingress ns/name.
func dedWaitEvent(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, reason, typ string) {
	t.Helper()
	var seen []string
	defer func() {
		if t.Failed() {
			t.Logf("events in %s: %q", ns, seen)
		}
	}()
	eventually(t, fmt.Sprintf("a %s Event %s on %s/%s", typ, reason, ns, name), func() bool {
		list, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		seen = seen[:0]
		for _, e := range list.Items {
			seen = append(seen, e.Type+" "+e.Reason+" "+e.Regarding.Kind+"/"+e.Regarding.Name)
			if e.Regarding.Kind == "Ingress" && e.Regarding.Name == name && e.Reason == reason && e.Type == typ {
				t.Logf("event %s on %s/%s: %s", reason, ns, name, e.Note)
				return true
			}
		}
		return false
	})
}

// dedApplyFile creates the objects of a YAML file (those of the given
// kinds, or all), tolerating ones that exist.
func dedApplyFile(t *testing.T, ctx context.Context, dyn dynamic.Interface, path string, kinds ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		obj := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &obj.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(obj.Object) == 0 || (len(kinds) > 0 && !slices.Contains(kinds, obj.GetKind())) {
			continue
		}
		m, ok := dedGVRs[obj.GetKind()]
		if !ok {
			t.Fatalf("%s: unexpected kind %s", path, obj.GetKind())
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.gvr)
		if m.namespaced {
			ri = dyn.Resource(m.gvr).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s: create %s %s: %v", path, obj.GetKind(), obj.GetName(), err)
		}
	}
}

// dedWaitEstablished waits for a CRD's Established condition.
func dedWaitEstablished(t *testing.T, ctx context.Context, dyn dynamic.Interface, name string) {
	t.Helper()
	eventually(t, "CRD "+name+" established", func() bool {
		crd, err := dyn.Resource(dedGVRs["CustomResourceDefinition"].gvr).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true
			}
		}
		return false
	})
}

func dedPtr[T any](v T) *T { return &v }

package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/torii-dev/torii/internal/dedicated"
	"github.com/torii-dev/torii/test/e2e/harness"
)

const (
	dpNS = "dp-victim"
	// dpMsg* are parts of the policy's messages (deploy/dedicated.yaml).
	dpMsgCreate     = "may only create or update objects labelled app.kubernetes.io/managed-by=torii and named torii-*"
	dpMsgDelete     = "may only delete objects labelled app.kubernetes.io/managed-by=torii"
	dpMsgPrivileged = "must not run privileged containers"
	dpMsgVolumes    = "must not mount hostPath or Secret volumes"
	dpMsgHost       = "must not use the host's network, PID or IPC namespace"
	dpMsgBinding    = "must bind the Role of its own name to the ServiceAccount of its own name"
	dpMsgRole       = "may grant get, list and watch only"
)

// TestDedicatedPolicy: the ValidatingAdmissionPolicy of deploy/dedicated.yaml
// confines the controller's service account, which RBAC lets write
// Deployments, Services, ServiceAccounts, Roles, RoleBindings and PDBs in
// every namespace, to Torii's own children: the real API server denies it
// unlabelled, misnamed or privileged Deployments, bindings to other roles,
// and deleting a user's Service, and allows what the reconciler builds.
func TestDedicatedPolicy(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := c.Client()
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	dedApplyFile(t, ctx, dyn, filepath.Join(dedDeployDir, "torii.yaml"), "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
	dedApplyFile(t, ctx, dyn, filepath.Join(dedDeployDir, "dedicated.yaml"))
	torii, err := kubernetes.NewForConfig(c.ImpersonatingConfig(
		"system:serviceaccount:torii-system:torii", "system:serviceaccounts", "system:serviceaccounts:torii-system", "system:authenticated"))
	if err != nil {
		t.Fatal(err)
	}

	// A user's namespace, Service and (empty) Role.
	mustCreate(t, func() error {
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: dpNS}}, metav1.CreateOptions{})
		return err
	})
	userSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "user-db", Namespace: dpNS},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}}}
	mustCreate(t, func() error {
		_, err := admin.CoreV1().Services(dpNS).Create(ctx, userSvc, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := admin.RbacV1().Roles(dpNS).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "user-role", Namespace: dpNS}}, metav1.CreateOptions{})
		return err
	})

	// The policy takes effect once the API server has loaded it.
	eventually(t, "the policy denies an unlabelled Deployment", func() bool {
		d := dpDeployment("torii-probe-00000000", nil)
		d.Labels = nil
		_, err := torii.AppsV1().Deployments(dpNS).Create(ctx, d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), dpMsgCreate)
	})

	denied := func(t *testing.T, what, msg string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed, want denied (%s)", what, msg)
			return
		}
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want denied by the policy (%s)", what, err, msg)
		}
	}
	create := func(d *appsv1.Deployment) error {
		_, err := torii.AppsV1().Deployments(dpNS).Create(ctx, d, metav1.CreateOptions{})
		return err
	}

	t.Run("denied", func(t *testing.T) {
		d := dpDeployment("torii-web-0badc0de", nil)
		d.Labels = nil
		denied(t, "unlabelled Deployment", dpMsgCreate, create(d))

		denied(t, "Deployment not named torii-*", dpMsgCreate, create(dpDeployment("evil", nil)))

		// Also into kube-system: no namespace is exempt.
		d = dpDeployment("evil", nil)
		d.Namespace = "kube-system"
		_, err := torii.AppsV1().Deployments("kube-system").Create(ctx, d, metav1.CreateOptions{})
		denied(t, "Deployment in kube-system not named torii-*", dpMsgCreate, err)

		// The harness's API server runs with --allow-privileged=false, whose
		// validation refuses privileged containers before admission: either
		// refusal will do here.
		err = create(dpDeployment("torii-priv-00000000", func(p *corev1.PodSpec) {
			p.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: dedPtr(true)}
		}))
		if err == nil || !strings.Contains(err.Error(), dpMsgPrivileged) && !strings.Contains(err.Error(), "privileged: Forbidden") {
			t.Errorf("privileged Deployment: %v, want denied", err)
		}
		denied(t, "hostPath Deployment", dpMsgVolumes, create(dpDeployment("torii-host-00000000", func(p *corev1.PodSpec) {
			p.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		})))
		denied(t, "hostNetwork Deployment", dpMsgHost, create(dpDeployment("torii-net-00000000", func(p *corev1.PodSpec) {
			p.HostNetwork = true
		})))

		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "torii-rb-00000000", Namespace: dpNS, Labels: map[string]string{dedicated.LabelManagedBy: "torii"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "user-role"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "torii-rb-00000000", Namespace: dpNS}},
		}
		_, err = torii.RbacV1().RoleBindings(dpNS).Create(ctx, rb, metav1.CreateOptions{})
		denied(t, "RoleBinding to another Role", dpMsgBinding, err)

		_, err = torii.RbacV1().Roles(dpNS).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "torii-rw-00000000", Labels: map[string]string{dedicated.LabelManagedBy: "torii"}},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create"}}},
		}, metav1.CreateOptions{})
		denied(t, "Role granting writes", dpMsgRole, err)

		err = torii.CoreV1().Services(dpNS).Delete(ctx, userSvc.Name, metav1.DeleteOptions{})
		denied(t, "deleting a user's Service", dpMsgDelete, err)
		if _, err := admin.CoreV1().Services(dpNS).Get(ctx, userSvc.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("the user's Service: %v", err)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		// As the reconciler does it: server-side apply (a CREATE, then an
		// UPDATE), then a delete with a UID precondition.
		d := dpDeployment("torii-web-00c0ffee", nil)
		d.TypeMeta = metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"}
		body, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		opts := metav1.PatchOptions{FieldManager: dedicated.FieldManager, Force: dedPtr(true)}
		got, err := torii.AppsV1().Deployments(dpNS).Patch(ctx, d.Name, types.ApplyPatchType, body, opts)
		if err != nil {
			t.Fatalf("apply (create) a Torii Deployment: %v", err)
		}
		d.Spec.Replicas = dedPtr(int32(3))
		if body, err = json.Marshal(d); err != nil {
			t.Fatal(err)
		}
		if _, err := torii.AppsV1().Deployments(dpNS).Patch(ctx, d.Name, types.ApplyPatchType, body, opts); err != nil {
			t.Fatalf("apply (update) a Torii Deployment: %v", err)
		}
		uid := got.UID
		if err := torii.AppsV1().Deployments(dpNS).Delete(ctx, d.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: dedPtr(metav1.DeletePropagationBackground),
		}); err != nil {
			t.Fatalf("delete a Torii Deployment: %v", err)
		}
		// And a plain create.
		if err := create(dpDeployment("torii-api-00c0ffee", nil)); err != nil {
			t.Errorf("create a Torii Deployment: %v", err)
		}
		// A Role and its RoleBinding as the reconciler builds them.
		name := "torii-api-00c0ffee"
		labels := map[string]string{dedicated.LabelManagedBy: "torii"}
		if _, err := torii.RbacV1().Roles(dpNS).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list", "watch"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Errorf("create a Torii Role: %v", err)
		}
		if _, err := torii.RbacV1().RoleBindings(dpNS).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: dpNS}},
		}, metav1.CreateOptions{}); err != nil {
			t.Errorf("create a Torii RoleBinding: %v", err)
		}
	})
}

// dpDeployment is a Deployment shaped like the reconciler's: labelled,
// named torii-*, running as the ServiceAccount of its name, unprivileged.
func dpDeployment(name string, mutate func(*corev1.PodSpec)) *appsv1.Deployment {
	labels := map[string]string{dedicated.LabelManagedBy: "torii", dedicated.LabelInstance: name}
	pod := corev1.PodSpec{
		ServiceAccountName: name,
		Containers: []corev1.Container{{
			Name: "torii", Image: dedImage,
			SecurityContext: &corev1.SecurityContext{Privileged: dedPtr(false), AllowPrivilegeEscalation: dedPtr(false)},
		}},
	}
	if mutate != nil {
		mutate(&pod)
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: dpNS, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{dedicated.LabelInstance: name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
}

package dedicated

import (
	"maps"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Settings are the controller-wide inputs of the builders.
type Settings struct {
	// Image is the proxy container's image (--dedicated-image).
	Image string
	// ControllerName is --controller-name, passed on to the proxies.
	ControllerName string
}

// Ports of the proxy container, as in deploy/torii.yaml: unprivileged,
// because the pods run as non-root with no capabilities.
const (
	portHTTP  = 8080
	portHTTPS = 8443
	portAdmin = 10254
	// nonRoot is distroless' "nonroot" user, the image's USER.
	nonRoot = int64(65532)
	// terminationGrace covers the proxy's shutdown budget (5s grace +
	// 20s drain + margin), as in deploy/torii.yaml.
	terminationGrace = int64(40)
)

// Objects are the desired children of one unit.
type Objects struct {
	ServiceAccount *corev1.ServiceAccount
	Role           *rbacv1.Role
	RoleBinding    *rbacv1.RoleBinding
	Service        *corev1.Service
	Deployment     *appsv1.Deployment
	// PodDisruptionBudget is nil when the class disables it.
	PodDisruptionBudget *policyv1.PodDisruptionBudget
}

// List returns the objects in creation order: identity and permissions
// before the pods that use them.
func (o Objects) List() []Object {
	out := []Object{o.ServiceAccount, o.Role, o.RoleBinding, o.Service, o.Deployment}
	if o.PodDisruptionBudget != nil {
		out = append(out, o.PodDisruptionBudget)
	}
	return out
}

// Object is a typed child object.
type Object interface {
	metav1.Object
	runtime.Object
}

// Desired builds the children of u. It is a pure function of the unit
// (its Ingresses, class and IngressClassConfig) and s.
func Desired(u *Unit, s Settings) Objects {
	d := u.Config.Spec.Dedicated
	meta := func(kind, apiVersion string) (metav1.TypeMeta, metav1.ObjectMeta) {
		return metav1.TypeMeta{Kind: kind, APIVersion: apiVersion}, metav1.ObjectMeta{
			Name:            u.Name,
			Namespace:       u.Namespace,
			Labels:          childLabels(u, s),
			Annotations:     map[string]string{AnnotationIngresses: strings.Join(memberNames(u), ","), AnnotationClass: u.Class},
			OwnerReferences: ownerRefs(u),
		}
	}
	selector := selectorLabels(u)
	var o Objects

	tm, om := meta("ServiceAccount", "v1")
	o.ServiceAccount = &corev1.ServiceAccount{TypeMeta: tm, ObjectMeta: om, AutomountServiceAccountToken: ptr(false)}

	tm, om = meta("Role", "rbac.authorization.k8s.io/v1")
	o.Role = &rbacv1.Role{TypeMeta: tm, ObjectMeta: om, Rules: []rbacv1.PolicyRule{
		// Its own Ingresses only: the proxy's informers select them by
		// name (metadata.name field selector), which RBAC's resourceNames
		// can check for list and watch.
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, ResourceNames: memberNames(u), Verbs: []string{"get", "list", "watch"}},
		// Backends and certificates of this namespace only. Secrets: the
		// informer asks for type kubernetes.io/tls by field selector.
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list", "watch"}},
	}}

	tm, om = meta("RoleBinding", "rbac.authorization.k8s.io/v1")
	o.RoleBinding = &rbacv1.RoleBinding{TypeMeta: tm, ObjectMeta: om,
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: u.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: u.Name, Namespace: u.Namespace}},
	}

	tm, om = meta("Service", "v1")
	maps.Copy(om.Annotations, d.Service.Annotations)
	om.Annotations[AnnotationIngresses] = strings.Join(memberNames(u), ",")
	om.Annotations[AnnotationClass] = u.Class
	svc := &corev1.Service{TypeMeta: tm, ObjectMeta: om, Spec: corev1.ServiceSpec{
		Type:                  d.Service.Type,
		Selector:              selector,
		ExternalTrafficPolicy: d.Service.ExternalTrafficPolicy,
		Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
			{Name: "https", Port: 443, TargetPort: intstr.FromString("https"), Protocol: corev1.ProtocolTCP},
		},
	}}
	if d.Service.Type == corev1.ServiceTypeLoadBalancer {
		if c := d.Service.LoadBalancerClass; c != nil {
			svc.Spec.LoadBalancerClass = ptr(*c)
		}
		svc.Spec.LoadBalancerSourceRanges = append([]string(nil), d.Service.LoadBalancerSourceRanges...)
	}
	o.Service = svc

	tm, om = meta("Deployment", "apps/v1")
	podLabels := childLabels(u, s)
	maps.Copy(podLabels, selector)
	o.Deployment = &appsv1.Deployment{TypeMeta: tm, ObjectMeta: om, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(*d.Replicas),
		Selector: &metav1.LabelSelector{MatchLabels: selector},
		Strategy: appsv1.DeploymentStrategy{
			Type: appsv1.RollingUpdateDeploymentStrategyType,
			// A new pod is ready before an old one stops.
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0))},
		},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
			Spec:       podSpec(u, s, selector),
		},
	}}

	if d.PodDisruptionBudget.Enabled != nil && *d.PodDisruptionBudget.Enabled {
		tm, om = meta("PodDisruptionBudget", "policy/v1")
		o.PodDisruptionBudget = &policyv1.PodDisruptionBudget{TypeMeta: tm, ObjectMeta: om, Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr(*d.PodDisruptionBudget.MaxUnavailable),
			Selector:       &metav1.LabelSelector{MatchLabels: selector},
			// A pod that is not ready serves nothing: never let it block
			// a drain.
			UnhealthyPodEvictionPolicy: ptr(policyv1.AlwaysAllow),
		}}
	}
	return o
}

// podSpec is the proxy pod: `torii serve` scoped to the unit's Ingresses,
// under the restricted Pod Security Standard.
func podSpec(u *Unit, s Settings, selector map[string]string) corev1.PodSpec {
	d := u.Config.Spec.Dedicated
	args := []string{
		"serve",
		"--http-addr=:8080",
		"--https-addr=:8443",
		"--admin-addr=:10254",
		"--controller-name=" + s.ControllerName,
		"--only-ingress-class=" + u.Class,
	}
	for _, name := range memberNames(u) {
		args = append(args, "--only-ingress="+u.Namespace+"/"+name)
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("admin")}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: failures,
		}
	}
	var resources corev1.ResourceRequirements
	if d.Resources != nil {
		resources = *d.Resources.DeepCopy()
	}
	spread := corev1.TopologySpreadConstraint{
		MaxSkew:           1,
		TopologyKey:       corev1.LabelHostname,
		WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector:     &metav1.LabelSelector{MatchLabels: selector},
		MatchLabelKeys:    []string{appsv1.DefaultDeploymentUniqueLabelKey},
	}
	var tolerations []corev1.Toleration
	for _, t := range d.Tolerations {
		tolerations = append(tolerations, *t.DeepCopy())
	}
	return corev1.PodSpec{
		ServiceAccountName:            u.Name,
		AutomountServiceAccountToken:  ptr(true),
		EnableServiceLinks:            ptr(false),
		TerminationGracePeriodSeconds: ptr(terminationGrace),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr(true),
			RunAsUser:      ptr(nonRoot),
			RunAsGroup:     ptr(nonRoot),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		NodeSelector:              maps.Clone(d.NodeSelector),
		Tolerations:               tolerations,
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{spread},
		Containers: []corev1.Container{{
			Name:            "torii",
			Image:           s.Image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Args:            args,
			Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: portHTTP, Protocol: corev1.ProtocolTCP},
				{Name: "https", ContainerPort: portHTTPS, Protocol: corev1.ProtocolTCP},
				{Name: "admin", ContainerPort: portAdmin, Protocol: corev1.ProtocolTCP},
			},
			LivenessProbe:  probe("/healthz", 10, 3),
			ReadinessProbe: probe("/readyz", 5, 2),
			Resources:      resources,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr(false),
				Privileged:               ptr(false),
				ReadOnlyRootFilesystem:   ptr(true),
				RunAsNonRoot:             ptr(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

// childLabels are on every child (and the pods).
func childLabels(u *Unit, s Settings) map[string]string {
	return map[string]string{
		LabelName:       "torii",
		LabelComponent:  componentValue,
		LabelInstance:   u.Name,
		LabelManagedBy:  managedByValue,
		LabelController: ControllerHash(s.ControllerName),
	}
}

// selectorLabels select one unit's pods.
func selectorLabels(u *Unit) map[string]string {
	return map[string]string{LabelComponent: componentValue, LabelInstance: u.Name}
}

// ownerRefs make every member Ingress an owner, so the garbage collector
// deletes the children with the last member. The first member is the
// controller (an object has at most one).
func ownerRefs(u *Unit) []metav1.OwnerReference {
	refs := make([]metav1.OwnerReference, 0, len(u.Ingresses))
	for i, ing := range u.Ingresses {
		refs = append(refs, metav1.OwnerReference{
			APIVersion:         "networking.k8s.io/v1",
			Kind:               "Ingress",
			Name:               ing.Name,
			UID:                ing.UID,
			Controller:         ptr(i == 0),
			BlockOwnerDeletion: ptr(true),
		})
	}
	return refs
}

func memberNames(u *Unit) []string {
	out := make([]string, len(u.Ingresses))
	for i, ing := range u.Ingresses {
		out[i] = ing.Name
	}
	return out
}

func ptr[T any](v T) *T { return &v }

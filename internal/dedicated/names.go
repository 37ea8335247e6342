package dedicated

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/torii-dev/torii/internal/translate"
)

// Labels and annotations on every object dedicated mode creates.
const (
	// LabelManagedBy marks the children; with LabelController it is the
	// label selector of the reconciler's informers.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	managedByValue = "torii"
	// LabelController carries a hash of the controller name, so that two
	// Torii controllers in one cluster (different --controller-name) never
	// adopt or delete each other's children.
	LabelController = "torii.dev/controller"
	// LabelComponent and LabelInstance select one unit's pods.
	LabelComponent = "app.kubernetes.io/component"
	componentValue = "dedicated-proxy"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelName      = "app.kubernetes.io/name"

	// AnnotationGroup on an Ingress puts it into a group: the Ingresses of
	// one namespace and class with the same group share one dedicated load
	// balancer.
	AnnotationGroup = translate.AnnotationGroup
	// AnnotationIngresses on the children lists the Ingresses they serve
	// (comma-separated names), for people reading them.
	AnnotationIngresses = "torii.dev/ingresses"
	// AnnotationClass on the children names the IngressClass.
	AnnotationClass = "torii.dev/ingress-class"
)

// maxName is the longest object name derived here: a DNS-1035 label, as
// Service names must be.
const maxName = 63

// hash8 is the first 8 hex digits of the SHA-256 of parts joined by NUL.
func hash8(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:4])
}

// IngressUnitName is the name of the children of the dedicated load balancer
// of one Ingress: "torii-<ingress>-<hash8>", at most 63 characters, a valid
// DNS-1035 label whatever the Ingress name (which may contain dots). The
// hash covers namespace and name, so a truncated name stays unique.
func IngressUnitName(namespace, ingress string) string {
	return unitName(ingress, hash8("ingress", namespace, ingress))
}

// GroupUnitName is the name of the children of a group's load balancer:
// "torii-<group>-<hash8>", the hash covering namespace, class and group.
func GroupUnitName(namespace, class, group string) string {
	return unitName(group, hash8("group", namespace, class, group))
}

// ControllerHash is the LabelController value for a controller name.
func ControllerHash(controllerName string) string { return hash8("controller", controllerName) }

func unitName(base, hash string) string {
	const prefix = "torii-"
	room := maxName - len(prefix) - 1 - len(hash)
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		if b.Len() == room {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		return prefix + hash
	}
	return prefix + s + "-" + hash
}

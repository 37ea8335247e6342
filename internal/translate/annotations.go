package translate

import (
	"fmt"
	"slices"
	"strings"
)

// Annotation prefixes Torii knows.
const (
	// ToriiAnnotationPrefix prefixes Torii's own annotations; a key under
	// it that Torii does not define (see toriiAnnotation) is an Error.
	ToriiAnnotationPrefix = "torii.dev/"
	// NginxAnnotationPrefix prefixes ingress-nginx's annotations, which
	// Torii does not interpret yet: access-control ones are Errors (see
	// nginxAccessControl), the others Warnings.
	NginxAnnotationPrefix = "nginx.ingress.kubernetes.io/"
)

// Reasons for annotation problems.
const (
	// reasonUnknownAnnotation is an Error: a Torii annotation that Torii
	// cannot honour (a typo, or one from a newer release) would otherwise be
	// ignored silently, and an ignored annotation may be the one that was
	// meant to restrict the route.
	reasonUnknownAnnotation = "UnknownAnnotation"
	// reasonUnsupportedAnnotation is a Warning: ingress-nginx annotations
	// are not interpreted yet; the Ingress is served without them. That
	// includes the rate limits (limit-rps, limit-rpm, limit-connections):
	// they protect capacity, not secrets, and refusing the whole route
	// would be a bigger outage than serving it without a limit.
	reasonUnsupportedAnnotation = "UnsupportedAnnotation"
	// reasonUnsupportedAccessControl is an Error: an ingress-nginx
	// annotation that restricts who may reach the route (authentication,
	// client certificates, source ranges, satisfy, the WAF). Serving the
	// Ingress without it would expose what it was meant to protect, so
	// Torii fails closed until it implements the annotation.
	reasonUnsupportedAccessControl = "UnsupportedAccessControlAnnotation"
)

// nginxAccessControl reports whether name (without NginxAnnotationPrefix)
// is an ingress-nginx annotation that restricts who may reach the route.
// Rate limits are not among them: see reasonUnsupportedAnnotation.
func nginxAccessControl(name string) bool {
	if strings.HasPrefix(name, "auth-") || strings.HasPrefix(name, "modsecurity-") {
		return true
	}
	switch name {
	case "whitelist-source-range", "allowlist-source-range", "denylist-source-range",
		"satisfy", "enable-modsecurity", "enable-owasp-core-rules":
		return true
	}
	return false
}

// maxListedAnnotations bounds how many ignored annotations one message
// names.
const maxListedAnnotations = 5

// toriiAnnotation reports whether key (with ToriiAnnotationPrefix) is an
// annotation Torii defines. Each one that affects routing must come with a
// typed parser that rejects what it cannot represent exactly;
// AnnotationGroup only groups Ingresses in dedicated mode.
func toriiAnnotation(key string) bool { return key == AnnotationGroup }

// checkAnnotations reports the annotations of an Ingress that Torii does not
// honour. Annotation values never reach the model: only keys are looked at
// here, and only keys (quoted) appear in messages.
func checkAnnotations(annotations map[string]string, fail func(reason, format string, args ...any), warn func(reason, msg string)) {
	if len(annotations) == 0 {
		return
	}
	var unknown, access, nginx []string
	for k := range annotations {
		switch {
		case strings.HasPrefix(k, ToriiAnnotationPrefix):
			if !toriiAnnotation(k) {
				unknown = append(unknown, k)
			}
		case strings.HasPrefix(k, NginxAnnotationPrefix):
			if name := strings.TrimPrefix(k, NginxAnnotationPrefix); nginxAccessControl(name) {
				access = append(access, k)
			} else {
				nginx = append(nginx, name)
			}
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		fail(reasonUnknownAnnotation, "metadata.annotations[%s]: unknown Torii annotation; an Ingress with an annotation Torii cannot honour is not served", quote(k))
	}
	slices.Sort(access)
	for _, k := range access {
		fail(reasonUnsupportedAccessControl, "metadata.annotations[%s]: access control Torii does not implement yet; the Ingress is not served rather than served without it", quote(k))
	}
	if len(nginx) == 0 {
		return
	}
	slices.Sort(nginx)
	names := make([]string, 0, min(len(nginx), maxListedAnnotations))
	for _, k := range nginx[:min(len(nginx), maxListedAnnotations)] {
		names = append(names, quote(k))
	}
	list := strings.Join(names, ", ")
	if n := len(nginx) - len(names); n > 0 {
		list += fmt.Sprintf(" and %d more", n)
	}
	warn(reasonUnsupportedAnnotation, fmt.Sprintf("metadata.annotations: %s annotations are not supported yet and are ignored: %s", strings.TrimSuffix(NginxAnnotationPrefix, "/"), list))
}

package conformance

// DefaultBackendSpec is the spec of the default-backend and load-balancing
// Ingresses (YAML, from "spec:"): a Torii Ingress without rules whose
// default backend is port 8080 of the Service echo-service, after the
// upstream suite's default_backend and load_balancing features.
const DefaultBackendSpec = `spec:
  ingressClassName: torii
  defaultBackend:
    service:
      name: echo-service
      port:
        number: 8080
`

// HostRulesSpec is the spec of the host-rules Ingress (YAML, from "spec:"),
// after the upstream suite's host_rules feature: TLS for foo.bar.com from
// the Secret conformance-tls, *.foo.com routed to wildcard-foo-com (port
// 8080) and foo.bar.com to foo-bar-com (port "http").
const HostRulesSpec = `spec:
  ingressClassName: torii
  tls:
    - hosts:
        - foo.bar.com
      secretName: conformance-tls
  rules:
    - host: "*.foo.com"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: wildcard-foo-com
                port:
                  number: 8080
    - host: foo.bar.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: foo-bar-com
                port:
                  name: http
`

// IngressClassSpec is the spec of the test-ingress-class Ingress (YAML,
// from "spec:"), after the upstream suite's ingress_class feature: an
// Ingress of another class (some-invalid-class-name) that Torii must
// ignore, routing host ingress-class to ingress-class-prefix.
const IngressClassSpec = `spec:
  ingressClassName: some-invalid-class-name
  rules:
    - host: "ingress-class"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: ingress-class-prefix, port: {number: 8080}}}
`

// DefaultBackendCase is one request against DefaultBackendSpec, which
// echo-service must answer whatever its method, Host ("" leaves the Host
// header to the client) and path.
type DefaultBackendCase struct{ Method, Host, Path string }

// DefaultBackendCases are the requests both conformance tests send to the
// default-backend Ingress.
var DefaultBackendCases = []DefaultBackendCase{
	{"GET", "my-host", "/"},
	{"GET", "my-host", "/sub-path"},
	{"POST", "some-host", "/"},
	{"PUT", "", "/resource"},
	{"DELETE", "some-host", "/resource"},
	{"PATCH", "my-host", "/resource"},
}

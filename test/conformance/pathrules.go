package conformance

// PathRulesBackends names the backends (Services) PathRulesSpec routes to.
var PathRulesBackends = []string{"foo-exact", "foo-prefix", "aaa-slash-bbb-prefix", "aaa-prefix", "aaa-slash-bbb-slash-prefix", "foo-slash-exact"}

// PathRulesSpec is the spec of the path-rules Ingress (YAML, from "spec:"),
// after the upstream Ingress conformance suite's path_rules feature.
const PathRulesSpec = `spec:
  ingressClassName: torii
  rules:
    - host: "exact-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Exact
            backend: {service: {name: foo-exact, port: {number: 8080}}}
    - host: "prefix-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Prefix
            backend: {service: {name: foo-prefix, port: {number: 8080}}}
          - path: /aaa/bbb
            pathType: Prefix
            backend: {service: {name: aaa-slash-bbb-prefix, port: {number: 8080}}}
          - path: /aaa
            pathType: Prefix
            backend: {service: {name: aaa-prefix, port: {number: 8080}}}
    - host: "mixed-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Prefix
            backend: {service: {name: foo-prefix, port: {number: 8080}}}
          - path: /foo
            pathType: Exact
            backend: {service: {name: foo-exact, port: {number: 8080}}}
    - host: "trailing-slash-path-rules"
      http:
        paths:
          - path: /aaa/bbb/
            pathType: Prefix
            backend: {service: {name: aaa-slash-bbb-slash-prefix, port: {number: 8080}}}
          - path: /foo/
            pathType: Exact
            backend: {service: {name: foo-slash-exact, port: {number: 8080}}}
`

// PathRulesCase is one request against PathRulesSpec: Want is the backend
// that must answer, or "" for Torii's own 404.
type PathRulesCase struct{ Host, Path, Want string }

// PathRulesCases are the requests both conformance tests send.
var PathRulesCases = []PathRulesCase{
	{"exact-path-rules", "/foo", "foo-exact"},
	{"exact-path-rules", "/foo/", ""},
	{"exact-path-rules", "/FOO", ""},
	{"exact-path-rules", "/bar", ""},
	{"prefix-path-rules", "/foo", "foo-prefix"},
	{"prefix-path-rules", "/foo/", "foo-prefix"},
	{"prefix-path-rules", "/FOO", ""},
	{"prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix"},
	{"prefix-path-rules", "/aaa/bbb/ccc", "aaa-slash-bbb-prefix"},
	{"prefix-path-rules", "/aaa/ccc", "aaa-prefix"},
	{"prefix-path-rules", "/aaaccc", ""},
	{"mixed-path-rules", "/foo", "foo-exact"},
	{"trailing-slash-path-rules", "/aaa/bbb", "aaa-slash-bbb-slash-prefix"},
	{"trailing-slash-path-rules", "/aaa/bbb/", "aaa-slash-bbb-slash-prefix"},
	{"trailing-slash-path-rules", "/foo", ""},
}

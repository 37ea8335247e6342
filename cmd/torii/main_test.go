package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const checkClass = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: torii
spec:
  controller: torii.dev/ingress-controller
`

const checkService = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
    - name: http
      port: 80
`

// checkIngress returns an Ingress of class torii in namespace shop; an
// empty created leaves creationTimestamp out.
func checkIngress(name, created, path, pathType, service string) string {
	ts := ""
	if created != "" {
		ts = "  creationTimestamp: \"" + created + "\"\n"
	}
	return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ` + name + `
  namespace: shop
` + ts + `spec:
  ingressClassName: torii
  rules:
    - host: shop.example
      http:
        paths:
          - path: ` + path + `
            pathType: ` + pathType + `
            backend:
              service:
                name: ` + service + `
                port:
                  number: 80
`
}

func writeManifests(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheckValidDirectory(t *testing.T) {
	dir := writeManifests(t, map[string]string{
		"class.yaml":   checkClass,
		"service.yaml": checkService,
		"ingress.yaml": checkIngress("web", "2024-01-01T00:00:00Z", "/", "Prefix", "web"),
	})
	code, stdout, stderr := runCLI("check", dir)
	if code != 0 || stdout != "" {
		t.Fatalf("check of valid manifests: exit %d, stdout %q, stderr %q; want exit 0 and no problems", code, stdout, stderr)
	}
	// The input defines the class: nothing is assumed or skipped.
	if want := "torii check: 3 file(s), 1 Ingress(es) checked, 0 skipped, no invalid objects\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

func TestCheckReportsInvalidObjects(t *testing.T) {
	dir := writeManifests(t, map[string]string{
		"class.yaml":   checkClass,
		"service.yaml": checkService,
		"a-old.yaml":   checkIngress("old", "2024-01-01T00:00:00Z", "/api", "Prefix", "web"),
		// Same host, path and type, created later: loses the conflict.
		"b-new.yaml": checkIngress("new", "2024-06-01T00:00:00Z", "/api", "Prefix", "web"),
		// A path that is not valid for its type.
		"c-bad.yaml": checkIngress("bad", "2024-01-01T00:00:00Z", "/a/../b", "Exact", "web"),
		// A Service that does not exist: a warning, not an invalid object.
		"d-missing.yaml": checkIngress("missing", "2024-01-01T00:00:00Z", "/m", "Exact", "nope"),
	})
	code, stdout, _ := runCLI("check", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1; output:\n%s", code, stdout)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := []string{"Ingress shop/bad: ", "Ingress shop/missing: warning: ", "Ingress shop/new: "}
	if len(lines) != len(want) {
		t.Fatalf("got %d problem lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, prefix := range want {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], prefix)
		}
	}
	if !strings.Contains(lines[2], "shop/old") {
		t.Errorf("conflict line %q does not name the winning Ingress shop/old", lines[2])
	}
	if !strings.Contains(lines[1], `"nope"`) {
		t.Errorf("missing-service line %q does not name the Service", lines[1])
	}
}

func TestCheckWarningsAloneExitZero(t *testing.T) {
	file := filepath.Join(writeManifests(t, map[string]string{
		"all.yaml": checkClass + "---\n" + checkIngress("missing", "2024-01-01T00:00:00Z", "/", "Prefix", "nope"),
	}), "all.yaml")
	code, stdout, _ := runCLI("check", "-f", file)
	if code != 0 || !strings.HasPrefix(stdout, "Ingress shop/missing: warning: ") {
		t.Fatalf("exit %d, output %q; want 0 with one warning line", code, stdout)
	}
}

func TestCheckUnparsableFileFails(t *testing.T) {
	dir := writeManifests(t, map[string]string{"broken.yaml": "kind: Ingress\nmetadata: [\n"})
	code, stdout, _ := runCLI("check", dir)
	if code != 1 || !strings.Contains(stdout, "broken.yaml") {
		t.Fatalf("exit %d, output %q; want 1 naming broken.yaml", code, stdout)
	}
}

func TestCheckForeignClassIsIgnored(t *testing.T) {
	dir := writeManifests(t, map[string]string{
		"ingress.yaml": strings.Replace(checkIngress("theirs", "2024-01-01T00:00:00Z", "/a/../b", "Exact", "nope"), "ingressClassName: torii", "ingressClassName: nginx", 1),
	})
	code, stdout, stderr := runCLI("check", dir)
	if code != 0 || stdout != "" {
		t.Fatalf("foreign-class Ingress was checked: exit %d, output %q", code, stdout)
	}
	if !strings.Contains(stderr, "skipped Ingress shop/theirs: class \"nginx\" is not Torii's\n") {
		t.Errorf("stderr %q does not say shop/theirs was skipped", stderr)
	}
	if !strings.Contains(stderr, "0 Ingress(es) checked, 1 skipped") {
		t.Errorf("stderr %q: summary does not count the skipped Ingress", stderr)
	}
}

func TestCheckAssumesIngressClass(t *testing.T) {
	// App manifests name the class but do not define it: the cluster does.
	dir := writeManifests(t, map[string]string{
		"service.yaml": checkService,
		"ingress.yaml": checkIngress("bad", "", "/a/../b", "Exact", "web"),
	})
	code, stdout, stderr := runCLI("check", dir)
	if code != 1 || !strings.HasPrefix(stdout, "Ingress shop/bad: ") || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q; want 1 with the invalid path of shop/bad", code, stdout)
	}
	const note = "torii check: no IngressClass \"torii\" in the input; assuming it is Torii's\n"
	if strings.Count(stderr, note) != 1 {
		t.Errorf("stderr %q does not say once that the class is assumed", stderr)
	}

	// The assumed class follows the flags.
	edge := strings.Replace(checkIngress("edge", "", "/", "Prefix", "web"), "ingressClassName: torii", "ingressClassName: edge", 1)
	file := filepath.Join(writeManifests(t, map[string]string{"all.yaml": checkService + "---\n" + edge}), "all.yaml")
	code, stdout, stderr = runCLI("check", "--ingress-class=edge", "--controller-name=example.com/edge", "-f", file)
	if code != 0 || stdout != "" || !strings.Contains(stderr, `no IngressClass "edge" in the input`) || !strings.Contains(stderr, "1 Ingress(es) checked, 0 skipped") {
		t.Errorf("--ingress-class=edge: exit %d, stdout %q, stderr %q; want 0 with shop/edge checked", code, stdout, stderr)
	}
}

func TestCheckForeignIngressClassInInput(t *testing.T) {
	// The input defines class torii for another controller: nothing is
	// assumed, and the Ingress naming it is not Torii's.
	dir := writeManifests(t, map[string]string{
		"class.yaml":   strings.Replace(checkClass, "torii.dev/ingress-controller", "k8s.io/ingress-nginx", 1),
		"ingress.yaml": checkIngress("bad", "", "/a/../b", "Exact", "web"),
	})
	code, stdout, stderr := runCLI("check", dir)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 0 with nothing checked", code, stdout)
	}
	if strings.Contains(stderr, "assuming") {
		t.Errorf("stderr %q: a class was assumed although the input defines one", stderr)
	}
	if !strings.Contains(stderr, "skipped Ingress shop/bad: class \"torii\" is not Torii's\n") {
		t.Errorf("stderr %q does not say shop/bad was skipped", stderr)
	}
}

func TestCheckIngressWithoutClassSkipped(t *testing.T) {
	dir := writeManifests(t, map[string]string{
		"ingress.yaml": strings.Replace(checkIngress("plain", "", "/a/../b", "Exact", "web"), "  ingressClassName: torii\n", "", 1),
	})
	code, stdout, stderr := runCLI("check", dir)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "skipped Ingress shop/plain: it names no class") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 with shop/plain skipped", code, stdout, stderr)
	}
	code, stdout, _ = runCLI("check", "--watch-ingress-without-class", dir)
	if code != 1 || !strings.HasPrefix(stdout, "Ingress shop/plain: ") {
		t.Errorf("--watch-ingress-without-class: exit %d, stdout %q; want 1 with shop/plain checked", code, stdout)
	}
}

func TestCheckRemovedIngressVersions(t *testing.T) {
	const (
		v1beta1 = `apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: legacy, namespace: shop}
spec:
  backend: {serviceName: web, servicePort: 80}
`
		extensions = `apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: ancient}
`
		deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
`
	)
	dir := writeManifests(t, map[string]string{
		"a.yaml": v1beta1 + "---\n" + deployment,
		"b.yaml": extensions + "---\n" + deployment + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\n",
		"c.yaml": checkIngress("bad", "", "/a/../b", "Exact", "web"),
	})
	code, stdout, stderr := runCLI("check", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout:\n%s", code, stdout)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d problem lines, want 3:\n%s", len(lines), stdout)
	}
	// Sorted by object, merged with the translator's problems; an Ingress
	// without a namespace is named as if defaulted.
	if want := "Ingress default/ancient: apiVersion extensions/v1beta1 is no longer served; use networking.k8s.io/v1"; lines[0] != want {
		t.Errorf("line 0 = %q, want %q", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "Ingress shop/bad: ") {
		t.Errorf("line 1 = %q, want the problem of shop/bad", lines[1])
	}
	if want := "Ingress shop/legacy: apiVersion networking.k8s.io/v1beta1 is no longer served; use networking.k8s.io/v1"; lines[2] != want {
		t.Errorf("line 2 = %q, want %q", lines[2], want)
	}
	// Other kinds are listed once, in one line, the Deployment repeated in
	// two files once; the old Ingresses are problems, not ignored kinds.
	const ignored = "torii check: ignored 2 object(s) of kinds Torii does not use: apps/v1 Deployment shop/web, v1 ConfigMap shop/cfg\n"
	if strings.Count(stderr, "ignored") != 1 || !strings.Contains(stderr, ignored) {
		t.Errorf("stderr %q, want the line %q", stderr, ignored)
	}

	// An old Ingress alone fails the check too.
	file := filepath.Join(writeManifests(t, map[string]string{"old.yaml": v1beta1}), "old.yaml")
	if code, stdout, _ := runCLI("check", "-f", file); code != 1 || !strings.HasPrefix(stdout, "Ingress shop/legacy: apiVersion networking.k8s.io/v1beta1") {
		t.Errorf("v1beta1 alone: exit %d, stdout %q; want 1 with its problem", code, stdout)
	}
}

func TestCheckConflictWithoutTimestampsIsDeterministic(t *testing.T) {
	// Neither Ingress has a creationTimestamp, and the file order favours
	// zeta: the translator settles the tie by namespace/name, so alpha wins,
	// as it does in `torii serve` whatever its history.
	dir := writeManifests(t, map[string]string{
		"class.yaml":   checkClass,
		"service.yaml": checkService,
		"a.yaml":       checkIngress("zeta", "", "/api", "Prefix", "web"),
		"b.yaml":       checkIngress("alpha", "", "/api", "Prefix", "web"),
	})
	for range 3 {
		code, stdout, _ := runCLI("check", dir)
		if code != 1 || !strings.HasPrefix(stdout, "Ingress shop/zeta: ") || !strings.Contains(stdout, "shop/alpha") || strings.Count(stdout, "\n") != 1 {
			t.Fatalf("exit %d, stdout %q; want 1 with shop/zeta losing to shop/alpha", code, stdout)
		}
	}
}

func TestUsageAndVersion(t *testing.T) {
	if code, _, stderr := runCLI(); code != 2 || !strings.Contains(stderr, "Usage") {
		t.Errorf("no args: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCLI("bogus"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code, stdout, _ := runCLI("version"); code != 0 || !strings.HasPrefix(stdout, "torii ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr := runCLI("serve"); code != 1 || !strings.Contains(stderr, "--manifests") {
		t.Errorf("serve without --manifests: exit %d, stderr %q", code, stderr)
	}
}

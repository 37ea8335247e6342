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

func checkIngress(name, created, path, pathType, service string) string {
	return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ` + name + `
  namespace: shop
  creationTimestamp: "` + created + `"
spec:
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
	code, stdout, _ := runCLI("check", dir)
	if code != 0 || stdout != "" {
		t.Fatalf("foreign-class Ingress was checked: exit %d, output %q", code, stdout)
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

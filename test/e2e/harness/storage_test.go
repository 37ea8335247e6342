package harness

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// The fixture is the etcd value kube-apiserver v1.36.3 stored for an
// EndpointSlice created through the API (addresses 10.0.0.1 and 10.0.0.2,
// port protocol left to defaulting, managedFields included).
const storedFixture = "testdata/endpointslice-kube-apiserver-v1.36.3.pb"

func TestStorageEncodingMatchesAPIServer(t *testing.T) {
	stored, err := os.ReadFile(storedFixture)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(stored, []byte("k8s\x00")) {
		t.Fatalf("fixture lacks the protobuf storage prefix: %q", stored[:8])
	}
	es, err := decodeEndpointSlice(stored)
	if err != nil {
		t.Fatal(err)
	}
	if es.Namespace != "fixture" || es.Name != "web-1" || es.Generation != 1 || len(es.ManagedFields) == 0 {
		t.Errorf("decoded metadata: %+v", es.ObjectMeta)
	}
	var addrs []string
	for _, ep := range es.Endpoints {
		addrs = append(addrs, ep.Addresses...)
	}
	if !slices.Equal(addrs, []string{"10.0.0.1", "10.0.0.2"}) || es.Endpoints[0].NodeName == nil || *es.Endpoints[0].NodeName != "node-a" {
		t.Errorf("decoded endpoints: %+v", es.Endpoints)
	}
	if p := es.Ports[0]; p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || *p.Port != 8080 {
		t.Errorf("decoded port: %+v", p)
	}
	// Byte for byte: what the harness writes is what the API server writes.
	again, err := encodeEndpointSlice(es)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, stored) {
		t.Errorf("re-encoding differs from the API server's bytes:\n got  %q\n want %q", again, stored)
	}
}

func TestPrepareEndpointSlice(t *testing.T) {
	port := int32(8080)
	in := &discoveryv1.EndpointSlice{
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}}},
	}
	in.Name, in.Namespace, in.ResourceVersion, in.UID = "s", "ns", "42", "ignored"
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)

	created := prepareEndpointSlice(in, nil, now)
	if created.UID == "" || created.UID == "ignored" || created.Generation != 1 || created.ResourceVersion != "" {
		t.Errorf("create: uid %q generation %d rv %q", created.UID, created.Generation, created.ResourceVersion)
	}
	if !created.CreationTimestamp.Time.Equal(now.Truncate(time.Second)) {
		t.Errorf("create: creationTimestamp %v", created.CreationTimestamp)
	}
	if p := created.Ports[0]; p.Name == nil || *p.Name != "" || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
		t.Errorf("create: port defaults %+v", p)
	}
	if in.Ports[0].Protocol != nil || in.ResourceVersion != "42" {
		t.Error("prepareEndpointSlice modified its input")
	}

	// Metadata-only change: same generation; identity kept.
	annotated := in.DeepCopy()
	annotated.Annotations = map[string]string{"a": "b"}
	upd := prepareEndpointSlice(annotated, created, now.Add(time.Hour))
	if upd.UID != created.UID || upd.Generation != 1 || !upd.CreationTimestamp.Equal(&created.CreationTimestamp) {
		t.Errorf("annotation update: uid %q generation %d created %v", upd.UID, upd.Generation, upd.CreationTimestamp)
	}
	// Endpoint or label change: next generation.
	moved := in.DeepCopy()
	moved.Endpoints[0].Addresses = []string{"127.0.0.2"}
	if g := prepareEndpointSlice(moved, created, now).Generation; g != 2 {
		t.Errorf("endpoint update: generation %d, want 2", g)
	}
	relabeled := in.DeepCopy()
	relabeled.Labels = map[string]string{"x": "y"}
	if g := prepareEndpointSlice(relabeled, created, now).Generation; g != 2 {
		t.Errorf("label update: generation %d, want 2", g)
	}
}

// TestStampInputsMatchScript keeps the harness's staleness check and
// hack/e2e-tools.sh hashing the same files in the same order.
func TestStampInputsMatchScript(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(root + "/hack/e2e-tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^inputs=\(([^)]*)\)`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no inputs=(...) line in hack/e2e-tools.sh")
	}
	if got := strings.Fields(string(m[1])); !slices.Equal(got, stampInputs) {
		t.Errorf("hack/e2e-tools.sh hashes %v, the harness %v", got, stampInputs)
	}
}

func TestTailFile(t *testing.T) {
	p := t.TempDir() + "/log"
	if err := os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tailFile(p, 2); got != "c\nd" {
		t.Errorf("tailFile = %q", got)
	}
	if got := tailFile(p, 10); got != "a\nb\nc\nd" {
		t.Errorf("tailFile = %q", got)
	}
}

func TestMissingBinariesNameTheBuildScript(t *testing.T) {
	_, err := findBinaries(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "hack/e2e-tools.sh") {
		t.Fatalf("findBinaries on an empty dir: %v", err)
	}
}

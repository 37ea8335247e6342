package translate

import (
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/torii-dev/torii/internal/store"
)

// BenchmarkTranslate measures Build on clusters of n Ingresses, each with its
// Service and an EndpointSlice of three endpoints, three paths, and every
// tenth with TLS from a Secret of its own.
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		objs := benchObjects(b, n)
		b.Run(fmt.Sprintf("ingresses=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res := Build(testConfig, objs)
				if len(res.Problems) != 0 {
					b.Fatalf("unexpected problems: %v", res.Problems[:1])
				}
			}
		})
	}
}

func benchObjects(b *testing.B, n int) *store.Objects {
	b.Helper()
	crt, err := os.ReadFile("testdata/certs/wildcard.crt")
	if err != nil {
		b.Fatal(err)
	}
	key, err := os.ReadFile("testdata/certs/wildcard.key")
	if err != nil {
		b.Fatal(err)
	}
	objs := &store.Objects{IngressClasses: []*networkingv1.IngressClass{toriiClass(testConfig.ControllerName)}}
	prefix, exact := networkingv1.PathTypePrefix, networkingv1.PathTypeExact
	class := "torii"
	for i := range n {
		ns := fmt.Sprintf("team-%d", i%100)
		name := fmt.Sprintf("app-%d", i)
		host := name + ".example.com"
		backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
			Name: name, Port: networkingv1.ServiceBackendPort{Name: "http"},
		}}
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: networkingv1.IngressSpec{
				IngressClassName: &class,
				Rules: []networkingv1.IngressRule{{
					Host: host,
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
						Paths: []networkingv1.HTTPIngressPath{
							{Path: "/", PathType: &prefix, Backend: backend},
							{Path: "/api/v1", PathType: &prefix, Backend: backend},
							{Path: "/healthz", PathType: &exact, Backend: backend},
						},
					}},
				}},
			},
		}
		if i%10 == 0 {
			secret := name + "-tls"
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: secret}}
			objs.Secrets = append(objs.Secrets, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secret},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key},
			})
		}
		objs.Ingresses = append(objs.Ingresses, ing)
		objs.Services = append(objs.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})
		port, portName := int32(8080), "http"
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: name + "-abcde",
				Labels: map[string]string{labelServiceName: name},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		for j := range 3 {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d", i>>8&255, i&255, j+1)},
			})
		}
		objs.EndpointSlices = append(objs.EndpointSlices, slice)
	}
	return objs
}

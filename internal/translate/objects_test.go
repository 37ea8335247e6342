package translate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/torii-dev/torii/internal/store"
)

// decodeObjects reads multi-document Kubernetes YAML into a store view, in
// document order. With strict set, a document that does not decode, or
// decodes to a kind routing does not use, is an error; otherwise it is
// skipped, which is what the fuzzer wants.
func decodeObjects(data []byte, strict bool) (*store.Objects, error) {
	objs := &store.Objects{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			if strict {
				return nil, fmt.Errorf("document %d: %w", i, err)
			}
			return objs, nil
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			if strict {
				return nil, fmt.Errorf("document %d: %w", i, err)
			}
			continue
		}
		switch o := obj.(type) {
		case *networkingv1.IngressClass:
			objs.IngressClasses = append(objs.IngressClasses, o)
		case *networkingv1.Ingress:
			objs.Ingresses = append(objs.Ingresses, o)
		case *corev1.Service:
			objs.Services = append(objs.Services, o)
		case *discoveryv1.EndpointSlice:
			objs.EndpointSlices = append(objs.EndpointSlices, o)
		case *corev1.Secret:
			// Fold stringData into data as the API server does on write,
			// so fixtures can hold readable PEM.
			if len(o.StringData) > 0 && o.Data == nil {
				o.Data = make(map[string][]byte, len(o.StringData))
			}
			for k, v := range o.StringData {
				o.Data[k] = []byte(v)
			}
			o.StringData = nil
			objs.Secrets = append(objs.Secrets, o)
		default:
			if strict {
				return nil, fmt.Errorf("document %d: unexpected %T", i, obj)
			}
		}
	}
}

// reversed returns a view of objs with every list in reverse order, to check
// that Build does not depend on input order.
func reversed(objs *store.Objects) *store.Objects {
	r := &store.Objects{
		IngressClasses: slices.Clone(objs.IngressClasses),
		Ingresses:      slices.Clone(objs.Ingresses),
		Services:       slices.Clone(objs.Services),
		EndpointSlices: slices.Clone(objs.EndpointSlices),
		Secrets:        slices.Clone(objs.Secrets),
	}
	slices.Reverse(r.IngressClasses)
	slices.Reverse(r.Ingresses)
	slices.Reverse(r.Services)
	slices.Reverse(r.EndpointSlices)
	slices.Reverse(r.Secrets)
	return r
}

// deepCopy copies every object of objs, to detect mutation by Build.
func deepCopy(objs *store.Objects) *store.Objects {
	c := &store.Objects{}
	for _, o := range objs.IngressClasses {
		c.IngressClasses = append(c.IngressClasses, o.DeepCopy())
	}
	for _, o := range objs.Ingresses {
		c.Ingresses = append(c.Ingresses, o.DeepCopy())
	}
	for _, o := range objs.Services {
		c.Services = append(c.Services, o.DeepCopy())
	}
	for _, o := range objs.EndpointSlices {
		c.EndpointSlices = append(c.EndpointSlices, o.DeepCopy())
	}
	for _, o := range objs.Secrets {
		c.Secrets = append(c.Secrets, o.DeepCopy())
	}
	return c
}

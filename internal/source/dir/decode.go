package dir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/torii-dev/torii/internal/store"
)

// maxListDepth bounds how deeply List kinds may nest, so that a crafted
// manifest cannot drive unbounded recursion.
const maxListDepth = 4

// Manifest is the decoded content of one file.
type Manifest struct {
	// Objects holds the kinds Torii uses, each slice sorted by
	// namespace/name.
	Objects store.Objects
	// Ignored describes, in file order, the documents of kinds Torii does
	// not use.
	Ignored []Ignored
}

// Ignored describes a document of a kind Torii does not use, such as a
// Deployment or an Ingress of an API version other than
// networking.k8s.io/v1. Its fields are as written: Namespace is empty when
// the manifest sets none (it is not defaulted, since whether the kind is
// namespaced is unknown), and Name is empty when missing.
type Ignored struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
}

// String returns "apiVersion Kind namespace/name", such as
// "apps/v1 Deployment shop/api"; without a namespace only the name is
// shown, and a missing name shows as "(unnamed)".
func (o Ignored) String() string {
	name := o.Name
	if name == "" {
		name = "(unnamed)"
	}
	if o.Namespace != "" {
		name = o.Namespace + "/" + name
	}
	return o.APIVersion + " " + o.Kind + " " + name
}

// Decode parses one multi-document YAML (or JSON) manifest. Documents that
// are empty or only comments are skipped. The kinds Torii uses
// (networking.k8s.io/v1 IngressClass and Ingress, v1 Service,
// discovery.k8s.io/v1 EndpointSlice and v1 Secret) are decoded into the
// Kubernetes API types; List and *List kinds are expanded to their items;
// any other kind is listed in Manifest.Ignored. A document that fails to
// decode, lacks a valid name, or repeats an object already defined in the
// same file makes the whole file an error, so that a half-written file never
// half-applies.
//
// Decode normalises what an API server would: an empty namespace becomes
// "default" for namespaced kinds (and is cleared for IngressClass), Secret
// stringData is merged into data, an empty Secret type becomes Opaque, and
// managedFields are dropped. Creation timestamps are left as written.
func Decode(data []byte) (Manifest, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return Manifest{}, err
	}
	d := decoder{
		deserializer: scheme.Codecs.UniversalDeserializer(),
		seen:         make(map[objectKey]struct{}),
	}
	for _, doc := range docs {
		if err := d.document(doc.json, nil, 0); err != nil {
			return Manifest{}, fmt.Errorf("document %d (from line %d): %w", doc.index, doc.line, err)
		}
	}
	sortObjects(&d.manifest.Objects)
	return d.manifest, nil
}

// document is one non-empty document of a manifest, converted to JSON.
type document struct {
	index int // 1-based position in the file, counting empty documents
	line  int // 1-based line where the document starts
	json  []byte
}

// utf8BOM is the byte-order mark some Windows editors put first.
const utf8BOM = "\xef\xbb\xbf"

// splitDocuments cuts a manifest into documents. A file whose first
// significant byte is '{' is read as a stream of JSON values, which is what
// `kubectl get -o json` and most generators write; anything else is YAML.
func splitDocuments(data []byte) ([]document, error) {
	data = bytes.TrimPrefix(data, []byte(utf8BOM))
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return splitJSON(data)
	}
	return splitYAML(data)
}

func splitJSON(data []byte) ([]document, error) {
	var docs []document
	dec := json.NewDecoder(bytes.NewReader(data))
	// Every successful Decode consumes at least one byte, so the loop is
	// bounded by the length of data; the explicit bound guards regressions.
	for i := 1; i <= len(data)+1; i++ {
		start := int(dec.InputOffset())
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		line := lineAt(data, start)
		if err != nil {
			return nil, fmt.Errorf("document %d (from line %d): invalid JSON: %w", i, line, err)
		}
		if isNull(raw) {
			continue
		}
		docs = append(docs, document{index: i, line: line, json: raw})
	}
	return nil, errors.New("invalid JSON stream")
}

// lineAt returns the 1-based line of the first non-space byte at or after
// offset.
func lineAt(data []byte, offset int) int {
	for offset < len(data) && strings.IndexByte(" \t\r\n", data[offset]) >= 0 {
		offset++
	}
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// splitYAML cuts YAML at document markers. It scans lines itself rather than
// using a generic reader so that errors can name the line a document starts
// on, and so that "--- content" (content on the marker line) is honoured
// instead of being folded into the previous document.
func splitYAML(data []byte) ([]document, error) {
	var docs []document
	index := 1
	docStart, docLine := 0, 1
	emit := func(end int) error {
		chunk := data[docStart:end]
		j, err := yaml.YAMLToJSONStrict(chunk)
		if err != nil {
			return fmt.Errorf("document %d (from line %d): invalid YAML: %w", index, docLine, err)
		}
		if !isNull(j) {
			docs = append(docs, document{index: index, line: docLine, json: j})
		}
		index++
		return nil
	}
	line := 1
	for off := 0; off < len(data); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		text := bytes.TrimRight(data[off:next], "\r\n")
		switch {
		case isMarker(text, "---"):
			if err := emit(off); err != nil {
				return nil, err
			}
			// The rest of the marker line ("--- # c" or "--- {a: b}") is
			// the first line of the new document.
			docStart, docLine = off+3, line
		case isMarker(text, "..."):
			if err := emit(off); err != nil {
				return nil, err
			}
			docStart, docLine = next, line+1
		}
		off = next
	}
	if err := emit(len(data)); err != nil {
		return nil, err
	}
	return docs, nil
}

// isMarker reports whether line is the YAML document marker m ("---" or
// "..."), alone or followed by white space.
func isMarker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	rest := line[len(m):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}

func isNull(j []byte) bool {
	t := bytes.TrimSpace(j)
	return len(t) == 0 || string(t) == "null"
}

// header is the part of every object read before deciding how to decode
// it.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// used reports whether gvk is a kind Torii routes from; everything else is
// ignored.
func used(gvk schema.GroupVersionKind) bool {
	switch gvk {
	case networkingv1.SchemeGroupVersion.WithKind("IngressClass"),
		networkingv1.SchemeGroupVersion.WithKind("Ingress"),
		corev1.SchemeGroupVersion.WithKind("Service"),
		corev1.SchemeGroupVersion.WithKind("Secret"),
		discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"):
		return true
	}
	return false
}

type decoder struct {
	deserializer runtime.Decoder
	manifest     Manifest
	seen         map[objectKey]struct{}
}

// document decodes one JSON object. defaults supplies the kind of items
// of a typed list (for example ServiceList), which may omit their own.
func (d *decoder) document(raw []byte, defaults *schema.GroupVersionKind, depth int) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return errors.New("not a Kubernetes object (expected a mapping)")
	}
	var h header
	if err := kjson.Unmarshal(raw, &h); err != nil {
		return fmt.Errorf("read apiVersion, kind and metadata: %w", err)
	}
	if defaults != nil {
		if h.APIVersion == "" {
			h.APIVersion = defaults.GroupVersion().String()
		}
		if h.Kind == "" {
			h.Kind = defaults.Kind
		}
	}
	if h.APIVersion == "" {
		return errors.New("apiVersion is missing")
	}
	if h.Kind == "" {
		return errors.New("kind is missing")
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return err
	}
	gvk := gv.WithKind(h.Kind)

	if strings.HasSuffix(gvk.Kind, "List") {
		return d.list(raw, gvk, depth)
	}
	if !used(gvk) {
		d.manifest.Ignored = append(d.manifest.Ignored, Ignored{
			APIVersion: h.APIVersion,
			Kind:       h.Kind,
			Namespace:  h.Metadata.Namespace,
			Name:       h.Metadata.Name,
		})
		return nil
	}

	obj, _, err := d.deserializer.Decode(raw, &gvk, nil)
	if err != nil {
		return fmt.Errorf("decode %s %s: %w", h.APIVersion, h.Kind, err)
	}
	key, err := normalise(obj)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Kind, err)
	}
	if _, dup := d.seen[key]; dup {
		// Applying both would leave it to chance which one serves; the
		// author almost certainly made a copy-paste mistake.
		return fmt.Errorf("%s is defined more than once in this file", key)
	}
	d.seen[key] = struct{}{}
	add(&d.manifest.Objects, obj)
	return nil
}

func (d *decoder) list(raw []byte, gvk schema.GroupVersionKind, depth int) error {
	if depth >= maxListDepth {
		return fmt.Errorf("lists nested more than %d deep", maxListDepth)
	}
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := kjson.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("read %s items: %w", gvk.Kind, err)
	}
	// Items of a typed list such as ServiceList may omit apiVersion and
	// kind; a generic List's items must carry their own.
	var defaults *schema.GroupVersionKind
	if gvk.Kind != "List" {
		item := gvk.GroupVersion().WithKind(strings.TrimSuffix(gvk.Kind, "List"))
		defaults = &item
	}
	for i, item := range l.Items {
		if err := d.document(item, defaults, depth+1); err != nil {
			return fmt.Errorf("%s item %d: %w", gvk.Kind, i, err)
		}
	}
	return nil
}

// normalise applies what an API server would have done on admission and
// validates the name and namespace, which end up in readable model IDs.
func normalise(obj runtime.Object) (objectKey, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return objectKey{}, fmt.Errorf("unexpected type %T", obj)
	}
	namespaced := true
	nameCheck := validation.IsDNS1123Subdomain
	switch o := obj.(type) {
	case *networkingv1.IngressClass:
		// Cluster-scoped: a namespace in the manifest means nothing.
		namespaced = false
		o.Namespace = ""
	case *corev1.Service:
		nameCheck = validation.IsDNS1035Label
	case *corev1.Secret:
		if len(o.StringData) > 0 {
			if o.Data == nil {
				o.Data = make(map[string][]byte, len(o.StringData))
			}
			for k, v := range o.StringData {
				o.Data[k] = []byte(v)
			}
			o.StringData = nil
		}
		if o.Type == "" {
			o.Type = corev1.SecretTypeOpaque
		}
	}
	if namespaced && m.GetNamespace() == "" {
		m.SetNamespace(metav1.NamespaceDefault)
	}
	// Only the API server's bookkeeping reads managedFields; dropping them
	// saves memory, as the cluster source does.
	m.SetManagedFields(nil)

	if m.GetName() == "" {
		return objectKey{}, errors.New("metadata.name is missing")
	}
	if errs := nameCheck(m.GetName()); len(errs) > 0 {
		return objectKey{}, fmt.Errorf("invalid metadata.name %q: %s", m.GetName(), strings.Join(errs, "; "))
	}
	if namespaced {
		if errs := validation.IsDNS1123Label(m.GetNamespace()); len(errs) > 0 {
			return objectKey{}, fmt.Errorf("invalid metadata.namespace %q: %s", m.GetNamespace(), strings.Join(errs, "; "))
		}
	}
	return keyOf(obj), nil
}

package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
)

// How EndpointSlices reach the API server here.
//
// The API server rejects endpoint addresses in 127.0.0.0/8 and ::1, and the
// test backends listen on loopback. So the harness writes slices straight
// into etcd, in exactly the form the API server stores them, and the API
// server then lists and watches them like any other object:
//
//   - key: <etcd prefix>/endpointslices/<namespace>/<name>, the API server's
//     key for the discovery.k8s.io endpointslices resource;
//   - value: the storage codec's output for the storage version
//     discovery.k8s.io/v1 with --storage-media-type protobuf: the magic
//     prefix "k8s\x00" followed by a runtime.Unknown envelope (apiVersion,
//     kind, raw object) holding the object's protobuf encoding. The
//     apimachinery protobuf serializer behind a versioning encoder produces
//     precisely that;
//   - metadata as the API server would set it (uid, creationTimestamp,
//     generation, port defaults); no resourceVersion, since etcd's
//     modification revision is the resource version.
//
// Everything else stays honest: before writing, the slice is validated by
// the API server itself (a dry-run create or update) and only the loopback
// rejection is excused; after writing, the harness waits for the write's
// watch event (so every informer will see it too) and reads the slice back
// with a GET, comparing it with what was written.

// etcdPrefix is the API server's --etcd-prefix (also passed explicitly).
const etcdPrefix = "/registry"

// visibilityTimeout bounds PutEndpointSlice and DeleteEndpointSlice,
// including the wait for the watch event and the read back.
const visibilityTimeout = 30 * time.Second

// storageCodecs encode and decode discovery/v1 objects as the API server's
// storage does.
var storageCodecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	utilruntime.Must(discoveryv1.AddToScheme(scheme))
	return serializer.NewCodecFactory(scheme)
}()

// encodeEndpointSlice returns the bytes the API server stores for es.
func encodeEndpointSlice(es *discoveryv1.EndpointSlice) ([]byte, error) {
	info, ok := runtime.SerializerInfoForMediaType(storageCodecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		return nil, errors.New("no protobuf serializer")
	}
	// The versioning encoder stamps apiVersion/kind, which the protobuf
	// serializer copies into the runtime.Unknown envelope.
	enc := storageCodecs.EncoderForVersion(info.Serializer, discoveryv1.SchemeGroupVersion)
	return runtime.Encode(enc, es)
}

// decodeEndpointSlice decodes bytes stored by the API server (or by
// encodeEndpointSlice).
func decodeEndpointSlice(data []byte) (*discoveryv1.EndpointSlice, error) {
	obj, gvk, err := storageCodecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, fmt.Errorf("stored object is %v, not an EndpointSlice", gvk)
	}
	return es, nil
}

func endpointSliceKey(namespace, name string) string {
	return path.Join(etcdPrefix, "endpointslices", namespace, name)
}

// PutEndpointSlice creates or replaces an EndpointSlice, loopback addresses
// allowed, by writing it into etcd. It returns once the API server has
// delivered the write as a watch event and a GET returns it, so informers
// will see it. The slice must name its namespace, which must exist, and
// must otherwise pass the API server's validation. The API server must be
// running: it validates the slice and confirms the write. es is not
// modified.
func (c *Cluster) PutEndpointSlice(ctx context.Context, es *discoveryv1.EndpointSlice) error {
	if es == nil || es.Namespace == "" || es.Name == "" {
		return errors.New("PutEndpointSlice: the slice needs a namespace and a name")
	}
	ns, name := es.Namespace, es.Name
	ctx, cancel := context.WithTimeout(ctx, visibilityTimeout)
	defer cancel()
	wrap := func(err error) error { return fmt.Errorf("put EndpointSlice %s/%s: %w", ns, name, err) }

	nsObj, err := c.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		return wrap(err)
	}
	if nsObj.Status.Phase == corev1.NamespaceTerminating {
		return wrap(fmt.Errorf("namespace %s is terminating", ns))
	}

	key := endpointSliceKey(ns, name)
	var (
		rev    int64
		stored *discoveryv1.EndpointSlice
	)
	// Compare-and-put, re-reading on a conflict, as the API server's
	// GuaranteedUpdate does, so concurrent writers cannot lose a uid or a
	// generation.
	for attempt := 1; ; attempt++ {
		cur, modRev, err := c.kv.get(ctx, key)
		if err != nil {
			return wrap(err)
		}
		var old *discoveryv1.EndpointSlice
		if cur != nil {
			if old, err = decodeEndpointSlice(cur); err != nil {
				return wrap(fmt.Errorf("decode stored slice: %w", err))
			}
		}
		if err := c.validateEndpointSlice(ctx, es, old != nil); err != nil {
			return wrap(err)
		}
		obj := prepareEndpointSlice(es, old, time.Now())
		data, err := encodeEndpointSlice(obj)
		if err != nil {
			return wrap(err)
		}
		if bytes.Equal(data, cur) {
			// The API server does not write an unchanged object either:
			// no new resource version, no watch event.
			rev, stored = modRev, obj
			break
		}
		newRev, ok, err := c.kv.putIfModRev(ctx, key, modRev, data)
		if err != nil {
			return wrap(err)
		}
		if ok {
			rev, stored = newRev, obj
			if err := c.awaitEvent(ctx, ns, name, rev, stored); err != nil {
				return wrap(err)
			}
			break
		}
		if attempt == 5 {
			return wrap(apierrors.NewConflict(discoveryv1.Resource("endpointslices"), name, errors.New("the slice kept changing in etcd")))
		}
	}

	got, err := c.client.DiscoveryV1().EndpointSlices(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return wrap(fmt.Errorf("read back through the API: %w", err))
	}
	if got.ResourceVersion != strconv.FormatInt(rev, 10) {
		return wrap(fmt.Errorf("read back through the API: resourceVersion %s, want %d (someone else wrote it meanwhile)", got.ResourceVersion, rev))
	}
	if err := sameSlice(got, stored); err != nil {
		return wrap(fmt.Errorf("read back through the API: %w", err))
	}
	return nil
}

// DeleteEndpointSlice deletes an EndpointSlice from etcd and returns once
// the API server has delivered the deletion as a watch event and a GET
// reports it gone. It works for any slice, however it was created. A
// missing slice is an apierrors.IsNotFound error.
func (c *Cluster) DeleteEndpointSlice(ctx context.Context, namespace, name string) error {
	ctx, cancel := context.WithTimeout(ctx, visibilityTimeout)
	defer cancel()
	wrap := func(err error) error { return fmt.Errorf("delete EndpointSlice %s/%s: %w", namespace, name, err) }
	rev, existed, err := c.kv.delete(ctx, endpointSliceKey(namespace, name))
	if err != nil {
		return wrap(err)
	}
	if !existed {
		return wrap(apierrors.NewNotFound(discoveryv1.Resource("endpointslices"), name))
	}
	if err := c.awaitEvent(ctx, namespace, name, rev, nil); err != nil {
		return wrap(err)
	}
	_, err = c.client.DiscoveryV1().EndpointSlices(namespace).Get(ctx, name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		return wrap(fmt.Errorf("read back through the API: want NotFound, got %v", err))
	}
	return nil
}

// validateEndpointSlice has the API server validate es with a dry run and
// excuses only the loopback rejection: every other rule still applies.
// The dry run writes nothing.
func (c *Cluster) validateEndpointSlice(ctx context.Context, es *discoveryv1.EndpointSlice, exists bool) error {
	client := c.client.DiscoveryV1().EndpointSlices(es.Namespace)
	probe := es.DeepCopy()
	probe.ResourceVersion = "" // unconditional: etcd's compare-and-put guards the write
	var err error
	if exists {
		_, err = client.Update(ctx, probe, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	} else {
		_, err = client.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	}
	if err == nil || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
		// AlreadyExists/NotFound: the slice appeared or vanished since the
		// etcd read; validation passed, and the compare-and-put retries.
		return nil
	}
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return fmt.Errorf("API server validation (dry run): %w", err)
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Type != metav1.CauseTypeFieldValueInvalid || !strings.Contains(cause.Message, "loopback range") {
			return fmt.Errorf("API server validation (dry run): %w", err)
		}
	}
	return nil
}

// prepareEndpointSlice returns what the API server would store for es,
// given the stored old object (nil on create): system metadata and defaults
// set, no resource version.
func prepareEndpointSlice(es, old *discoveryv1.EndpointSlice, now time.Time) *discoveryv1.EndpointSlice {
	obj := es.DeepCopy()
	obj.TypeMeta = metav1.TypeMeta{}
	obj.ResourceVersion = ""
	obj.SelfLink = ""
	// SetDefaults_EndpointPort.
	for i := range obj.Ports {
		if obj.Ports[i].Name == nil {
			obj.Ports[i].Name = new(string)
		}
		if obj.Ports[i].Protocol == nil {
			tcp := corev1.ProtocolTCP
			obj.Ports[i].Protocol = &tcp
		}
	}
	if old == nil {
		// FillObjectMetaSystemFields and the strategy's PrepareForCreate.
		obj.UID = uuid.NewUUID()
		obj.CreationTimestamp = metav1.NewTime(now.Truncate(time.Second))
		obj.Generation = 1
		return obj
	}
	// Updates keep identity; the strategy's PrepareForUpdate bumps the
	// generation when anything but metadata (labels aside) changed.
	obj.UID = old.UID
	obj.CreationTimestamp = old.CreationTimestamp
	obj.Generation = old.Generation
	a, b := obj.DeepCopy(), old.DeepCopy()
	a.ObjectMeta, b.ObjectMeta = metav1.ObjectMeta{}, metav1.ObjectMeta{}
	if !apiequality.Semantic.DeepEqual(a, b) || !apiequality.Semantic.DeepEqual(obj.Labels, old.Labels) {
		obj.Generation++
	}
	return obj
}

// awaitEvent waits for the watch event of the write at etcd revision rev:
// an ADDED or MODIFIED event carrying want, or (want nil) a DELETED event.
// Watching from rev-1 replays exactly the events after it, so the write's
// own event comes first whatever else happened meanwhile. An event from the
// API server's watch cache means every informer will get it too.
func (c *Cluster) awaitEvent(ctx context.Context, namespace, name string, rev int64, want *discoveryv1.EndpointSlice) error {
	opts := metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion: strconv.FormatInt(rev-1, 10),
	}
	for {
		done, err := c.awaitEventOnce(ctx, namespace, rev, want, opts)
		if done || err != nil {
			return err
		}
		// The watch cache had not caught up with rev-1 yet, or the watch
		// ended early: try again until the deadline.
		select {
		case <-ctx.Done():
			return fmt.Errorf("no watch event for revision %d: %w", rev, context.Cause(ctx))
		case <-time.After(pollInterval):
		}
	}
}

func (c *Cluster) awaitEventOnce(ctx context.Context, namespace string, rev int64, want *discoveryv1.EndpointSlice, opts metav1.ListOptions) (bool, error) {
	w, err := c.client.DiscoveryV1().EndpointSlices(namespace).Watch(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("watch from revision %d: %w", rev-1, err)
		}
		return false, nil
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("no watch event for revision %d: %w", rev, context.Cause(ctx))
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			if ev.Type == watch.Error {
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					return false, fmt.Errorf("watch from revision %d: %w", rev-1, err)
				}
				return false, nil // e.g. "Too large resource version": retry
			}
			es, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
			if !isSlice {
				continue // bookmarks are not requested; ignore anything else
			}
			if es.ResourceVersion != strconv.FormatInt(rev, 10) {
				return false, fmt.Errorf("first watch event after revision %d is %s at resourceVersion %s", rev-1, ev.Type, es.ResourceVersion)
			}
			switch {
			case want == nil && ev.Type == watch.Deleted:
				return true, nil
			case want != nil && (ev.Type == watch.Added || ev.Type == watch.Modified):
				return true, sameSlice(es, want)
			default:
				return false, fmt.Errorf("watch event for revision %d is %s", rev, ev.Type)
			}
		}
	}
}

// sameSlice reports whether got, as served by the API server, is the
// object the harness stored.
func sameSlice(got, want *discoveryv1.EndpointSlice) error {
	g, w := got.DeepCopy(), want.DeepCopy()
	// The API server fills in what is never stored.
	g.TypeMeta, w.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}
	g.ResourceVersion, w.ResourceVersion = "", ""
	if !apiequality.Semantic.DeepEqual(g, w) {
		return fmt.Errorf("API server returned a different slice than was stored:\n got  %v\n want %v", g, w)
	}
	return nil
}

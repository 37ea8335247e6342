// Package webhook is Torii's validating admission webhook for Ingresses: it
// refuses broken Ingress objects before they are stored, with the same
// verdicts `torii check` gives, because both call Review/Verdicts over the
// pure translator.
//
// # Why it is safe
//
// ingress-nginx's webhook rendered the candidate object into nginx
// configuration and ran `nginx -t` on it. Any text an annotation smuggled
// into that configuration was executed by nginx, so anyone who could reach
// the webhook port could run code in the controller, which held every
// Secret in the cluster (CVE-2025-1974, "IngressNightmare"). This webhook
// cannot do that, by construction:
//
//   - The verdict is translate.Build over the store view plus the candidate:
//     a pure function from objects to a routing model and a list of
//     problems. It renders no text, starts no process, opens no file and
//     makes no network call. The candidate's annotation values are never
//     interpreted (only keys are checked), and its paths and hosts are
//     validated to a strict character set before anything uses them.
//   - The handler decodes, judges and answers; it writes nothing anywhere.
//     An import-guard test fails if this package or package translate
//     imports os/exec or calls any file-writing function, and if anything
//     they depend on, at any depth, imports os/exec, plugin or client-go.
//   - Every input is bounded: the body to MaxBodyBytes (413 above) and to
//     2 s from its headers (408), with the bytes of all bodies held against
//     one budget (503 when spent); only a whole body takes one of the
//     judging slots, for at most the review's deadline. A panic is
//     answered 500. Messages quote at most 128 bytes of any user value,
//     warnings are cut to 200 bytes each and 4000 in all. A fuzz target
//     checks that no request panics or allocates without bound.
//   - The webhook's identity needs no access of its own: it reads the
//     controller's informer caches. With certificate files it needs no
//     Secret at all; certificate bootstrap (package certs) needs only its
//     one Secret and its one ValidatingWebhookConfiguration.
//
// The controller still validates everything itself: a webhook can be
// bypassed, down, or newer than the objects stored before it existed.
//
// # What it decides
//
// Only the candidate's own problems count. An Error denies (an invalid
// field, an unknown torii.dev/ annotation, a host+path or default backend
// already held by an older Ingress); a Warning is returned as an admission
// warning (a missing Service or TLS Secret, which may be created next;
// ignored nginx.ingress.kubernetes.io/ annotations). An Ingress being created
// is judged as the newest one, so it loses every conflict; an update keeps
// its creationTimestamp, so an older Ingress taking a path from a newer one
// of its namespace is allowed, with a warning naming the loser, and denied
// when the loser is in another namespace. An update is denied only for
// problems the object it replaces did not have; the others come back as
// warnings. Ingresses of classes Torii does not own, in namespaces it does
// not watch, or being deleted are allowed untouched. With a Partition
// (dedicated mode), a candidate is judged only against the Ingresses
// served by the same proxies.
//
// The view is the controller's cache: two conflicting Ingresses created at
// the same moment are judged without each other and may both be admitted;
// the controller's oldest-wins rule then decides which one is served.
package webhook

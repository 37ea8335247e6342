// Package dir is the manifest-directory source: it reads ordinary
// Kubernetes YAML or JSON files (the same objects the cluster source
// watches) for `torii serve --manifests DIR` and `torii check`.
//
// Decode turns one file into typed objects, ReadFiles does a one-shot read
// of several files, and Source watches a directory, keeping every file's
// last good content serving while a broken edit is reported, and hands
// full, deterministic views to its caller after each effective change.
//
// Manifests are not admitted by an API server, so the package applies the
// few normalisations one would (namespace defaulting, Secret stringData) so
// that translation behaves as it does in a cluster. Creation timestamps are
// kept as written, zero when absent, and never invented: a view depends only
// on the files' content, not on when or in which order they were seen, so
// `torii serve` agrees with `torii check` and with itself after a restart
// (the translator breaks equal ages by namespace/name).
package dir

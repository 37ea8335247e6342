// Package examples embeds the example manifests so that `torii demo` runs
// from the binary alone.
package examples

import "embed"

// Quickstart holds examples/quickstart/*.yaml.
//
//go:embed quickstart/*.yaml
var Quickstart embed.FS
